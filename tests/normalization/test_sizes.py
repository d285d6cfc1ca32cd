"""Size parsing and matching: properties over random specs and requests, plus concrete cases."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from core.errors import InvalidRequestError
from core.model_shape import SizeSpec
from normalization.catalog import Behavior, ModelEntry, load_builtin_catalog
from normalization.size_parsing import MAX_SIDE, format_ratio, format_size, parse_tier
from normalization.sizes import SizeDecision, SizeRequest, parse_size_request, resolve_size

DETERMINISTIC = settings(derandomize=True, max_examples=150, deadline=None)
RATIO_VALUES = (
    "21:9",
    "16:9",
    "3:2",
    "4:3",
    "5:4",
    "1:1",
    "4:5",
    "3:4",
    "2:3",
    "9:16",
    "9:21",
    "4:1",
    "8:1",
    "1:8",
)
TIER_VALUES = ("0.5K", "1K", "2K", "4K", "0.25", "1", "2")
PIXEL_VALUES = ("1024x1024", "1536x1024", "1024x1536", "512x512", "1792x1024", "1024x1792", "256x256")


def _log_distance(a: float, b: float) -> float:
    return abs(math.log(a) - math.log(b))


def _ratio_of(value: str) -> float:
    width, height = value.split(":")
    return float(width) / float(height)


def _dims_of(value: str) -> tuple[int, int]:
    width, height = value.split("x")
    return int(width), int(height)


# --- strategies ----------------------------------------------------------------------------------

ratios = st.builds(Fraction, st.integers(1, 64), st.integers(1, 64))
exact_sizes = st.tuples(st.integers(1, MAX_SIDE), st.integers(1, MAX_SIDE)).filter(
    lambda wh: Fraction(1, 64) <= Fraction(wh[0], wh[1]) <= 64
)
tiers = st.integers(1, MAX_SIDE * MAX_SIDE)
input_sizes = st.none() | st.tuples(st.integers(16, 8192), st.integers(16, 8192))


@st.composite
def requests(draw: st.DrawFn) -> SizeRequest:
    """Any request parse_size_request can produce, built directly (parsing is tested separately)."""
    if draw(st.booleans()):
        return SizeRequest(exact=draw(exact_sizes), sources=("size",))
    ratio = draw(st.none() | ratios)
    tier = draw(st.none() | tiers)
    sources = (("aspect_ratio",) if ratio is not None else ()) + (("resolution",) if tier is not None else ())
    return SizeRequest(ratio=ratio, tier_pixels=tier, sources=sources)


@st.composite
def dimension_specs(draw: st.DrawFn) -> SizeSpec:
    step = draw(st.sampled_from((1, 8, 16, 32, 64)))
    min_side = draw(st.integers(1, 512))
    max_side = draw(st.integers(max(min_side, step) * 4, MAX_SIDE))
    low = max(step, math.ceil(min_side / step) * step)
    max_pixels = draw(st.none() | st.integers(low * low * 4, max_side * max_side))
    default = draw(st.none() | st.tuples(st.integers(256, 2048), st.integers(256, 2048)))
    encoding = draw(st.sampled_from(("object", "fields")))
    return SizeSpec(
        kind="dimensions",
        field="image_size" if encoding == "object" else None,
        encoding=encoding,
        min_side=min_side,
        max_side=max_side,
        multiple_of=step,
        max_pixels=max_pixels,
        default_width=None if default is None else default[0],
        default_height=None if default is None else default[1],
    )


@st.composite
def aspect_specs(draw: st.DrawFn) -> SizeSpec:
    values = draw(st.lists(st.sampled_from(RATIO_VALUES), min_size=1, unique=True))
    with_auto = draw(st.booleans())
    tier_values = tuple(draw(st.lists(st.sampled_from(TIER_VALUES), unique=True)))
    return SizeSpec(
        kind="aspect_ratio",
        field="aspect_ratio",
        values=(("auto",) if with_auto else ()) + tuple(values),
        tier_field="resolution" if tier_values else None,
        tier_values=tier_values,
    )


@st.composite
def pixel_specs(draw: st.DrawFn) -> SizeSpec:
    values = draw(st.lists(st.sampled_from(PIXEL_VALUES), min_size=1, unique=True))
    return SizeSpec(kind="pixel_enum", field="size", values=("auto", *values))


specs = dimension_specs() | aspect_specs() | pixel_specs() | st.just(SizeSpec())


def _sent_dimensions(spec: SizeSpec, decision: SizeDecision) -> tuple[int, int]:
    if spec.encoding == "fields":
        width, height = decision.fields[spec.width_field], decision.fields[spec.height_field]
    else:
        assert spec.field is not None
        box = decision.fields[spec.field]
        assert isinstance(box, dict)
        width, height = box["width"], box["height"]
    assert isinstance(width, int)
    assert isinstance(height, int)
    return width, height


# --- properties ----------------------------------------------------------------------------------


@DETERMINISTIC
@given(req=requests(), spec=specs, input_size=input_sizes)
def test_result_is_supported_by_the_spec(req: SizeRequest, spec: SizeSpec, input_size: tuple[int, int] | None) -> None:
    decision = resolve_size(req, spec, input_size)
    assert set(decision.behaviors) == set(req.sources)
    if not req.asked:
        assert decision == SizeDecision()
    elif spec.kind == "dimensions":
        width, height = _sent_dimensions(spec, decision)
        for side in (width, height):
            assert spec.min_side <= side <= spec.max_side
            assert side % spec.multiple_of == 0
        assert spec.max_pixels is None or width * height <= spec.max_pixels
    elif spec.kind in ("aspect_ratio", "pixel_enum"):
        assert spec.field is not None
        assert decision.fields.get(spec.field, spec.values[-1]) in spec.values
        assert decision.fields.get(spec.field) != "auto"
        if spec.tier_field is not None and spec.tier_field in decision.fields:
            assert decision.fields[spec.tier_field] in spec.tier_values
    else:
        assert decision.fields == {}
        assert decision.target is not None
        assert all(b is Behavior.EMULATED for b in decision.behaviors.values())
    if decision.target is not None:
        assert all(1 <= side <= MAX_SIDE for side in decision.target)


@DETERMINISTIC
@given(
    exact=exact_sizes,
    spec=specs,
    input_size=input_sizes,
    ratio=st.none() | ratios,
    tier_k=st.none() | st.integers(1, 16),
)
def test_wxh_always_wins(
    exact: tuple[int, int],
    spec: SizeSpec,
    input_size: tuple[int, int] | None,
    ratio: Fraction | None,
    tier_k: int | None,
) -> None:
    req = parse_size_request(
        format_size(exact),
        None if ratio is None else format_ratio(ratio),
        None if tier_k is None else f"{tier_k}K",
    )
    assert req.exact == exact
    assert req.ratio is None and req.tier_pixels is None
    decision = resolve_size(req, spec, input_size)
    assert decision.target == exact
    assert set(decision.behaviors) == {"size"}
    assert len([note for note in decision.notes if "ignored" in note]) == len(req.ignored)


@DETERMINISTIC
@given(ratio=ratios, spec=aspect_specs(), input_size=input_sizes)
def test_aspect_ratio_maps_to_the_nearest_supported_ratio(
    ratio: Fraction, spec: SizeSpec, input_size: tuple[int, int] | None
) -> None:
    decision = resolve_size(parse_size_request(None, format_ratio(ratio), None), spec, input_size)
    chosen = decision.fields["aspect_ratio"]
    assert isinstance(chosen, str)
    best = min(_log_distance(float(ratio), _ratio_of(v)) for v in spec.values if v != "auto")
    assert _log_distance(float(ratio), _ratio_of(chosen)) <= best + 1e-9
    assert decision.target is None
    assert decision.behaviors == {"aspect_ratio": Behavior.CONVERTED}


@DETERMINISTIC
@given(tier=tiers, spec=aspect_specs(), input_size=input_sizes)
def test_resolution_maps_to_the_nearest_tier_or_is_emulated(
    tier: int, spec: SizeSpec, input_size: tuple[int, int] | None
) -> None:
    decision = resolve_size(SizeRequest(tier_pixels=tier, sources=("resolution",)), spec, input_size)
    if spec.tier_values:
        chosen = decision.fields["resolution"]
        assert isinstance(chosen, str)
        best = min(_log_distance(tier, parse_tier(v)) for v in spec.tier_values)
        assert _log_distance(tier, parse_tier(chosen)) <= best + 1e-9
        assert decision.target is None
        assert decision.behaviors == {"resolution": Behavior.CONVERTED}
    else:
        assert decision.target is not None
        width, height = decision.target
        assert decision.behaviors == {"resolution": Behavior.EMULATED}
        if 64 * 64 <= tier <= (MAX_SIDE // 64) ** 2:  # away from the side clamps, the scale is kept
            assert _log_distance(width * height, tier) < 0.05


@DETERMINISTIC
@given(ratio=st.none() | ratios, tier=st.none() | tiers, spec=pixel_specs(), input_size=input_sizes)
def test_pixel_enum_is_nearest_by_ratio_then_pixels(
    ratio: Fraction | None, tier: int | None, spec: SizeSpec, input_size: tuple[int, int] | None
) -> None:
    req = SizeRequest(ratio=ratio, tier_pixels=tier, sources=("aspect_ratio",))
    decision = resolve_size(req, spec, input_size)
    if ratio is None and tier is None:
        assert decision == SizeDecision()
        return
    chosen = decision.fields["size"]
    assert isinstance(chosen, str)
    want_ratio = float(ratio) if ratio is not None else (input_size[0] / input_size[1] if input_size else 1.0)
    want_pixels = tier or (input_size[0] * input_size[1] if input_size else 1024 * 1024)
    candidates = [_dims_of(v) for v in spec.values if v != "auto"]
    best_ratio = min(_log_distance(want_ratio, w / h) for w, h in candidates)
    width, height = _dims_of(chosen)
    assert _log_distance(want_ratio, width / height) <= best_ratio + 1e-9
    same_ratio = [(w, h) for w, h in candidates if _log_distance(want_ratio, w / h) <= best_ratio + 1e-9]
    best_pixels = min(_log_distance(want_pixels, w * h) for w, h in same_ratio)
    assert _log_distance(want_pixels, width * height) <= best_pixels + 1e-9


@DETERMINISTIC
@given(ratio=ratios, tier=st.integers(256 * 256, 4096 * 4096))
def test_dimensions_keep_ratio_and_scale_within_rounding(ratio: Fraction, tier: int) -> None:
    spec = SizeSpec(kind="dimensions", field="image_size", min_side=1, max_side=MAX_SIDE, multiple_of=16)
    decision = resolve_size(SizeRequest(ratio=ratio, tier_pixels=tier, sources=("aspect_ratio",)), spec, None)
    width, height = _sent_dimensions(spec, decision)
    # Each side is one of the two multiples of 16 around the ideal (or the minimum side, 16).
    ideal_w, ideal_h = math.sqrt(tier * ratio), math.sqrt(tier / ratio)
    assume(max(ideal_w, ideal_h) <= MAX_SIDE - 16)  # beyond that the side clamp rules
    assert abs(width - ideal_w) < 16 or width == 16
    assert abs(height - ideal_h) < 16 or height == 16
    assert decision.target is None


@DETERMINISTIC
@given(spec=specs, input_size=input_sizes)
def test_nothing_asked_sends_nothing(spec: SizeSpec, input_size: tuple[int, int] | None) -> None:
    for size in (None, "", "auto", " AUTO "):
        assert resolve_size(parse_size_request(size, size, size), spec, input_size) == SizeDecision()


# --- parsing -------------------------------------------------------------------------------------


@DETERMINISTIC
@given(exact=exact_sizes, ratio=ratios, tier_k=st.integers(1, 32), tier_mp=st.integers(1, 268))
def test_parse_round_trips(exact: tuple[int, int], ratio: Fraction, tier_k: int, tier_mp: int) -> None:
    assert parse_size_request(format_size(exact), None, None).exact == exact
    assert parse_size_request(format_size(exact).upper(), None, None).exact == exact
    assert parse_size_request(None, format_ratio(ratio), None).ratio == ratio
    assert parse_size_request(format_ratio(ratio), None, None).ratio == ratio
    half_k = f"{tier_k / 2}K"
    assert parse_size_request(None, None, half_k).tier_pixels == (tier_k * 512) ** 2
    assert parse_size_request(None, None, str(tier_mp)).tier_pixels == tier_mp * 1_000_000


@pytest.mark.parametrize(
    ("text", "pixels"),
    [("0.5K", 512 * 512), ("1K", 1024 * 1024), ("2k", 2048 * 2048), ("4K", 4096 * 4096), ("0.25", 250_000),
     ("1", 1_000_000), ("2MP", 2_000_000), ("1.5 mp", 1_500_000)],
)  # fmt: skip
def test_tier_syntax(text: str, pixels: int) -> None:
    assert parse_size_request(None, None, text).tier_pixels == pixels


def test_precedence_and_sources() -> None:
    req = parse_size_request("1024X768", "16:9", "2K")
    assert (req.exact, req.ratio, req.tier_pixels) == ((1024, 768), None, None)
    assert req.sources == ("size", "aspect_ratio", "resolution")
    assert req.ignored == ("aspect_ratio", "resolution")

    req = parse_size_request("16:9", "4:3", "1K")
    assert (req.ratio, req.tier_pixels, req.ignored) == (Fraction(16, 9), 1024 * 1024, ("aspect_ratio",))
    assert parse_size_request("16:9", "32:18", None).ignored == ()
    assert parse_size_request(None, " 16/9 ", None).ratio == Fraction(16, 9)
    assert parse_size_request(None, "2.39:1", None).ratio == Fraction(239, 100)


@pytest.mark.parametrize(
    ("size", "aspect_ratio", "resolution", "param"),
    [
        ("1024", None, None, "size"),
        ("x768", None, None, "size"),
        ("0x768", None, None, "size"),
        ("-5x10", None, None, "size"),
        ("20000x10", None, None, "size"),
        ("6500x100", None, None, "size"),  # ratio 65:1
        ("big", None, None, "size"),
        ("16:0", None, None, "size"),
        ("1:65", None, None, "size"),
        (None, "16x9", None, "aspect_ratio"),
        (None, "0:1", None, "aspect_ratio"),
        (None, "100:1", None, "aspect_ratio"),
        (None, "16:9:1", None, "aspect_ratio"),
        (None, "wide", None, "aspect_ratio"),
        (None, None, "0K", "resolution"),
        (None, None, "0", "resolution"),
        (None, None, "-1K", "resolution"),
        (None, None, "17K", "resolution"),
        (None, None, "1000", "resolution"),
        (None, None, "1024x1024", "resolution"),
        (None, None, "high", "resolution"),
        ("1024x768", "nope", None, "aspect_ratio"),  # an ignored parameter is still validated
    ],
)
def test_bad_values_name_the_param(
    size: str | None, aspect_ratio: str | None, resolution: str | None, param: str
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_size_request(size, aspect_ratio, resolution)
    assert caught.value.param == param
    assert caught.value.status_code == 400


# --- concrete examples ---------------------------------------------------------------------------

KONTEXT_LIKE = SizeSpec(kind="aspect_ratio", field="aspect_ratio", values=("auto", "1:1", "4:1", "8:1"))
FAL_IMAGE_SIZE = SizeSpec(
    kind="dimensions", field="image_size", min_side=1, max_side=14142, default_width=1024, default_height=1024
)
GPT_IMAGE = SizeSpec(kind="pixel_enum", field="image_size", values=("auto", "1024x1024", "1536x1024", "1024x1536"))


def test_seven_to_one_maps_to_eight_to_one() -> None:
    decision = resolve_size(parse_size_request(None, "7:1", None), KONTEXT_LIKE, None)
    assert decision.fields == {"aspect_ratio": "8:1"}
    assert decision.target is None
    assert decision.behaviors == {"aspect_ratio": Behavior.CONVERTED}
    assert decision.notes == ("aspect_ratio 7:1 mapped to nearest supported 8:1",)


def test_size_ratio_acts_as_aspect_ratio() -> None:
    decision = resolve_size(parse_size_request("7:1", "1:1", None), KONTEXT_LIKE, None)
    assert decision.fields == {"aspect_ratio": "8:1"}
    assert decision.behaviors == {"size": Behavior.CONVERTED}
    assert decision.notes[0] == "aspect_ratio ignored: size sets the aspect ratio"


def test_exact_size_on_aspect_model_is_emulated() -> None:
    decision = resolve_size(parse_size_request("1000x1000", None, "2K"), KONTEXT_LIKE, (640, 480))
    assert decision.fields == {"aspect_ratio": "1:1"}
    assert decision.target == (1000, 1000)
    assert decision.behaviors == {"size": Behavior.EMULATED}


def test_dimensions_from_ratio_and_tier() -> None:
    decision = resolve_size(parse_size_request(None, "16:9", "1K"), FAL_IMAGE_SIZE, None)
    assert decision.fields == {"image_size": {"width": 1365, "height": 768}}
    assert decision.behaviors == {"aspect_ratio": Behavior.CONVERTED, "resolution": Behavior.CONVERTED}
    # Ratio alone keeps the model's default scale; tier alone keeps an edit's input ratio.
    assert resolve_size(parse_size_request(None, "1:4", None), FAL_IMAGE_SIZE, None).fields == {
        "image_size": {"width": 512, "height": 2048}
    }
    assert resolve_size(parse_size_request(None, None, "2K"), FAL_IMAGE_SIZE, (400, 200)).fields == {
        "image_size": {"width": 2896, "height": 1448}
    }


def test_exact_size_native_or_fitted_on_dimensions() -> None:
    native = resolve_size(parse_size_request("1000x700", None, None), FAL_IMAGE_SIZE, None)
    assert native.fields == {"image_size": {"width": 1000, "height": 700}}
    assert native.target == (1000, 700)
    assert native.behaviors == {"size": Behavior.CONVERTED}

    spec = SizeSpec(kind="dimensions", encoding="fields", min_side=64, max_side=2048, multiple_of=16)
    fitted = resolve_size(parse_size_request("1000x700", None, None), spec, None)
    assert fitted.fields == {"width": 1008, "height": 704}
    assert fitted.target == (1000, 700)
    assert fitted.behaviors == {"size": Behavior.EMULATED}


def test_pixel_enum_examples() -> None:
    assert resolve_size(parse_size_request("1536x1024", None, None), GPT_IMAGE, None).behaviors == {
        "size": Behavior.CONVERTED
    }
    wide = resolve_size(parse_size_request(None, "16:9", None), GPT_IMAGE, None)
    assert wide.fields == {"image_size": "1536x1024"}
    assert wide.target is None
    off = resolve_size(parse_size_request("1920x1080", None, None), GPT_IMAGE, None)
    assert off.fields == {"image_size": "1536x1024"}
    assert off.target == (1920, 1080)


def test_no_size_control_resizes_from_the_input() -> None:
    none = SizeSpec()
    ratio_only = resolve_size(parse_size_request(None, "16:9", None), none, (1000, 800))
    assert ratio_only.fields == {}
    assert ratio_only.target == (1193, 671)  # the input's 800 000 px at 16:9
    assert ratio_only.behaviors == {"aspect_ratio": Behavior.EMULATED}
    tier_only = resolve_size(parse_size_request(None, None, "0.5K"), none, (1000, 500))
    assert tier_only.target == (724, 362)  # 512² px at the input's 2:1
    assert resolve_size(parse_size_request(None, None, None), none, (1000, 800)) == SizeDecision()


BUILTIN = sorted(load_builtin_catalog().deployments(), key=lambda e: e.id)


@pytest.mark.parametrize("entry", BUILTIN, ids=lambda e: e.id)
@settings(derandomize=True, max_examples=40, deadline=None)
@given(req=requests(), input_size=input_sizes)
def test_builtin_models_get_supported_sizes(
    entry: ModelEntry, req: SizeRequest, input_size: tuple[int, int] | None
) -> None:
    spec = entry.size
    decision = resolve_size(req, spec, input_size if "edit" in entry.modes else None)
    if spec.kind in ("aspect_ratio", "pixel_enum") and spec.field in decision.fields:
        assert decision.fields[spec.field] in spec.values
    if spec.kind == "dimensions" and decision.fields:
        width, height = _sent_dimensions(spec, decision)
        assert spec.min_side <= min(width, height) <= max(width, height) <= spec.max_side
        assert spec.max_pixels is None or width * height <= spec.max_pixels
    if req.exact is not None:
        assert decision.target == req.exact


def test_catalog_examples() -> None:
    catalog = load_builtin_catalog()
    found = [catalog.get(name) for name in ("flux-pro-kontext", "hidream-i1-full", "hidream-e1-1")]
    kontext, i1, e1 = (model.primary for model in found if model is not None)
    assert resolve_size(parse_size_request(None, "7:1", None), kontext.size, (800, 600)).fields == {
        "aspect_ratio": "21:9"
    }
    assert resolve_size(parse_size_request("16:9", None, "2K"), i1.size, None).fields == {
        "image_size": {"width": 2731, "height": 1536}
    }
    assert resolve_size(parse_size_request("512x512", None, None), e1.size, (1024, 768)).target == (512, 512)


# --- fuzzing: arbitrary client strings -----------------------------------------------------------

near_sizes = st.from_regex(
    r"\s?\d{0,7}(\.\d{0,6})?\s?[xX:/*]?\s?\d{0,7}(\.\d{0,6})?\s?(k|K|mp|MP|m)?\s?", fullmatch=True
)
"""Strings shaped like sizes, ratios and tiers; ``\\d`` includes every Unicode digit (``١٠٢٤``)."""
client_strings = st.none() | st.text(max_size=24) | near_sizes | st.sampled_from(["auto", " AUTO ", "", "0:0", "1e3x2"])


@settings(derandomize=True, max_examples=600, deadline=None)
@given(size=client_strings, aspect_ratio=client_strings, resolution=client_strings)
def test_any_size_strings_parse_or_raise_invalid_request(
    size: str | None, aspect_ratio: str | None, resolution: str | None
) -> None:
    try:
        req = parse_size_request(size, aspect_ratio, resolution)
    except InvalidRequestError as exc:
        assert exc.param in ("size", "aspect_ratio", "resolution")
        assert exc.status_code == 400 and exc.code == "invalid_value"
        return
    if req.exact is not None:
        width, height = req.exact
        assert 1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE
        assert Fraction(1, 64) <= Fraction(width, height) <= 64
    if req.ratio is not None:
        assert Fraction(1, 64) <= req.ratio <= 64
    if req.tier_pixels is not None:
        assert 0 < req.tier_pixels <= MAX_SIDE * MAX_SIDE
    assert set(req.ignored) <= set(req.sources)
    for entry in BUILTIN:  # a request that parses is served by every model's size control
        decision = resolve_size(req, entry.size, (640, 480) if "edit" in entry.modes else None)
        assert decision.target is None or all(1 <= side <= MAX_SIDE for side in decision.target)


@settings(derandomize=True, max_examples=300, deadline=None)
@given(text=st.text(max_size=24) | near_sizes)
def test_tier_parser_raises_only_invalid_request(text: str) -> None:
    try:
        pixels = parse_tier(text)
    except InvalidRequestError as exc:
        assert exc.param == "resolution"
        return
    assert 0 < pixels <= MAX_SIDE * MAX_SIDE
