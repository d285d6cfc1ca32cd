"""Size matching: a :class:`SizeRequest` against a model's native size control.

:func:`resolve_size` matches the request (parsed by :func:`parse_size_request`, re-exported here)
against a model's :class:`~normalization.catalog.SizeSpec` and returns a :class:`SizeDecision`: the
native fields to send, the exact size emulation must produce (if any) and how each client parameter
was handled. Pure functions, no I/O.

Distances are logarithmic: ratios compare by ``|ln r - ln c|`` (so 7:1 is nearer 8:1 than 4:1) and
tiers by ``|ln pixels - ln candidate pixels|``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import product

from pydantic import JsonValue

from core.errors import InvalidRequestError
from core.model_shape import SizeSpec
from normalization.catalog import Behavior
from normalization.size_parsing import (
    DIMENSIONS_RE,
    MAX_SIDE,
    RATIO_RE,
    SizeRequest,
    format_ratio,
    format_size,
    format_tier,
    parse_size_request,
    parse_tier,
)

__all__ = [
    "SizeDecision",
    "SizeRequest",
    "fit_dimensions",
    "nearest_pixel_value",
    "nearest_ratio",
    "nearest_tier",
    "parse_size_request",
    "resolve_size",
]

DEFAULT_PIXELS = 1024 * 1024
"""Scale used when neither the client, the model's default nor an input image gives one."""
# Two float distances closer than this are a tie (then the earlier candidate wins).
_TIE = 1e-9


@dataclass(frozen=True, slots=True)
class SizeDecision:
    """How a :class:`SizeRequest` is served by one model.

    ``fields`` are added to the upstream payload. ``target`` is the exact ``(W, H)`` the final images
    must have (emulation resizes/fits to it); None keeps what the provider returns. ``behaviors``
    has an entry for every honored source (``sources`` minus ``ignored``): CONVERTED when the
    model's native control does the job, EMULATED when pixelgate resizes. ``notes`` are
    human-readable remarks for the response metadata (mapping to nearest values, ignored params).
    ``ignored`` pairs each ignored parameter with its note (the engine warns about them).
    """

    fields: dict[str, JsonValue] = field(default_factory=dict)
    target: tuple[int, int] | None = None
    behaviors: dict[str, Behavior] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    ignored: tuple[tuple[str, str], ...] = ()


# --- matching ----------------------------------------------------------------------------------------


def _ratio_distance(ratio: float, candidate: float) -> float:
    return abs(math.log(ratio) - math.log(candidate))


def _nearest_index(distances: Sequence[tuple[float, ...]]) -> int:
    """Index of the smallest distance tuple; near-equal floats tie and the earlier one wins."""
    best = 0
    for index, distance in enumerate(distances[1:], start=1):
        for mine, theirs in zip(distance, distances[best], strict=True):
            if mine < theirs - _TIE:
                best = index
                break
            if mine > theirs + _TIE:
                break
    return best


def _ratio_values(values: Iterable[str]) -> list[tuple[str, float]]:
    """The values of an aspect-ratio enum that are ratios (``auto``, ``match_input`` are not)."""
    found: list[tuple[str, float]] = []
    for value in values:
        match = RATIO_RE.match(value)
        if match is not None and float(match.group(2)) > 0 and float(match.group(1)) > 0:
            found.append((value, float(match.group(1)) / float(match.group(2))))
    return found


def _pixel_values(values: Iterable[str]) -> list[tuple[str, tuple[int, int]]]:
    """The values of a pixel enum that are ``WxH`` (``auto`` is not)."""
    found: list[tuple[str, tuple[int, int]]] = []
    for value in values:
        match = DIMENSIONS_RE.match(value)
        if match is not None and int(match.group(1)) > 0 and int(match.group(2)) > 0:
            found.append((value, (int(match.group(1)), int(match.group(2)))))
    return found


def _tier_values(values: Iterable[str]) -> list[tuple[str, int]]:
    found: list[tuple[str, int]] = []
    for value in values:
        try:
            found.append((value, parse_tier(value)))
        except InvalidRequestError:
            continue  # "auto" and the like are not tiers
    return found


