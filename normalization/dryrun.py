"""``?dry_run=true``: the exact upstream request(s) a plan would send, images elided to digests, and
what they would cost (the estimate a budget holds: :mod:`normalization.pricing`)."""

from __future__ import annotations

from pydantic import JsonValue

from core.images import InputImage
from normalization.plan import Plan
from normalization.pricing import describe_price, plan_estimate, usd
from normalization.routing.route import Route
from providers.base import UpstreamCall


def _image_ref(image: InputImage) -> str:
    return f"<{image.media_type} {image.width}x{image.height} {len(image.data)} bytes {image.digest}>"


def _call_body(call: UpstreamCall) -> dict[str, JsonValue]:
    body: dict[str, JsonValue] = dict(call.payload)
    if call.image_field and call.images:
        refs = [_image_ref(image) for image in call.images]
        body[call.image_field] = refs[0] if call.image_kind == "single" else list(refs)
    if call.mask_field and call.mask is not None:
        body[call.mask_field] = _image_ref(call.mask)
    return body


def _requests(plan: Plan) -> list[JsonValue]:
    return [
        {
            "index": call.index,
            "upstream": call.upstream,
            "expected_images": call.expected_images,
            "body": _call_body(call),
            # A streamed request whose upstream streams previews: the call is made as a stream.
            **({"partial_images": call.partial_images} if call.partial_images else {}),
        }
        for call in plan.calls
    ]


def describe_plan(plan: Plan) -> dict[str, JsonValue]:
    """The dry-run body: model, provider, upstream requests, emulation plan, parameter handling, cost estimate."""
    emulation = plan.emulation
    return {
        "dry_run": True,
        "model": plan.entry.id,
        "provider": plan.entry.provider,
        "upstream_model": plan.entry.upstream,
        "upstream_requests": _requests(plan),
        "emulation": {
            "n": emulation.n,
            "response_format": emulation.response_format,
            "url_fallback": emulation.url_fallback,
            "output_format": emulation.output_format,
            "output_compression": emulation.output_compression,
            "exact_size": f"{emulation.target[0]}x{emulation.target[1]}" if emulation.target else None,
            "native_format": emulation.native_format,
        },
        "parameters": {name: handling.model_dump(mode="json") for name, handling in plan.parameters.items()},
        "warnings": [warning.message for warning in plan.warnings],
        "cost_usd": usd(plan_estimate(plan)),
        "price": describe_price(plan.entry.price),
    }


def describe_route(route: Route) -> dict[str, JsonValue]:
    """The dry-run body of a route: the primary deployment's plan at the top level (as for a
    single-provider model), then ``deployments``: the request each deployment would get, in the order
    they would be tried, and ``skipped``: deployments that cannot take this request, with why.
    ``cost_usd`` is the estimate a budget holds (the dearest deployment's)."""
    body = describe_plan(route.primary)
    body["model"] = route.model.id
    body["forced"] = route.forced
    body["deployments"] = [
        {
            "provider": option.deployment.provider,
            "upstream_model": option.deployment.upstream,
            "upstream_requests": _requests(option.plan),
            "parameters": {name: h.model_dump(mode="json") for name, h in option.plan.parameters.items()},
            "warnings": [warning.message for warning in option.plan.warnings],
            "cost_usd": usd(plan_estimate(option.plan)),
            "price": describe_price(option.deployment.price),
        }
        for option in route.options
    ]
    body["skipped"] = [skip.model_dump(mode="json") for skip in route.skipped]
    body["cost_usd"] = usd(route.estimate())
    return body
