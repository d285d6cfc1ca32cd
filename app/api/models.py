"""``GET /v1/models`` (the OpenAI list shape) and ``GET /v1/models/{id}`` (with the parameter table).

A key with a model allow-list sees only its models; another model's page is a 403 ``model_not_allowed``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.auth import PrincipalDep, check_model_allowed
from app.deps import AppStateDep
from normalization.catalog import Model, ModelEntry
from normalization.engine import PlanSettings
from normalization.introspect import parameter_table
from normalization.pricing import describe_price
from normalization.routing.route import resolve_model

router = APIRouter()


def _model_object(model: Model) -> dict[str, Any]:
    primary = model.primary
    return {
        "id": model.id,
        "object": "model",
        "created": 0,
        "owned_by": primary.provider,
        "provider": primary.provider,
        "upstream": primary.upstream,
        "providers": list(model.providers()),
        "modes": list(model.modes),
        "description": model.description,
        "price": describe_price(primary.price),
    }


def _table(deployment: ModelEntry, settings: PlanSettings) -> dict[str, Any]:
    table = parameter_table(deployment, settings)
    return {name: row.model_dump(mode="json", exclude_none=True) for name, row in table.items()}


@router.get("/v1/models")
async def list_models(state: AppStateDep, principal: PrincipalDep) -> dict[str, Any]:
    allowed = principal.models
    models = [model for model in state.catalog.entries() if allowed is None or model.id in allowed]
    return {"object": "list", "data": [_model_object(model) for model in models]}


@router.get("/v1/models/{model_id:path}")
async def get_model(model_id: str, state: AppStateDep, principal: PrincipalDep) -> dict[str, Any]:
    """One model: the first deployment's parameter table as ``parameters`` (what most clients read),
    and ``deployments``, each with its own table, in routing order. ``provider/model`` shows that
    deployment alone."""
    model, forced = resolve_model(state.catalog, model_id)
    check_model_allowed(principal, model.id)
    deployments = [d for d in model.deployments if forced is None or d.provider == forced]
    settings = state.gateway.plan_settings
    return {
        **_model_object(model),
        "provider": deployments[0].provider,
        "upstream": deployments[0].upstream,
        "parameters": _table(deployments[0], settings),
        "deployments": [
            {
                "provider": deployment.provider,
                "upstream": deployment.upstream,
                "modes": list(deployment.modes),
                "price": describe_price(deployment.price),
                "parameters": _table(deployment, settings),
            }
            for deployment in deployments
        ],
    }
