"""The routing decisions, in process: which failures fail over, the breaker's states, how a route is planned."""

from __future__ import annotations

import asyncio

import pytest

from core.errors import (
    GatewayError,
    InvalidRequestError,
    ModelNotFoundError,
    ModerationBlockedError,
    ProviderNotConfiguredError,
    ServiceUnavailableError,
    UpstreamError,
    UpstreamTimeoutError,
)
from core.images import probe_input
from normalization.catalog import Catalog, Model, ModelEntry
from normalization.engine import plan_request
from normalization.plan import Plan
from normalization.request import EditInputs, ImageRequest
from normalization.routing.breaker import BreakerPolicy, MemoryBreakers, ObservedBreakers
from normalization.routing.failover import counts_against_provider, fails_over
from normalization.routing.route import LEG_INDEX_STRIDE, plan_route, resolve_model
from tests.images import png_bytes

ROUTED = Model.model_validate(
    {
        "id": "routed",
        "modes": ["edit", "generate"],
        "deployments": [
            {
                "provider": "fal",
                "upstream": "fal-ai/x",
                "images": {"field": "image_url"},
                "count": {"field": "num_images", "max": 4},
                "params": {"seed": {"type": "integer"}, "steps": {"type": "integer", "maximum": 50}},
            },
            {"provider": "replicate", "upstream": "o/x", "modes": ["edit"], "images": {"field": "image"}},
            {
                "provider": "gemini",
                "upstream": "g",
                "images": {"field": "inlineData", "kind": "list"},
                "params": {"seed": {"type": "integer"}, "steps": {"type": "integer", "maximum": 10}},
            },
        ],
    }
)
INPUTS = EditInputs(images=(probe_input(png_bytes(16, 16), param="image", max_pixels=10**6),))


def plan_for(request: ImageRequest, deployment: ModelEntry) -> Plan:
    return plan_request(request, deployment, "edit", INPUTS)


@pytest.mark.parametrize(
    ("error", "moves_on", "counts"),
    [
        (UpstreamError("x"), True, True),
        (UpstreamError("x", code="upstream_rate_limited"), True, True),
        (UpstreamError("x", code="upstream_no_image"), True, True),
        (UpstreamTimeoutError("x"), True, True),
        (ServiceUnavailableError("x"), True, True),
        (ProviderNotConfiguredError("x"), True, False),
        (InvalidRequestError("x", param="seed"), False, False),
        (ModerationBlockedError("x"), False, False),
        (ModelNotFoundError("x"), False, False),
    ],
)
def test_which_failures_fail_over(error: GatewayError, moves_on: bool, counts: bool) -> None:
    assert fails_over(error) is moves_on
    assert counts_against_provider(error) is counts


def test_the_breaker_opens_after_consecutive_failures_and_admits_one_trial_after_cooling() -> None:
    now = [100.0]
    store = MemoryBreakers(BreakerPolicy(failures=2, cooldown_seconds=10, trial_seconds=60), clock=lambda: now[0])

    async def run() -> None:
        assert await store.admit("fal") == "go"
        assert await store.record("fal", failed=True) == "closed"
        assert await store.record("fal", failed=False) == "closed"  # a success resets the count
        assert await store.record("fal", failed=True) == "closed"
        assert await store.record("fal", failed=True) == "open"
        assert await store.admit("fal") == "skip" and await store.state("fal") == ("open", 10)
        assert await store.admit("replicate") == "go"  # per provider
        now[0] += 10
        assert await store.state("fal") == ("half_open", 0.0)
        assert await store.admit("fal") == "trial"
        assert await store.admit("fal") == "skip"  # one trial at a time
        assert await store.record("fal", failed=True) == "open"  # a failed trial: cooling again
        assert await store.admit("fal") == "skip"
        now[0] += 10
        assert await store.admit("fal") == "trial"
        assert await store.record("fal", failed=False) == "closed"
        assert await store.admit("fal") == "go"
        now[0] += 100  # a trial that never reported frees its slot after trial_seconds
        await store.record("fal", failed=True)
        await store.record("fal", failed=True)
        now[0] += 10
        assert await store.admit("fal") == "trial"
        now[0] += 59
        assert await store.admit("fal") == "skip"
        now[0] += 2
        assert await store.admit("fal") == "trial"
        await store.abandon("fal")  # a trial whose request was cancelled: the next may try at once
        assert await store.admit("fal") == "trial"

    asyncio.run(run())


