"""The admin API (bearer ``PIXELGATE_ADMIN_KEY``, see :mod:`app.admin.guard`): managed keys, usage totals,
the recent requests and the providers' health.

- ``POST /admin/keys`` ``{"name", "budget_usd"?, "models"?, "rpm"?, "expires_at"?}``: the new key's
  record with its secret ``key``, shown this once.
- ``GET /admin/keys``: ``{"object": "list", "data": [record, ...]}``; ``GET /admin/keys/{id}``: one.
- ``DELETE /admin/keys/{id}``: revoke; answers the record (``revoked: true``).
- ``GET /admin/usage?group_by=key|model|provider|day|hour&start=…&end=…``:
  ``{"object": "list", "group_by", "data": [{<group_by>, "requests", "errors", "images", "megapixels", "cost_usd"}]}``;
  ``group_by=day,model`` (a time bucket and one other field) answers both fields in each row: a time series.
- ``GET /admin/requests?limit=&before=``: the most recent requests of the usage ledger, newest first
  (:mod:`app.usage.requests`): ``{"object": "list", "data": [...], "has_more", "first_id", "last_id"}``;
  the next page is ``before=<last_id>``.
- ``GET /admin/providers?window_seconds=``: each provider's configuration and its record over the last
  ``window_seconds`` (:mod:`app.admin.providers`).

Bodies are parsed after the guard, so a caller without the admin key learns nothing from a
malformed body.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

from app.admin.guard import AdminGuard
from app.admin.providers import ProviderInfo, cooling_of, provider_health
from app.db import Database
from app.forms import read_limited
from app.handlers import json_response
from app.keys import KeyStore, NewKey
from app.usage import Grouping, parse_range, usage_totals
from app.usage.health import provider_activity
from app.usage.requests import MAX_PAGE, recent_requests
from core.errors import InvalidRequestError
from normalization.routing.breaker import BreakerStore

MAX_BODY_BYTES = 64 * 1024
LATEST_ROW_ID = 2**53
"""Above any ledger row id (and exact as a JSON number): a ``before`` beyond it is refused, not sent to SQL."""
HEALTH_MAX_ROWS = 10_000
"""``/admin/providers`` reads at most this many of the most recent ledger rows in its window."""
DAY_SECONDS = 86_400
M = TypeVar("M", bound=BaseModel)
NEW_KEY_BODY = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": NewKey.model_json_schema()}}}
}
"""The body ``POST /admin/keys`` reads by hand (after the guard), described for /openapi.json."""


def admin_router(
    guard: AdminGuard,
    keys: KeyStore,
    database: Database,
    providers: Sequence[ProviderInfo],
    breakers: BreakerStore,
) -> APIRouter:
    """The ``/admin`` routes over ``keys``, the ledger in ``database``, the configured ``providers`` and
    their circuit ``breakers``."""
    # Published in /openapi.json only when there is an admin API to use.
    router = APIRouter(prefix="/admin", dependencies=[Depends(guard)], tags=["admin"], include_in_schema=guard.enabled)

    @router.post("/keys", response_model=None, openapi_extra=NEW_KEY_BODY)
    async def create_key(request: Request) -> Response:
        new = parse_body(NewKey, await read_limited(request.stream(), MAX_BODY_BYTES))
        created = await keys.create(new)
        return json_response(created.model_dump(mode="json"))

    @router.get("/keys", response_model=None)
    async def list_keys() -> Response:
        records = await keys.list_all()
        return json_response({"object": "list", "data": [record.model_dump(mode="json") for record in records]})

    @router.get("/keys/{key_id}", response_model=None)
    async def get_key(key_id: str) -> Response:
        return json_response((await keys.get(key_id)).model_dump(mode="json"))

    @router.delete("/keys/{key_id}", response_model=None)
    async def revoke_key(key_id: str) -> Response:
        return json_response((await keys.revoke(key_id)).model_dump(mode="json"))

    @router.get("/usage", response_model=None)
    async def usage(group_by: str = "day", start: str | None = None, end: str | None = None) -> Response:
        grouping = Grouping.parse(group_by)
        rows = await usage_totals(database, grouping, parse_range(start, end))
        return json_response(
            {"object": "list", "group_by": grouping.name, "data": [row.wire(grouping) for row in rows]}
        )

    @router.get("/requests", response_model=None)
    async def request_list(
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="rows per page")] = 20,
        before: Annotated[
            int | None, Query(ge=1, le=LATEST_ROW_ID, description="the last id of the previous page")
        ] = None,
    ) -> Response:
        page = await recent_requests(database, limit=limit, before=before)
        data = [row.model_dump(mode="json") for row in page.rows]
        return json_response(
            {
                "object": "list",
                "data": data,
                "has_more": page.has_more,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
        )

    @router.get("/providers", response_model=None)
    async def provider_list(
        window_seconds: Annotated[
            int, Query(ge=60, le=30 * DAY_SECONDS, description="how far back the error rates look")
        ] = 3600,
    ) -> Response:
        since_ms = int((time.time() - window_seconds) * 1000)
        activity = await provider_activity(database, since_ms=since_ms, max_rows=HEALTH_MAX_ROWS)
        cooling = await cooling_of(breakers, [*(info.name for info in providers), *activity])
        entries = provider_health(providers, activity, cooling)
        return json_response(
            {
                "object": "list",
                "window_seconds": window_seconds,
                "data": [entry.model_dump(mode="json") for entry in entries],
            }
        )

    return router


def parse_body(model: type[M], raw: bytes) -> M:
    """``raw`` JSON as ``model``; a 400 naming the first offending field otherwise."""
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            raise InvalidRequestError("the body is not valid JSON", code="invalid_json") from None
        loc = [str(part) for part in first["loc"]]
        param = loc[0] if loc else None
        message = first["msg"].removeprefix("Value error, ")
        raise InvalidRequestError(
            f"Invalid value for '{param}': {message}" if param else message, param=param, code="invalid_value"
        ) from None
