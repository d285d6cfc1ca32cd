"""A route: one request planned for each deployment of its model that can serve it (pure).

The first deployment that can serve the request's mode is the *primary*; its plan decides the
request's upstream calls (its fan-out of ``n``) and its refusals are the client's answer (a request
the model's first deployment cannot take is a 400, as for a single-provider model). A later
deployment that cannot take the request (a parameter out of its range, too many input images) is
left out of the route with the reason, shown in a dry run. ``provider/model`` forces one deployment:
the route then holds it alone and never fails over.

Each primary call fails over on its own (:mod:`~normalization.routing.router`): for call ``i``
(``e`` images from seed offset ``o``) every other deployment gets a *leg* planned for exactly ``e``
images from ``seed + o``, so a fan-out that half succeeded on one provider is completed on another
without making images twice.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from core.errors import GatewayError, ModelNotFoundError
from normalization.catalog import Catalog, Mode, Model, ModelEntry
from normalization.plan import Plan
from normalization.pricing import plan_estimate
from normalization.request import ImageRequest
from providers.base import UpstreamCall

LEG_INDEX_STRIDE = 1000
"""A fallback leg's calls are numbered ``leg * 1000 + k``: an async job's tracker tells calls apart by
index, provider and upstream, so two legs on one provider must not share an index."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Skipped(_Frozen):
    """A deployment left out of a route, and why (a dry run shows it)."""

    provider: str
    upstream: str
    reason: str


class Option(_Frozen):
    """One deployment's way of serving the request: its whole plan, and its calls for each primary leg."""

    plan: Plan
    legs: tuple[tuple[UpstreamCall, ...], ...]
    """``legs[i]``: the calls that make primary call ``i``'s images on this deployment."""

    @property
    def deployment(self) -> ModelEntry:
        return self.plan.entry


class Route(_Frozen):
    """The deployments to try for one request, in order."""

    model: Model
    mode: Mode
    options: tuple[Option, ...]
    skipped: tuple[Skipped, ...] = ()
    forced: bool = False

    @property
    def primary(self) -> Plan:
        return self.options[0].plan

    def estimate(self) -> Decimal:
        """What a budget holds: the dearest deployment's estimate (any of them may end up serving)."""
        return max(plan_estimate(option.plan) for option in self.options)


PlanFor = Callable[[ImageRequest, ModelEntry], Plan]
"""Plans ``request`` for one deployment (the engine with the request's inputs and settings bound)."""


def resolve_model(catalog: Catalog, name: str) -> tuple[Model, str | None]:
    """The model ``name`` designates and the provider it forces, if any (``replicate/hidream-e1-1``).

    A model whose own id contains a slash wins over the forced reading. Raises 404 ``model_not_found``.
    """
    model = catalog.get(name)
    if model is not None:
        return model, None
    provider, slash, model_id = name.partition("/")
    model = catalog.get(model_id) if slash else None
    if model is None:
        raise ModelNotFoundError(
            f"The model '{name}' does not exist on this gateway; GET /v1/models lists them.", param="model"
        )
    if provider not in model.providers():
        raise ModelNotFoundError(
            f"The model '{model_id}' has no deployment on provider '{provider}'; it runs on "
            f"{', '.join(model.providers())}.",
            param="model",
        )
    return model, provider


def plan_route(model: Model, mode: Mode, request: ImageRequest, plan_for: PlanFor, *, forced: str | None) -> Route:
    """Plan ``request`` on each deployment of ``model`` serving ``mode``. Raises the primary's refusals."""
    deployments = model.deployments_for(mode) or model.deployments  # none: the engine words the 400
    if forced is not None:
        deployments = tuple(d for d in deployments if d.provider == forced) or deployments[:1]
    primary = plan_for(request, deployments[0])
    plans: list[Plan] = [primary]
    skipped: list[Skipped] = []
    for deployment in deployments[1:]:
        try:
            plans.append(plan_for(request, deployment))
        except GatewayError as exc:
            skipped.append(Skipped(provider=deployment.provider, upstream=deployment.upstream, reason=exc.message))
    options = tuple(_option(plan, primary, request, plan_for) for plan in plans)
    return Route(model=model, mode=mode, options=options, skipped=tuple(skipped), forced=forced is not None)


def _option(plan: Plan, primary: Plan, request: ImageRequest, plan_for: PlanFor) -> Option:
    if plan is primary:
        return Option(plan=plan, legs=tuple((call,) for call in primary.calls))
    if len(primary.calls) == 1:
        return Option(plan=plan, legs=(plan.calls,))
    legs: list[tuple[UpstreamCall, ...]] = []
    offset = 0
    for leg, call in enumerate(primary.calls):
        seed = None if request.seed is None else request.seed + offset
        part = request.model_copy(update={"n": call.expected_images, "seed": seed})
        try:
            calls = plan_for(part, plan.entry).calls
        except GatewayError:
            calls = ()  # this deployment cannot make this leg's share: the leg skips it
        legs.append(tuple(c.model_copy(update={"index": leg * LEG_INDEX_STRIDE + c.index}) for c in calls))
        offset += call.expected_images
    return Option(plan=plan, legs=tuple(legs))
