"""The most recent requests of the usage ledger, newest first, a page at a time (``GET /admin/requests``).

Pages are cut by the ledger's row id, which grows as rows are written: ``before`` is the last ``id`` of
the previous page, so a page stays the same while newer requests arrive. A row names its key by id and,
for a managed key, by name; never the key itself.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from app.db import Database, unavailable_as_503
from app.db.schema import api_keys, usage_ledger
from app.keys.models import micros_to_usd

MAX_PAGE = 100


class RequestRow(BaseModel):
    """One request as the ledger recorded it."""

    model_config = ConfigDict(frozen=True)

    id: int
    request_id: str
    created: float
    """Unix seconds (millisecond precision) when the request arrived."""
    key_id: str | None
    key_name: str | None
    model: str | None
    provider: str | None
    """The provider that served it; None when none did."""
    deployments: tuple[str, ...]
    """The deployments tried, in order, as ``provider:upstream``."""
    status: int
    error_code: str | None
    images: int
    megapixels: float
    cost_usd: float
    queue_ms: int | None
    upstream_ms: int | None
    total_ms: int
    replay: bool


class RequestPage(BaseModel):
    model_config = ConfigDict(frozen=True)

    rows: tuple[RequestRow, ...]
    has_more: bool


async def recent_requests(database: Database, *, limit: int, before: int | None = None) -> RequestPage:
    """Up to ``limit`` (at most :data:`MAX_PAGE`) rows written before row ``before`` (all when None), newest first."""
    ledger = usage_ledger.c
    query = (
        select(usage_ledger, api_keys.c.name.label("key_name"))
        .select_from(usage_ledger.outerjoin(api_keys, api_keys.c.id == ledger.key_id))
        .order_by(ledger.id.desc())
        .limit(min(limit, MAX_PAGE) + 1)
    )
    if before is not None:
        query = query.where(ledger.id < before)
    with unavailable_as_503():
        async with database.engine.connect() as connection:
            rows = (await connection.execute(query)).all()
    shown = rows[: min(limit, MAX_PAGE)]
    return RequestPage(
        rows=tuple(
            RequestRow(
                id=row.id,
                request_id=row.request_id,
                created=row.created_ms / 1000,
                key_id=row.key_id,
                key_name=row.key_name,
                model=row.model,
                provider=row.provider,
                deployments=tuple(row.deployments or ()),
                status=row.status,
                error_code=row.error_code,
                images=row.images,
                megapixels=round(float(row.megapixels), 6),
                cost_usd=micros_to_usd(int(row.cost_micros)),
                queue_ms=row.queue_ms,
                upstream_ms=row.upstream_ms,
                total_ms=row.total_ms,
                replay=bool(row.replay),
            )
            for row in shown
        ),
        has_more=len(rows) > len(shown),
    )
