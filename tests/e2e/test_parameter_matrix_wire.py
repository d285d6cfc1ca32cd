"""Issue 3's parameter matrix on the wire: every row of every model's table, as the upstream receives it.

For every deployment of every built-in model, every mode it serves and every row of its table in
``GET /v1/models/{id}``, one request goes through the openai SDK to a live pixelgate whose fal, openai,
Replicate and Gemini providers point at the fake upstreams (``tests/fakes/``; see
``tests/e2e/wire_harness.py``). A deployment of a routed model is forced with ``<provider>/<id>``.
The payload the fake *received* is compared with the one a baseline request (prompt and image only)
produced: a row counts as forwarded when it moves the payload, and the table must say exactly where
(pydantic-ai's ``tests/models/test_model_settings_support.py`` pattern, both directions).

- passthrough / renamed: the value, typed as the row says, under the row's upstream name, and
  nothing else moved (never under the client's name when renamed);
- converted: the row's upstream field holds the native form (``size`` to ``{width, height}``, a
  ratio enum or a pixel enum; ``n`` to ``num_images``; ``image`` to a list; ``model`` to the
  endpoint);
- emulated: the payload is the baseline's, and the response shows pixelgate did the work;
- unsupported: the payload is the baseline's, and the response warns.

The sandbox models have no upstream: their ``?dry_run=true`` payload stands in for the captured one.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import httpx
import pytest
from pydantic import JsonValue

from normalization.catalog import Mode, ModelEntry, load_builtin_catalog
from normalization.introspect import parameter_table
from providers import registry
from tests.e2e.wire_harness import (
    MASK,
    SECOND,
    SOURCE,
    Exchange,
    Harness,
    Row,
    Wire,
    deployment_name,
    find_deployment,
    same_image,
    start_harness,
    unlisted_field,
)

CATALOG = load_builtin_catalog()
UNLISTED = "(unlisted)"
"""Pseudo-row: a parameter no table knows passes straight through."""
STANDARD_VALUES: dict[str, JsonValue] = {
    "quality": "high",
    "background": "opaque",
    "input_fidelity": "high",
    "moderation": "low",
    "style": "natural",
    "user": "user-42",
    "partial_images": 1,
    "negative_prompt": "blurry",
    "seed": 5,
    "cfg_scale": 4.5,
}
"""Values for standard parameters a model may not support (any accepted value does)."""


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with start_harness(tmp_path_factory.mktemp("matrix-data")) as running:
        yield running


# --- the cases -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    provider: str
    model: str
    upstream: str
    mode: Mode
    param: str

    def __str__(self) -> str:
        return f"{self.provider}/{self.model}/{self.upstream}-{self.mode}-{self.param}"

    @property
    def deployment(self) -> str:
        return f"{self.provider}/{self.model}/{self.upstream}"


def _cases() -> list[Case]:
    cases = []
    for entry in CATALOG.deployments():
        for mode in entry.modes:
            for name in [*parameter_table(entry), UNLISTED]:
                if mode == "generate" and name in ("image", "mask"):
                    continue
                cases.append(Case(entry.provider, entry.id, entry.upstream, mode, name))
    return cases


CASES = _cases()


def entry_of(case: Case) -> ModelEntry:
    return find_deployment(case.provider, case.model, case.upstream)


def _sample(row: Row, mode: Mode) -> JsonValue:
    """A valid value for ``row`` that differs from its default."""
    values = row.get("values")
    if isinstance(values, list) and values:
        return next((v for v in reversed(values) if v != row.get("default")), values[-1])
    kind = row.get("type")
    maximum, minimum = row.get("maximum"), row.get("minimum")
    if kind == "integer":
        # Just above the minimum: the sandbox's delay_ms is milliseconds of real waiting.
        return int(minimum) + 1 if isinstance(minimum, int | float) else 7
    if kind == "number":
        top = float(maximum) if isinstance(maximum, int | float) else 6.0
        low = float(minimum) if isinstance(minimum, int | float) else 0.0
        return (top + low) / 2 + 0.25
    if kind == "boolean":
        return row.get("default") is not True
    if kind == "array":
        return [{"path": "https://example.com/style.safetensors", "scale": 0.75}]
    return "a probe value"


def _ratio_text(value: str) -> str:
    width, _, height = value.partition("x")
    ratio = Fraction(int(width), int(height))
    return f"{ratio.numerator}:{ratio.denominator}"


def _ratios(values: list[JsonValue]) -> list[str]:
    return [str(v) for v in values if isinstance(v, str) and ":" in v]


def pixel_values(entry: ModelEntry) -> list[str]:
    return [v for v in entry.size.values if v != "auto"]


# --- one check per behavior ----------------------------------------------------------------------


def _check_forwarded(h: Harness, entry: ModelEntry, case: Case, row: Row) -> None:
    """passthrough / renamed: the typed value under the upstream name, nothing else moved."""
    upstream = row["upstream"]
    assert isinstance(upstream, str)
    value = _sample(row, case.mode)
    result = h.probe(entry, case.mode, {case.param: value})
    base = h.baseline(entry, case.mode).wire
    wire = result.wire
    assert wire.fields[upstream] == wire.spelled(value)
    assert type(wire.fields[upstream]) is type(wire.spelled(value))
    assert wire.moved(base) == {upstream}
    assert result.handled(case.param) == {"behavior": row["behavior"], "upstream": upstream, "note": None}
    if upstream != case.param:
        assert case.param not in wire.fields


def _check_untouched(h: Harness, entry: ModelEntry, case: Case, result: Exchange) -> Wire:
    base = h.baseline(entry, case.mode)
    assert len(result.wires) == len(base.wires)
    wire = result.wire
    assert wire.moved(base.wire) == set()
    assert (wire.target, wire.files) == (base.wire.target, base.wire.files)
    return wire


def _check_unsupported(h: Harness, entry: ModelEntry, case: Case, row: Row) -> None:
    if case.param == "mask":
        result = h.probe(entry, case.mode, mask=True)
    else:
        result = h.probe(entry, case.mode, {case.param: STANDARD_VALUES.get(case.param, "a probe value")})
    _check_untouched(h, entry, case, result)
    assert result.handled(case.param)["behavior"] == "unsupported"
    assert f"'{case.param}'" in result.headers["x-pixelgate-warnings"]


def _check_emulated(h: Harness, entry: ModelEntry, case: Case, row: Row) -> None:
    name = case.param
    native_formats = entry.output_format.values
    probes: dict[str, dict[str, JsonValue]] = {
        "size": {"size": "48x32"},
        "aspect_ratio": {"aspect_ratio": "1:1"},
        "resolution": {"resolution": "0.25"},
        "response_format": {"response_format": "url"},
        "output_format": {"output_format": next(f for f in ("webp", "gif") if f not in native_formats)},
        "output_compression": {"output_compression": 40},
        "n": {"n": 2},
    }
    extra = probes[name]
    result = h.probe(entry, case.mode, extra)
    if name == "n":
        # One image per upstream call: pixelgate makes n calls of the baseline.
        base = h.baseline(entry, case.mode).wire
        assert [w.moved(base) for w in result.wires] == [set(), set()]
        assert len(result.images()) == 2
        return
    _check_untouched(h, entry, case, result)
    if name == "output_compression":
        # Our encoder applies it: the upstream's image is re-encoded.
        metadata = result.body["metadata"]
        assert isinstance(metadata, dict) and metadata["converted"] is True
        assert result.handled(name)["behavior"] == "emulated"
        return
    if name == "response_format":
        data = result.body["data"]
        assert isinstance(data, list) and len(data) == 1
        item = data[0]
        assert isinstance(item, dict) and "b64_json" not in item
        assert httpx.get(str(item["url"])).status_code == 200
        return
    [image] = result.images()
    if name == "size":
        assert image.size == (48, 32) and result.body["size"] == "48x32"
    elif name == "aspect_ratio":
        assert image.width == image.height
    elif name == "resolution":
        assert abs(image.width * image.height - 500 * 500) / (500 * 500) < 0.02
    else:
        assert image.format == str(extra["output_format"]).upper()
        assert result.body["output_format"] == extra["output_format"]


def _check_size(h: Harness, entry: ModelEntry, case: Case, row: Row) -> None:
    """converted size, aspect_ratio or resolution: the native field, nothing else moved."""
    spec = entry.size
    upstream = str(row["upstream"])
    base = h.baseline(entry, case.mode).wire
    if case.param == "size":
        if spec.kind == "pixel_enum":
            sent = pixel_values(entry)[-1]
        elif spec.kind == "aspect_ratio":
            ratio = "16:9" if "16:9" in spec.values else _ratios(list(spec.values))[0]
            w, _, hgt = ratio.partition(":")
            sent = f"{int(w) * 8}x{int(hgt) * 8}"
        else:
            sent = "96x64"
        result = h.probe(entry, case.mode, {"size": sent})
        assert result.body["size"] == sent
        assert result.images()[0].size == tuple(int(p) for p in sent.split("x"))
    elif case.param == "aspect_ratio":
        if spec.kind == "aspect_ratio":
            sent = "16:9" if "16:9" in spec.values else _ratios(list(spec.values))[0]
        elif spec.kind == "pixel_enum":
            sent = _ratio_text(pixel_values(entry)[-1])
        else:
            sent = "16:9"
        result = h.probe(entry, case.mode, {"aspect_ratio": sent})
    else:
        sent = "0.5K"
        result = h.probe(entry, case.mode, {"resolution": sent})
    wire = result.wire
    tier = spec.tier_field
    if "/" in upstream:  # free width/height sent as two fields
        width_field, height_field = upstream.split("/")
        assert wire.moved(base) == {width_field, height_field}
        native: JsonValue = {"width": wire.fields[width_field], "height": wire.fields[height_field]}
    elif tier is not None and case.param == "size":  # an exact size: the nearest ratio and tier
        assert wire.moved(base) == {upstream, tier}
        native = wire.fields[upstream]
        assert wire.fields[tier] == spec.tier_values[0]  # a small size: the smallest tier, then resized
    else:
        assert wire.moved(base) == {upstream}
        native = wire.fields[upstream]
    if tier is not None and case.param == "resolution":  # "0.5K" asks the nearest native tier
        assert upstream == tier and native == spec.tier_values[0]
    elif spec.kind == "aspect_ratio":
        expected = ratio if case.param == "size" else sent
        assert native == expected
    elif spec.kind == "pixel_enum":
        assert native in pixel_values(entry)
        if case.param == "size":
            assert native == sent
        elif case.param == "aspect_ratio":
            assert _ratio_text(str(native)) == sent
    else:
        assert isinstance(native, dict)
        width, height = native["width"], native["height"]
        assert isinstance(width, int) and isinstance(height, int)
        if case.param == "size":
            assert (width, height) == (96, 64)
        elif case.param == "aspect_ratio":
            assert math.isclose(width / height, 16 / 9, rel_tol=0.02)
        else:
            assert abs(width * height - 512 * 512) / (512 * 512) < 0.03
    assert result.handled(case.param).get("upstream") in (upstream, None)


def _check_standard(h: Harness, entry: ModelEntry, case: Case, row: Row) -> None:
    """The rows derived from the entry's structure: model, prompt, image, mask, n, output_*."""
    name, behavior = case.param, row["behavior"]
    upstream = row.get("upstream")
    base = h.baseline(entry, case.mode).wire
    if name == "model":
        assert behavior == "converted" and base.target == upstream
    elif name == "prompt":
        result = h.probe(entry, case.mode, prompt="a different instruction")
        assert result.wire.moved(base) == {upstream}
        assert result.wire.fields[str(upstream)] == "a different instruction"
    elif name == "image":
        images = 2 if row.get("maximum", 1) != 1 else 1
        result = h.probe(entry, case.mode, images=images)
        refs = result.wire.image_refs(str(upstream))
        assert len(refs) == images and all(same_image(r, d) for r, d in zip(refs, [SOURCE, SECOND], strict=False))
        if behavior == "converted":  # a list field, even for one image
            assert result.wire.form or isinstance(result.wire.fields[str(upstream)], list)
        else:
            assert result.wire.form or isinstance(result.wire.fields[str(upstream)], str)
    elif name == "mask":
        result = h.probe(entry, case.mode, mask=True)
        [ref] = result.wire.image_refs(str(upstream))
        assert same_image(ref, MASK)
        assert result.handled("mask") == {"behavior": "renamed", "upstream": upstream, "note": None}
    elif name == "n":
        count = min(2, entry.count.max)
        result = h.probe(entry, case.mode, {"n": count})
        assert result.wire.moved(base) == {upstream}
        assert result.wire.fields[str(upstream)] == result.wire.spelled(count)
        assert len(result.images()) == count
    elif name == "output_format":
        fmt = next((f for f in entry.output_format.values if f != "png"), "png")
        result = h.probe(entry, case.mode, {"output_format": fmt})
        # png is what the baseline asks already (a lossless source), so asking it moves nothing.
        assert result.wire.moved(base) == (set() if fmt == "png" else {upstream})
        assert result.wire.fields[str(upstream)] == fmt
        assert result.body["output_format"] == fmt
        assert result.handled("output_format") == {"behavior": behavior, "upstream": upstream, "note": None}
    else:
        assert name == "output_compression"
        _check_forwarded(h, entry, case, row)


