"""Size requests and the model's native size control (interim version; see the sizes work branch).

``parse_size_request`` reads ``size``/``aspect_ratio``/``resolution``; ``resolve_size`` picks the
native fields for a :class:`SizeSpec` and the exact target emulation must produce.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

from pydantic import BaseModel, ConfigDict, JsonValue

from app.errors import InvalidRequestError
from normalization.catalog import Behavior, SizeSpec

_WXH = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")
_RATIO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*:\s*(\d+(?:\.\d+)?)\s*$")
_TIERS = {"0.5k": 512 * 512, "1k": 1024 * 1024, "2k": 2048 * 2048, "4k": 4096 * 4096}


class SizeRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    exact: tuple[int, int] | None = None
    ratio: Fraction | None = None
    tier_pixels: int | None = None
    sources: tuple[str, ...] = ()


class SizeDecision(BaseModel):
    model_config = ConfigDict(frozen=True)

    fields: dict[str, JsonValue]
    target: tuple[int, int] | None
    behaviors: dict[str, Behavior]
    notes: tuple[str, ...] = ()


def parse_size_request(size: str | None, aspect_ratio: str | None, resolution: str | None) -> SizeRequest:
    exact = ratio = tier = None
    sources: list[str] = []
    if size and size.strip().lower() != "auto":
        if match := _WXH.match(size):
            exact = (int(match[1]), int(match[2]))
        elif match := _RATIO.match(size):
            ratio = Fraction(match[1]) / Fraction(match[2])
        else:
            raise InvalidRequestError(f"Invalid value for 'size': {size!r}", param="size")
        sources.append("size")
    if aspect_ratio and aspect_ratio.strip().lower() != "auto":
        match = _RATIO.match(aspect_ratio)
        if not match:
            raise InvalidRequestError(f"Invalid value for 'aspect_ratio': {aspect_ratio!r}", param="aspect_ratio")
        if ratio is None:
            ratio = Fraction(match[1]) / Fraction(match[2])
        sources.append("aspect_ratio")
    if resolution and resolution.strip().lower() != "auto":
        key = resolution.strip().lower()
        if key in _TIERS:
            tier = _TIERS[key]
        else:
            try:
                tier = int(float(key) * 1_000_000)
            except ValueError as exc:
                raise InvalidRequestError(
                    f"Invalid value for 'resolution': {resolution!r}", param="resolution"
                ) from exc
        sources.append("resolution")
    return SizeRequest(exact=exact, ratio=ratio, tier_pixels=tier, sources=tuple(sources))


def resolve_size(req: SizeRequest, spec: SizeSpec, input_size: tuple[int, int] | None) -> SizeDecision:
    if not req.sources:
        return SizeDecision(fields={}, target=None, behaviors={})
    if req.exact:
        width, height = req.exact
    else:
        base = input_size or (spec.default_width or 1024, spec.default_height or 1024)
        ratio = req.ratio or Fraction(base[0], base[1])
        pixels = req.tier_pixels or base[0] * base[1]
        width = round(math.sqrt(pixels * ratio))
        height = round(math.sqrt(pixels / ratio))
    if spec.kind == "dimensions":
        m = spec.multiple_of
        w = min(max(round(width / m) * m, spec.min_side), spec.max_side)
        h = min(max(round(height / m) * m, spec.min_side), spec.max_side)
        fields: dict[str, JsonValue] = (
            {spec.width_field: w, spec.height_field: h}
            if spec.encoding == "fields"
            else {str(spec.field): {"width": w, "height": h}}
        )
        return SizeDecision(
            fields=fields,
            target=(width, height),
            behaviors=dict.fromkeys(req.sources, Behavior.CONVERTED),
        )
    return SizeDecision(fields={}, target=(width, height), behaviors=dict.fromkeys(req.sources, Behavior.EMULATED))