def nearest_ratio(ratio: float, candidates: Sequence[tuple[str, float]]) -> str:
    """The candidate value whose ratio is nearest by log distance (first wins a tie)."""
    return candidates[_nearest_index([(_ratio_distance(ratio, c),) for _, c in candidates])][0]


def nearest_tier(pixels: float, candidates: Sequence[tuple[str, int]]) -> str:
    """The candidate value whose pixel count is nearest by log distance (first wins a tie)."""
    return candidates[_nearest_index([(_ratio_distance(pixels, c),) for _, c in candidates])][0]


def nearest_pixel_value(ratio: float, pixels: float, candidates: Sequence[tuple[str, tuple[int, int]]]) -> str:
    """The ``WxH`` candidate nearest by ratio first, then by pixel count."""
    distances = [(_ratio_distance(ratio, w / h), _ratio_distance(pixels, w * h)) for _, (w, h) in candidates]
    return candidates[_nearest_index(distances)][0]


def _defaults(
    req: SizeRequest, spec: SizeSpec, input_size: tuple[int, int] | None, *, input_first: bool
) -> tuple[float, float]:
    """Wanted ``(ratio, pixels)``: the request's, else from the input image / the model's default."""
    spec_default = (
        (spec.default_width, spec.default_height)
        if spec.default_width is not None and spec.default_height is not None
        else None
    )
    ratio_sources = (input_size, spec_default)
    pixel_sources = (input_size, spec_default) if input_first else (spec_default, input_size)
    ratio = float(req.ratio) if req.ratio is not None else None
    for known in ratio_sources:
        if ratio is None and known is not None:
            ratio = known[0] / known[1]
    pixels = float(req.tier_pixels) if req.tier_pixels is not None else None
    for known in pixel_sources:
        if pixels is None and known is not None:
            pixels = float(known[0] * known[1])
    return (ratio if ratio is not None else 1.0), (pixels if pixels is not None else float(DEFAULT_PIXELS))


def _free_size(ratio: float, pixels: float) -> tuple[int, int]:
    """A ``(W, H)`` with about ``pixels`` pixels at ``ratio``, each side within 1..MAX_SIDE."""
    width = min(MAX_SIDE, max(1, round(math.sqrt(pixels * ratio))))
    height = min(MAX_SIDE, max(1, round(math.sqrt(pixels / ratio))))
    return width, height


def _is_native(spec: SizeSpec, width: int, height: int) -> bool:
    """Whether a ``dimensions`` model accepts ``width x height`` as it is."""
    return all(
        spec.min_side <= side <= spec.max_side and side % spec.multiple_of == 0 for side in (width, height)
    ) and (spec.max_pixels is None or width * height <= spec.max_pixels)