def test_observed_breakers_report_the_last_state_seen_for_the_metrics() -> None:
    observed = ObservedBreakers(MemoryBreakers(BreakerPolicy(failures=1)), providers={"fal": None, "gemini": None})

    async def run() -> None:
        await observed.record("fal", failed=True)

    asyncio.run(run())
    assert observed.breaker_states() == {"fal": "open", "gemini": "closed"}


def test_a_route_plans_each_deployment_serving_the_mode_in_order() -> None:
    route = plan_route(ROUTED, "edit", ImageRequest(prompt="p", model="routed"), plan_for, forced=None)
    assert [o.deployment.provider for o in route.options] == ["fal", "replicate", "gemini"]
    assert route.primary.entry.provider == "fal" and not route.forced
    generate = ROUTED.deployments_for("generate")
    assert [d.provider for d in generate] == ["fal", "gemini"]


def test_the_primarys_refusal_is_the_answer_and_a_later_deployment_that_cannot_take_it_is_skipped() -> None:
    with pytest.raises(InvalidRequestError) as refused:
        plan_route(ROUTED, "edit", ImageRequest.model_validate({"prompt": "p", "steps": 99}), plan_for, forced=None)
    assert refused.value.param == "steps"
    route = plan_route(ROUTED, "edit", ImageRequest.model_validate({"prompt": "p", "steps": 20}), plan_for, forced=None)
    assert [o.deployment.provider for o in route.options] == ["fal", "replicate"]
    [skipped] = route.skipped
    assert skipped.provider == "gemini" and "steps" in skipped.reason


def test_each_primary_call_gets_a_leg_on_every_other_deployment_with_its_share() -> None:
    # fal makes up to 4 per call: n=6 is two calls of 3; replicate and gemini make one per call.
    route = plan_route(ROUTED, "edit", ImageRequest(prompt="p", n=6), plan_for, forced=None)
    fal, replicate, gemini = route.options
    assert [call.expected_images for call in fal.plan.calls] == [3, 3]
    assert [len(leg) for leg in fal.legs] == [1, 1]
    assert [[c.expected_images for c in leg] for leg in replicate.legs] == [[1, 1, 1], [1, 1, 1]]
    indexes = [c.index for leg in gemini.legs for c in leg]
    assert indexes == [0, 1, 2, LEG_INDEX_STRIDE, LEG_INDEX_STRIDE + 1, LEG_INDEX_STRIDE + 2]
    assert route.estimate() >= 0


def test_a_legs_seeds_continue_where_the_images_before_it_ended() -> None:
    # With a seed, fal makes one image per call (each image's seed then reproduces it).
    route = plan_route(ROUTED, "edit", ImageRequest(prompt="p", n=3, seed=10), plan_for, forced=None)
    fal, _, gemini = route.options
    assert [call.payload["seed"] for call in fal.plan.calls] == [10, 11, 12]
    assert [[c.payload.get("seed") for c in leg] for leg in gemini.legs] == [[10], [11], [12]]


def test_provider_slash_model_forces_one_deployment() -> None:
    catalog = Catalog([ROUTED])
    assert resolve_model(catalog, "routed") == (ROUTED, None)
    assert resolve_model(catalog, "replicate/routed") == (ROUTED, "replicate")
    route = plan_route(ROUTED, "edit", ImageRequest(prompt="p"), plan_for, forced="replicate")
    assert [o.deployment.provider for o in route.options] == ["replicate"] and route.forced
    for name in ("openai/routed", "fal/nothing", "nothing"):
        with pytest.raises(ModelNotFoundError):
            resolve_model(catalog, name)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"id": "m", "modes": ["edit"], "deployments": []}, "at least 1"),
        ({"id": "m", "modes": ["edit"], "provider": "fal", "deployments": [{"provider": "fal"}]}, "belong to each"),
        (
            {
                "id": "m",
                "modes": ["generate"],
                "deployments": [{"provider": "a", "upstream": "u", "modes": ["edit"], "images": {"field": "i"}}],
            },
            "does not list",
        ),
        (
            {
                "id": "m",
                "modes": ["generate"],
                "deployments": [{"provider": "a", "upstream": "u"}, {"provider": "a", "upstream": "v"}],
            },
            "two generate deployments",
        ),
        ({"id": "m", "modes": ["generate"], "deployments": [{"id": "x", "provider": "a", "upstream": "u"}]}, "id"),
    ],
)
def test_a_routed_model_that_cannot_route_is_refused(row: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Model.model_validate(row)