def _check_unlisted(h: Harness, entry: ModelEntry, case: Case) -> None:
    field, value = unlisted_field(entry)
    assert field not in h.table(entry)
    result = h.probe(entry, case.mode, {field: value}, strict_input=False)
    assert result.wire.moved(h.baseline(entry, case.mode).wire) == {field}
    assert result.wire.fields[field] == value


STRUCTURAL = frozenset({"model", "prompt", "image", "mask", "n", "output_format", "output_compression"})


@pytest.mark.parametrize("case", CASES, ids=str)
def test_parameter_reaches_the_upstream_as_its_table_says(harness: Harness, case: Case) -> None:
    entry = entry_of(case)
    if case.param == UNLISTED:
        _check_unlisted(harness, entry, case)
        return
    row = harness.table(entry)[case.param]
    behavior = row["behavior"]
    if behavior == "unsupported":
        _check_unsupported(harness, entry, case, row)
    elif behavior == "emulated":
        _check_emulated(harness, entry, case, row)
    elif case.param in ("size", "aspect_ratio", "resolution"):
        assert behavior == "converted"
        _check_size(harness, entry, case, row)
    elif case.param in STRUCTURAL:
        _check_standard(harness, entry, case, row)
    else:
        assert behavior in ("passthrough", "renamed")
        _check_forwarded(harness, entry, case, row)


@pytest.mark.parametrize("entry", CATALOG.deployments(), ids=deployment_name)
def test_the_matrix_covers_every_row_the_table_shows(harness: Harness, entry: ModelEntry) -> None:
    covered = {case.param for case in CASES if case.deployment == deployment_name(entry)}
    assert set(harness.table(entry)) | {UNLISTED} == covered


def test_the_matrix_covers_every_provider_kind() -> None:
    assert {case.provider for case in CASES} == set(registry.kinds())
