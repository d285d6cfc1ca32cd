"""Usage totals from the ledger, grouped by key, model, provider or day, over a time range.

``GET /admin/usage`` and ``pixelgate usage`` answer these. A range is ``start <= created < end``;
either bound may be a Unix time in seconds, an ISO 8601 time (naive means UTC) or an ISO date; a
date given as ``end`` counts that whole day, as people mean "from the 1st to the 31st".
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import ColumnElement, case, func, select

from app.db import Database, unavailable_as_503
from app.db.schema import usage_ledger
from app.keys.models import micros_to_usd
from core.errors import InvalidRequestError

GroupBy = Literal["key", "model", "provider", "day"]

GROUP_COLUMNS: dict[str, ColumnElement[str | None]] = {
    "key": usage_ledger.c.key_id,
    "model": usage_ledger.c.model,
    "provider": usage_ledger.c.provider,
    "day": usage_ledger.c.day,
}
"""``group_by`` -> the ledger column it groups on."""


class UsageRow(BaseModel):
    """One group's totals. ``group`` is answered under the name of ``group_by`` (see :meth:`wire`)."""

    model_config = ConfigDict(frozen=True)

    group: str | None
    requests: int
    errors: int
    images: int
    megapixels: float
    cost_usd: float

    def wire(self, group_by: GroupBy) -> dict[str, str | int | float | None]:
        body = self.model_dump(exclude={"group"})
        return {group_by: self.group, **body}


class UsageRange(BaseModel):
    """Unix milliseconds, start inclusive, end exclusive; None: unbounded."""

    model_config = ConfigDict(frozen=True)

    start_ms: int | None = None
    end_ms: int | None = None


def parse_range(start: str | None, end: str | None) -> UsageRange:
    """The range the query parameters (or CLI options) ``start`` and ``end`` name; 400 if malformed."""
    start_ms = None if not start else _instant_ms(start, "start", end_of_day=False)
    end_ms = None if not end else _instant_ms(end, "end", end_of_day=True)
    if start_ms is not None and end_ms is not None and end_ms <= start_ms:
        raise InvalidRequestError("end must be after start", param="end")
    return UsageRange(start_ms=start_ms, end_ms=end_ms)


def _instant_ms(text: str, param: str, *, end_of_day: bool) -> int:
    value = text.strip()
    try:
        if value.lstrip("-").replace(".", "", 1).isdigit():
            instant = datetime.fromtimestamp(float(value), UTC)  # also refuses times no database holds
        elif len(value) == 10:
            instant = datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
            instant += timedelta(days=1 if end_of_day else 0)
        else:
            instant = datetime.fromisoformat(value)
    except (ValueError, OverflowError, OSError):
        shown = text[:40].encode("ascii", "backslashreplace").decode()
        raise InvalidRequestError(
            f"{param} must be an ISO 8601 date or time, or Unix seconds; got '{shown}'", param=param
        ) from None
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return int(instant.timestamp() * 1000)


async def usage_totals(database: Database, group_by: GroupBy, window: UsageRange) -> list[UsageRow]:
    """Requests, errors, images, megapixels and cost per group within ``window``, ordered by group."""
    group = GROUP_COLUMNS[group_by]
    query = (
        select(
            group.label("grp"),
            func.count().label("requests"),
            func.sum(case((usage_ledger.c.status >= 400, 1), else_=0)).label("errors"),
            func.sum(usage_ledger.c.images).label("images"),
            func.sum(usage_ledger.c.megapixels).label("megapixels"),
            func.sum(usage_ledger.c.cost_micros).label("cost_micros"),
        )
        .group_by(group)
        .order_by(group.is_(None), group)  # nulls last on every database
    )
    if window.start_ms is not None:
        query = query.where(usage_ledger.c.created_ms >= window.start_ms)
    if window.end_ms is not None:
        query = query.where(usage_ledger.c.created_ms < window.end_ms)
    with unavailable_as_503():
        async with database.engine.connect() as connection:
            rows = (await connection.execute(query)).all()
    return [
        UsageRow(
            group=row.grp,
            requests=row.requests,
            errors=int(row.errors or 0),
            images=int(row.images or 0),
            megapixels=round(float(row.megapixels or 0.0), 6),
            cost_usd=micros_to_usd(int(row.cost_micros or 0)),
        )
        for row in rows
    ]
