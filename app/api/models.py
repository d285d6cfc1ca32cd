"""``GET /v1/models`` (the OpenAI list shape) and ``GET /v1/models/{id}`` (with the parameter table).

A key with a model allow-list sees only its models; another model's page is a 403 ``model_not_allowed``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.auth import PrincipalDep, check_model_allowed
from app.deps import AppStateDep
from core.errors import ModelNotFoundError
from normalization.catalog import ModelEntry
from normalization.introspect import parameter_table
from normalization.pricing import describe_price

router = APIRouter()


def _model_object(entry: ModelEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "object": "model",
        "created": 0,
        "owned_by": entry.provider,
        "provider": entry.provider,
        "upstream": entry.upstream,
        "modes": list(entry.modes),
        "description": entry.description,
        "price": describe_price(entry.price),
    }


@router.get("/v1/models")
async def list_models(state: AppStateDep, principal: PrincipalDep) -> dict[str, Any]:
    allowed = principal.models
    entries = [entry for entry in state.catalog.entries() if allowed is None or entry.id in allowed]
    return {"object": "list", "data": [_model_object(entry) for entry in entries]}


@router.get("/v1/models/{model_id:path}")
async def get_model(model_id: str, state: AppStateDep, principal: PrincipalDep) -> dict[str, Any]:
    entry = state.catalog.get(model_id)
    if entry is None:
        raise ModelNotFoundError(f"The model '{model_id}' does not exist on this gateway.", param="model")
    check_model_allowed(principal, entry.id)
    table = parameter_table(entry, state.gateway.plan_settings)
    return {
        **_model_object(entry),
        "parameters": {name: row.model_dump(mode="json", exclude_none=True) for name, row in table.items()},
    }