def fit_dimensions(spec: SizeSpec, ratio: float, pixels: float) -> tuple[int, int]:
    """The ``(W, H)`` a ``dimensions`` model accepts that is closest to ``ratio`` at ``pixels``.

    Sides are multiples of ``multiple_of`` within ``min_side..max_side`` and the area is at most
    ``max_pixels``; within those bounds the ratio is kept as well as possible, then the scale.
    """
    step = spec.multiple_of
    low = max(step, math.ceil(spec.min_side / step) * step)
    high = max(low, spec.max_side // step * step)
    if spec.max_pixels is not None:
        pixels = min(pixels, spec.max_pixels)
    width, height = math.sqrt(pixels * ratio), math.sqrt(pixels / ratio)
    shrink = min(1.0, high / width, high / height)
    width, height = width * shrink, height * shrink
    grow = max(1.0, low / width, low / height)
    width, height = width * grow, height * grow

    def options(side: float) -> set[int]:
        return {
            min(high, max(low, math.floor(side / step) * step)),
            min(high, max(low, math.ceil(side / step) * step)),
        }

    candidates = sorted(product(options(width), options(height)))
    if spec.max_pixels is not None:
        fitting = [(w, h) for w, h in candidates if w * h <= spec.max_pixels]
        if not fitting:
            # Only reachable when rounding up to min_side broke the area: shrink the longer side.
            w, h = candidates[0]
            while w * h > spec.max_pixels and (w > low or h > low):
                w, h = (w - step, h) if (w >= h and w > low) or h <= low else (w, h - step)
            fitting = [(w, h)]
        candidates = fitting
    distances = [(_ratio_distance(ratio, w / h) + _ratio_distance(pixels, w * h),) for w, h in candidates]
    return candidates[_nearest_index(distances)]


def _encode(spec: SizeSpec, width: int, height: int) -> dict[str, JsonValue]:
    if spec.encoding == "fields":
        return {spec.width_field: width, spec.height_field: height}
    assert spec.field is not None  # SizeSpec validates this for encoding "object"
    return {spec.field: {"width": width, "height": height}}


# --- resolving -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Outcome:
    fields: dict[str, JsonValue]
    target: tuple[int, int] | None
    shape: Behavior
    """Behavior of the params that carry the shape (``size``, ``aspect_ratio``)."""
    scale: Behavior
    """Behavior of ``resolution``."""
    notes: tuple[str, ...]


def _describe(req: SizeRequest) -> str:
    parts: list[str] = []
    if req.ratio is not None:
        parts.append(f"{_ratio_source(req)} {format_ratio(req.ratio)}")
    if req.tier_pixels is not None:
        parts.append(f"resolution {format_tier(req.tier_pixels)}")
    return " and ".join(parts)


def _ratio_source(req: SizeRequest) -> str:
    return "size" if "size" in req.sources else "aspect_ratio"


def _resolve_emulated(req: SizeRequest, spec: SizeSpec, input_size: tuple[int, int] | None) -> _Outcome:
    # Without a native control the natural output is the input's size (edits), so scale defaults to it.
    target = req.exact or _free_size(*_defaults(req, spec, input_size, input_first=True))
    note = f"the model has no size control; the result is resized to {format_size(target)}"
    return _Outcome({}, target, Behavior.EMULATED, Behavior.EMULATED, (note,))


def _resolve_dimensions(req: SizeRequest, spec: SizeSpec, input_size: tuple[int, int] | None) -> _Outcome:
    if req.exact is not None:
        width, height = req.exact
        if _is_native(spec, width, height):
            return _Outcome(_encode(spec, width, height), req.exact, Behavior.CONVERTED, Behavior.CONVERTED, ())
        sent = fit_dimensions(spec, width / height, width * height)
        note = (
            f"size {format_size(req.exact)} is not supported natively; {format_size(sent)} is requested "
            f"and the result is resized to {format_size(req.exact)}"
        )
        return _Outcome(_encode(spec, *sent), req.exact, Behavior.EMULATED, Behavior.EMULATED, (note,))
    ratio, pixels = _defaults(req, spec, input_size, input_first=False)
    sent = fit_dimensions(spec, ratio, pixels)
    note = f"{_describe(req)} sent as {format_size(sent)}"
    return _Outcome(_encode(spec, *sent), None, Behavior.CONVERTED, Behavior.CONVERTED, (note,))


def _resolve_pixel_enum(req: SizeRequest, spec: SizeSpec, input_size: tuple[int, int] | None) -> _Outcome:
    choices = _pixel_values(spec.values)
    assert spec.field is not None  # SizeSpec validates this for kind "pixel_enum"
    if not choices:
        return _resolve_emulated(req, spec, input_size)
    if req.exact is not None:
        width, height = req.exact
        native = next((value for value, dims in choices if dims == req.exact), None)
        if native is not None:
            return _Outcome({spec.field: native}, req.exact, Behavior.CONVERTED, Behavior.CONVERTED, ())
        chosen = nearest_pixel_value(width / height, width * height, choices)
        note = (
            f"size {format_size(req.exact)} is not supported natively; {chosen} is requested "
            f"and the result is resized to {format_size(req.exact)}"
        )
        return _Outcome({spec.field: chosen}, req.exact, Behavior.EMULATED, Behavior.EMULATED, (note,))
    ratio, pixels = _defaults(req, spec, input_size, input_first=False)
    chosen = nearest_pixel_value(ratio, pixels, choices)
    note = f"{_describe(req)} mapped to nearest supported {chosen}"
    return _Outcome({spec.field: chosen}, None, Behavior.CONVERTED, Behavior.CONVERTED, (note,))


def _resolve_aspect(req: SizeRequest, spec: SizeSpec, input_size: tuple[int, int] | None) -> _Outcome:
    ratios = _ratio_values(spec.values)
    tiers = _tier_values(spec.tier_values) if spec.tier_field else []
    assert spec.field is not None  # SizeSpec validates this for kind "aspect_ratio"
    if not ratios:
        return _resolve_emulated(req, spec, input_size)
    fields: dict[str, JsonValue] = {}
    if req.exact is not None:
        width, height = req.exact
        fields[spec.field] = nearest_ratio(width / height, ratios)
        if spec.tier_field and tiers:
            fields[spec.tier_field] = nearest_tier(width * height, tiers)
        note = (
            f"size {format_size(req.exact)} is requested as aspect ratio {fields[spec.field]}; "
            f"the result is resized to {format_size(req.exact)}"
        )
        return _Outcome(fields, req.exact, Behavior.EMULATED, Behavior.EMULATED, (note,))

    notes: list[str] = []
    chosen_ratio: float | None = None
    if req.ratio is not None:
        chosen = nearest_ratio(float(req.ratio), ratios)
        fields[spec.field] = chosen
        chosen_ratio = dict(ratios)[chosen]
        if abs(chosen_ratio - float(req.ratio)) > _TIE:
            notes.append(f"{_ratio_source(req)} {format_ratio(req.ratio)} mapped to nearest supported {chosen}")
    scale = Behavior.CONVERTED
    target: tuple[int, int] | None = None
    if req.tier_pixels is not None:
        if spec.tier_field and tiers:
            tier = nearest_tier(req.tier_pixels, tiers)
            fields[spec.tier_field] = tier
            if dict(tiers)[tier] != req.tier_pixels:
                notes.append(f"resolution {format_tier(req.tier_pixels)} mapped to nearest supported {tier}")
        else:
            # The model sets the shape only: keep its (mapped) ratio and resize to the asked scale.
            ratio = chosen_ratio if chosen_ratio is not None else _defaults(req, spec, input_size, input_first=True)[0]
            target = _free_size(ratio, req.tier_pixels)
            scale = Behavior.EMULATED
            notes.append(
                f"resolution {format_tier(req.tier_pixels)} has no native control; "
                f"the result is resized to {format_size(target)}"
            )
    return _Outcome(fields, target, Behavior.CONVERTED, scale, tuple(notes))


def resolve_size(req: SizeRequest, spec: SizeSpec, input_size: tuple[int, int] | None) -> SizeDecision:
    """Match a size request to one model's native size control.

    ``input_size`` is the first input image's ``(W, H)`` for edits, None for generations; it gives
    the default ratio and scale where the request leaves them open. Rules:

    - nothing asked: no fields (the provider's default) and no target, for every kind;
    - ``size`` ``WxH``: ``target`` is exactly it; the native fields carry it when the model accepts
      it as is (CONVERTED), else the nearest native choice is sent and the result is fitted (EMULATED);
    - ratio / tier: mapped to the nearest value the model supports (log distance) with no target
      (CONVERTED); ``dimensions`` models get ``W, H`` computed from ratio and tier, rounded to
      ``multiple_of`` and clamped to the bounds; a tier on a model with only an aspect-ratio control,
      and anything on a model with no size control, is EMULATED via ``target``.

    Never raises for a valid request and spec.
    """
    if not req.asked:
        return SizeDecision()
    if spec.kind == "dimensions":
        outcome = _resolve_dimensions(req, spec, input_size)
    elif spec.kind == "pixel_enum":
        outcome = _resolve_pixel_enum(req, spec, input_size)
    elif spec.kind == "aspect_ratio":
        outcome = _resolve_aspect(req, spec, input_size)
    else:
        outcome = _resolve_emulated(req, spec, input_size)
    behaviors = {
        source: outcome.scale if source == "resolution" else outcome.shape
        for source in req.sources
        if source not in req.ignored
    }
    ignored = tuple(
        (
            source,
            f"{source} ignored: size {format_size(req.exact)} fixes shape and scale"
            if req.exact is not None
            else f"{source} ignored: size sets the aspect ratio",
        )
        for source in req.ignored
    )
    notes = tuple(note for _, note in ignored) + outcome.notes
    return SizeDecision(outcome.fields, outcome.target, behaviors, notes, ignored)
