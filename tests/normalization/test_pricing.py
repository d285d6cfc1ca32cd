"""The pricing maths in process: a call's cost from its price parts, the estimate a plan implies (at
the size the upstream should make), the actual cost from what came back, rounding, and the meter that
counts completed calls of a fan-out that failed."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from core.errors import UpstreamError
from core.images import InputImage
from core.model_shape import PriceSpec
from normalization.catalog import ModelEntry, load_builtin_catalog
from normalization.engine import plan_request
from normalization.metering import MeteredAdapter, NoObserver, Spend
from normalization.pricing import (
    ASSUMED_SIZE,
    call_actual,
    call_estimate,
    cost,
    describe_price,
    expected_size,
    header_value,
    micros,
    plan_estimate,
    usd,
)
from normalization.request import EditInputs, ImageRequest
from providers.base import GeneratedImage, ImageAdapter, ProviderResult, UpstreamCall
from tests.images import encoded, png_bytes

D = Decimal


def entry(**fields: object) -> ModelEntry:
    base: dict[str, object] = {
        "id": "m",
        "provider": "p",
        "upstream": "u",
        "modes": ["generate", "edit"],
        "images": {"field": "image_url"},
        "count": {"field": "num_images", "max": 4},
    }
    return ModelEntry.model_validate({**base, **fields})


def call(
    images: int = 1, inputs: tuple[InputImage, ...] = (), payload: dict[str, object] | None = None
) -> UpstreamCall:
    return UpstreamCall.model_validate(
        {
            "model_id": "m",
            "provider": "p",
            "upstream": "u",
            "mode": "edit" if inputs else "generate",
            "payload": payload or {},
            "images": inputs,
            "expected_images": images,
        }
    )


def input_image(width: int, height: int) -> InputImage:
    data = png_bytes(width, height)
    return InputImage(data=data, media_type="image/png", width=width, height=height)


def test_a_call_costs_the_sum_of_the_parts_its_price_sets() -> None:
    price = PriceSpec(per_call=D("0.01"), per_image=D("0.02"), per_megapixel=D("0.1"), per_input_image=D("0.005"))
    # 3 images of 2 MP in all, from 2 inputs: 0.01 + 3*0.02 + 2*0.1 + 2*0.005
    assert cost(price, images=3, megapixels=D(2), input_images=2) == D("0.28")
    assert cost(PriceSpec(per_image=D("0.06")), images=4, megapixels=D(9), input_images=1) == D("0.24")
    assert cost(None, images=4, megapixels=D(9), input_images=1) == 0
    assert cost(PriceSpec(source="unknown"), images=4, megapixels=D(9), input_images=1) == 0


def test_the_estimate_counts_the_images_asked_for_at_the_size_sent() -> None:
    model = entry(
        size={"kind": "dimensions", "field": "image_size", "presets": {"square": [512, 512]}},
        price={"per_megapixel": "0.05"},
    )
    assert expected_size(model, call(payload={"image_size": {"width": 2000, "height": 1000}})) == (2000, 1000)
    assert expected_size(model, call(payload={"image_size": "square"})) == (512, 512)
    # 3 images of 2 MP at $0.05 per megapixel
    sized = call(images=3, payload={"image_size": {"width": 2000, "height": 1000}})
    assert model.price is not None
    assert call_estimate(model.price, model, sized) == D("0.3")


def test_without_a_size_the_estimate_uses_the_input_then_the_default_then_one_megapixel() -> None:
    no_control = entry(size={"kind": "none"})
    assert expected_size(no_control, call(inputs=(input_image(300, 200),))) == (300, 200)
    assert expected_size(no_control, call()) == ASSUMED_SIZE
    with_default = entry(size={"kind": "none", "default_width": 640, "default_height": 480})
    assert expected_size(with_default, call()) == (640, 480)
    enum = entry(size={"kind": "pixel_enum", "field": "size", "values": ["auto", "1536x1024"]})
    assert expected_size(enum, call(payload={"size": "1536x1024"})) == (1536, 1024)
    assert expected_size(enum, call(payload={"size": "auto"})) == ASSUMED_SIZE
    fields = entry(size={"kind": "dimensions", "encoding": "fields"})
    assert expected_size(fields, call(payload={"width": 64, "height": 32})) == (64, 32)


def test_a_plan_estimate_covers_every_fanned_out_call() -> None:
    catalog = load_builtin_catalog()
    found = catalog.get("hidream-i1-full")
    assert found is not None
    model = found.primary
    assert model.price is not None and model.price.per_megapixel == D("0.05")
    request = ImageRequest.model_validate({"model": "hidream-i1-full", "prompt": "p", "size": "1024x512", "n": 6})
    plan = plan_request(request, model, "generate", None)
    assert len(plan.calls) == 2  # 6 over a native maximum of 4: 3 + 3
    assert plan_estimate(plan) == D("0.05") * D(6 * 1024 * 512) / D(1_000_000)
    # An edit priced per image and per input image, at another price given explicitly.
    routed = catalog.get("hidream-e1-1")
    assert routed is not None
    edit = routed.primary
    image = input_image(64, 64)
    plan = plan_request(
        ImageRequest.model_validate({"model": "hidream-e1-1", "prompt": "p", "n": 2}),
        edit,
        "edit",
        EditInputs(images=(image,)),
    )
    assert plan_estimate(plan) == D("0.12")
    assert plan_estimate(plan, PriceSpec(per_input_image=D("0.5"))) == D("0.5") * len(plan.calls)


def test_the_actual_cost_counts_what_came_back_at_the_size_it_has() -> None:
    price = PriceSpec(per_image=D("0.01"), per_megapixel=D("1"))
    asked = call(images=1, payload={"image_size": {"width": 10, "height": 10}})
    returned = ProviderResult(
        images=(GeneratedImage(data=encoded(1000, 500, "PNG")), GeneratedImage(data=encoded(200, 100, "JPEG")))
    )
    # Two images (the extra one was made, and billed, too): 2 * 0.01 + (0.5 + 0.02) MP * $1
    assert call_actual(price, asked, returned) == D("0.54")
    assert call_actual(None, asked, returned) == 0


def test_amounts_round_to_micro_dollars_and_holds_round_up() -> None:
    assert usd(D("0.0000004")) == 0.0
    assert usd(D("0.0000005")) == 0.000001
    assert usd(D("0.12345678")) == 0.123457
    assert micros(D("0.0000001")) == 1  # a hold never falls short of its estimate
    assert micros(D("0.06")) == 60_000
    assert header_value(D("0.05")) == "0.050000"
    assert header_value(D("1E-7")) == "0.000000"
    assert describe_price(PriceSpec(per_image=D("0.06"), source="s")) == {
        "per_image": 0.06,
        "source": "s",
        "confirmed": False,
    }
    assert describe_price(None) is None


class _Adapter(ImageAdapter):
    """Call 0 answers at once; call 1 fails after call 0 has completed."""

    async def run(self, call: UpstreamCall) -> ProviderResult:
        if call.index == 1:
            await asyncio.sleep(0.05)
            raise UpstreamError("boom")
        image = GeneratedImage(data=encoded(10, 10, "PNG"))
        return ProviderResult(images=(image,) * call.expected_images)


async def test_the_meter_counts_the_calls_that_completed_even_when_a_sibling_failed() -> None:
    spend = Spend()
    metered = MeteredAdapter(_Adapter(), price=PriceSpec(per_image=D("0.25")), spend=spend, observer=NoObserver())
    first = call(images=2).model_copy(update={"index": 0})
    second = call(images=2).model_copy(update={"index": 1})
    assert (await metered.run(first)).images
    with pytest.raises(UpstreamError):
        await metered.run(second)
    assert spend.total == D("0.5") and spend.calls == 1
