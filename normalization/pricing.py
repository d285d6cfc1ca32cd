"""What a request costs, in USD, from the catalog's :class:`~core.model_shape.PriceSpec`: before the
upstream calls (the estimate a budget holds and a dry run shows) and after them (the actual cost).

One upstream call costs the sum of the parts its price sets::

    per_call + per_image * images + per_megapixel * megapixels + per_input_image * input images

- The estimate counts what the plan asks for: each call's ``expected_images``, at the size the
  upstream is expected to make (:func:`expected_size`), and the input images it sends.
- The actual cost counts what the upstream returned: every image of each call (extras the
  pipeline drops were made, and billed, all the same) at the size read from its header.
- A call that failed upstream costs nothing: fal bills a queue job only when it completes
  successfully, Replicate a prediction by the time it ran (a prediction refused or failed at once
  ran for none), OpenAI and Gemini an answer that carries images. No upstream pixelgate speaks to
  charges for a failed job, so only calls that returned images are counted; a provider that did
  would need a ``failed_call`` part here.

Money is :class:`~decimal.Decimal` throughout (exact sums); :func:`usd` rounds to the 6 decimals
the API shows (``metadata.cost_usd``, ``x-pixelgate-cost-usd``), :func:`micros` to the integer
micro-dollars the database keeps, rounding up so a hold never falls short of its estimate.
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal

from pydantic import JsonValue

from core.image_probe import probe_header
from core.images import ImageProblem
from core.model_shape import PriceSpec, SizeSpec
from normalization.catalog import ModelEntry
from normalization.plan import Plan
from providers.base import GeneratedImage, ProviderResult, UpstreamCall

ZERO = Decimal(0)
MEGA = Decimal(1_000_000)
SIX_PLACES = Decimal("0.000001")
ASSUMED_SIZE = (1024, 1024)
"""The size assumed when neither the request, the model nor the input says what the upstream makes:
most image models default to about one megapixel (a guess, used for estimates only)."""
HEADER_PIXEL_CAP = 1 << 40
"""Cap for reading a result's header for its size: results were checked against the real cap already."""
_PIXEL_ENUM = re.compile(r"(\d+)x(\d+)")


def cost(price: PriceSpec | None, *, images: int, megapixels: Decimal, input_images: int, calls: int = 1) -> Decimal:
    """The sum of the parts ``price`` sets for ``calls`` calls that made ``images`` images of ``megapixels``
    in all from ``input_images`` inputs (sent with every call). No price: zero."""
    if price is None:
        return ZERO
    total = ZERO
    if price.per_call is not None:
        total += price.per_call * calls
    if price.per_image is not None:
        total += price.per_image * images
    if price.per_megapixel is not None:
        total += price.per_megapixel * megapixels
    if price.per_input_image is not None:
        total += price.per_input_image * input_images * calls
    return total


def megapixels(width: int, height: int) -> Decimal:
    return Decimal(width * height) / MEGA


def call_estimate(price: PriceSpec | None, entry: ModelEntry, call: UpstreamCall) -> Decimal:
    """What ``call`` should cost if it returns the images it asks for, at the size it should make."""
    if price is None:
        return ZERO
    width, height = expected_size(entry, call)
    each = megapixels(width, height)
    return cost(
        price,
        images=call.expected_images,
        megapixels=each * call.expected_images,
        input_images=len(call.images),
    )


def plan_estimate(plan: Plan, price: PriceSpec | None = None) -> Decimal:
    """The estimate for every call of ``plan`` at ``price`` (default: the plan's model's price)."""
    price = plan.entry.price if price is None else price
    return sum((call_estimate(price, plan.entry, call) for call in plan.calls), ZERO)


def call_actual(price: PriceSpec | None, call: UpstreamCall, result: ProviderResult) -> Decimal:
    """What ``call`` cost, given what it returned: each image counted at the size its header says."""
    if price is None:
        return ZERO
    total_megapixels = ZERO
    if price.per_megapixel is not None:
        total_megapixels = sum((_result_megapixels(image) for image in result.images), ZERO)
    return cost(price, images=len(result.images), megapixels=total_megapixels, input_images=len(call.images))


def expected_size(entry: ModelEntry, call: UpstreamCall) -> tuple[int, int]:
    """The (width, height) the upstream should make for ``call``: the size the call sends, else what
    the model keeps or defaults to (an edit without size control keeps its input's size), else
    :data:`ASSUMED_SIZE`."""
    sent = _sent_size(entry.size, call)
    if sent is not None:
        return sent
    if entry.size.kind == "none" and call.images:
        first = call.images[0]
        return first.width, first.height
    if entry.size.default_width and entry.size.default_height:
        return entry.size.default_width, entry.size.default_height
    return ASSUMED_SIZE


def _sent_size(spec: SizeSpec, call: UpstreamCall) -> tuple[int, int] | None:
    payload = call.payload
    if spec.kind == "dimensions" and spec.encoding == "fields":
        width, height = payload.get(spec.width_field), payload.get(spec.height_field)
        return (width, height) if isinstance(width, int) and isinstance(height, int) else None
    value = payload.get(spec.field) if spec.field else None
    if spec.kind == "dimensions" and isinstance(value, dict):
        width, height = value.get("width"), value.get("height")
        return (width, height) if isinstance(width, int) and isinstance(height, int) else None
    if isinstance(value, str):
        if value in spec.presets:
            preset = spec.presets[value]
            return preset[0], preset[1]
        matched = _PIXEL_ENUM.fullmatch(value)
        if matched:
            return int(matched.group(1)), int(matched.group(2))
    return None


def _result_megapixels(image: GeneratedImage) -> Decimal:
    try:
        # The header the result check read; read here for an image made without one.
        header = image.header or probe_header(image.data, max_pixels=HEADER_PIXEL_CAP)
    except ImageProblem:
        # Results are checked before they get here; an unreadable one counts at the assumed size
        # rather than free.
        return megapixels(*ASSUMED_SIZE)
    return megapixels(header.width, header.height)


def usd(amount: Decimal) -> float:
    """``amount`` as the API shows it: a number rounded to 6 decimals (micro-dollars)."""
    return float(amount.quantize(SIX_PLACES, rounding=ROUND_HALF_UP))


def micros(amount: Decimal) -> int:
    """``amount`` in integer micro-dollars, rounded up (a hold never falls short of its estimate)."""
    return int((amount * MEGA).to_integral_value(rounding=ROUND_CEILING))


def describe_price(price: PriceSpec | None) -> dict[str, JsonValue] | None:
    """``price`` for the API (a dry run, the model object): its set parts as numbers, source, confirmed."""
    if price is None:
        return None
    parts: dict[str, JsonValue] = {}
    for name, value in price.model_dump(exclude_none=True).items():
        parts[name] = float(value) if isinstance(value, Decimal) else value
    return parts


def header_value(amount: Decimal) -> str:
    """``x-pixelgate-cost-usd``: fixed-point, 6 decimals (never an exponent)."""
    return f"{amount.quantize(SIX_PLACES, rounding=ROUND_HALF_UP):f}"
