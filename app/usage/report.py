"""Usage totals from the ledger, grouped by key, model, provider, day or hour (or a time bucket and one
of the others), over a time range.

``GET /admin/usage`` and ``pixelgate usage`` answer these. A grouping is one field, or two separated by a
comma where one is a time bucket (``day,model``: a time series per model). A range is
``start <= created < end``; either bound may be a Unix time in seconds, an ISO 8601 time (naive means
UTC) or an ISO date; a date given as ``end`` counts that whole day, as people mean "from the 1st to the
31st".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal, cast, get_args

from pydantic import BaseModel, ConfigDict
from sqlalchemy import BigInteger, ColumnElement, case, func, literal_column, select

from app.db import Database, unavailable_as_503
from app.db.schema import usage_ledger
from app.keys.models import micros_to_usd
from core.errors import InvalidRequestError

GroupBy = Literal["key", "model", "provider", "day", "hour"]
"""One field a usage total can be grouped by. ``day`` and ``hour`` are UTC time buckets."""
GROUP_FIELDS: tuple[GroupBy, ...] = get_args(GroupBy)
TIME_BUCKETS = frozenset({"day", "hour"})
MS_PER_HOUR = 3_600_000


@dataclass(frozen=True)
class _Column:
    """How one group field is read: the SQL expression grouped on, and its value as answered."""

    expression: ColumnElement[str | None] | ColumnElement[int]
    answer: Callable[[object], str | None]


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _hour(value: object) -> str | None:
    """The hour bucket (hours since the epoch) as the ISO time it starts: ``2025-03-01T13:00:00Z``."""
    if value is None:
        return None
    start = datetime.fromtimestamp(int(cast(int, value)) * MS_PER_HOUR / 1000, UTC)
    return start.strftime("%Y-%m-%dT%H:00:00Z")


COLUMNS: dict[GroupBy, _Column] = {
    "key": _Column(usage_ledger.c.key_id, _text),
    "model": _Column(usage_ledger.c.model, _text),
    "provider": _Column(usage_ledger.c.provider, _text),
    "day": _Column(usage_ledger.c.day, _text),
    # Integer division on both databases; the divisor inline, not a bound parameter, so PostgreSQL
    # sees the selected expression and the grouped one as the same.
    "hour": _Column(usage_ledger.c.created_ms // literal_column(str(MS_PER_HOUR), BigInteger), _hour),
}
"""Each group field -> the ledger expression it groups on."""


class Grouping(BaseModel):
    """What totals are grouped by: one field, or a time bucket and one other field, in the order given."""

    model_config = ConfigDict(frozen=True)

    fields: tuple[GroupBy, ...]

    @classmethod
    def parse(cls, text: str) -> Grouping:
        """``group_by`` as a client sends it (``model``, ``day,model``); a 400 naming ``group_by`` otherwise."""
        names = [part.strip() for part in text.split(",")]
        unknown = [name for name in names if name not in GROUP_FIELDS]
        if unknown or not names:
            shown = text[:60].encode("ascii", "backslashreplace").decode()
            raise InvalidRequestError(
                f"group_by must be one of {', '.join(GROUP_FIELDS)}, or a time bucket (day, hour) and one "
                f"other field separated by a comma (day,model); got '{shown}'",
                param="group_by",
            )
        fields = tuple(cast(GroupBy, name) for name in names)
        if len(fields) > 1 and (
            len(fields) > 2 or len(set(fields)) != 2 or sum(field in TIME_BUCKETS for field in fields) != 1
        ):
            raise InvalidRequestError(
                f"group_by takes at most two fields, one of them day or hour (day,model); got '{text[:60]}'",
                param="group_by",
            )
        return cls(fields=fields)

    @property
    def name(self) -> str:
        """As answered in ``group_by``: the fields joined by a comma."""
        return ",".join(self.fields)


class UsageRow(BaseModel):
    """One group's totals. ``groups`` holds the value of each grouping field, in the grouping's order;
    they are answered under the fields' names (see :meth:`wire`)."""

    model_config = ConfigDict(frozen=True)

    groups: tuple[str | None, ...]
    requests: int
    errors: int
    images: int
    megapixels: float
    cost_usd: float

    def wire(self, grouping: Grouping) -> dict[str, str | int | float | None]:
        body = self.model_dump(exclude={"groups"})
        return {**dict(zip(grouping.fields, self.groups, strict=True)), **body}


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


async def usage_totals(database: Database, grouping: Grouping, window: UsageRange) -> list[UsageRow]:
    """Requests, errors, images, megapixels and cost per group within ``window``, ordered by the
    grouping's fields in turn (a missing value last)."""
    columns = [COLUMNS[field] for field in grouping.fields]
    groups = [column.expression.label(f"grp{index}") for index, column in enumerate(columns)]
    order = [part for column in columns for part in (column.expression.is_(None), column.expression)]
    query = (
        select(
            *groups,
            func.count().label("requests"),
            func.sum(case((usage_ledger.c.status >= 400, 1), else_=0)).label("errors"),
            func.sum(usage_ledger.c.images).label("images"),
            func.sum(usage_ledger.c.megapixels).label("megapixels"),
            func.sum(usage_ledger.c.cost_micros).label("cost_micros"),
        )
        .group_by(*(column.expression for column in columns))
        .order_by(*order)  # nulls last on every database
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
            groups=tuple(column.answer(row[index]) for index, column in enumerate(columns)),
            requests=row.requests,
            errors=int(row.errors or 0),
            images=int(row.images or 0),
            megapixels=round(float(row.megapixels or 0.0), 6),
            cost_usd=micros_to_usd(int(row.cost_micros or 0)),
        )
        for row in rows
    ]
