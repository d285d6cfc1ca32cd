"""The admin API: managed keys and usage totals (bearer ``PIXELGATE_ADMIN_KEY``, see :mod:`app.admin.guard`).

- ``POST /admin/keys`` ``{"name", "budget_usd"?, "models"?, "rpm"?, "expires_at"?}``: the new key's
  record with its secret ``key``, shown this once.
- ``GET /admin/keys``: ``{"object": "list", "data": [record, ...]}``; ``GET /admin/keys/{id}``: one.
- ``DELETE /admin/keys/{id}``: revoke; answers the record (``revoked: true``).
- ``GET /admin/usage?group_by=key|model|provider|day&start=…&end=…``:
  ``{"object": "list", "group_by", "data": [{<group_by>, "requests", "errors", "images", "megapixels", "cost_usd"}]}``.

Bodies are parsed after the guard, so a caller without the admin key learns nothing from a
malformed body.
"""

from __future__ import annotations

from typing import TypeVar, cast, get_args

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

from app.admin.guard import AdminGuard
from app.db import Database
from app.forms import read_limited
from app.handlers import json_response
from app.keys import KeyStore, NewKey
from app.usage import GroupBy, parse_range, usage_totals
from core.errors import InvalidRequestError

MAX_BODY_BYTES = 64 * 1024
GROUPS: tuple[str, ...] = get_args(GroupBy)
M = TypeVar("M", bound=BaseModel)
NEW_KEY_BODY = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": NewKey.model_json_schema()}}}
}
"""The body ``POST /admin/keys`` reads by hand (after the guard), described for /openapi.json."""


def admin_router(guard: AdminGuard, keys: KeyStore, database: Database) -> APIRouter:
    """The ``/admin`` routes over ``keys`` and the ledger in ``database``."""
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
        group = parse_group_by(group_by)
        rows = await usage_totals(database, group, parse_range(start, end))
        return json_response({"object": "list", "group_by": group, "data": [row.wire(group) for row in rows]})

    return router


def parse_group_by(value: str) -> GroupBy:
    if value not in GROUPS:
        raise InvalidRequestError(f"group_by must be one of {', '.join(GROUPS)}; got '{value}'", param="group_by")
    return cast(GroupBy, value)


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
