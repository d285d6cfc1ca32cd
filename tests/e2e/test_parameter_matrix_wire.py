"""Issue 3's parameter matrix on the wire: every row of every model's table, as the upstream receives it.

For every built-in model, every mode it serves and every row of the table ``GET /v1/models/{id}``
shows, one request goes through the openai SDK to a live pixelgate whose fal and openai providers
point at the fake upstreams (``tests/fakes/fake_fal.py``, ``tests/fakes/fake_openai.py``). The
payload the fake *received* is compared with the one a baseline request (prompt and image only)
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
Bad values are refused with a 400 naming the client's parameter before anything reaches the fake.
"""

from __future__ import annotations

import base64
import io
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Protocol

import httpx
import openai
import pytest
from PIL import Image
from pydantic import JsonValue

from normalization.catalog import Mode, ModelEntry, load_builtin_catalog
from normalization.introspect import parameter_table
from providers.fal import FalAdapter
from tests.conftest import TEST_KEY, make_settings
from tests.fakes.fake_fal import FakeFal
from tests.fakes.fake_openai import Captured, FakeOpenAI, FakeOpenAIServer
from tests.images import png_bytes
from tests.live import LiveGateway

CATALOG = load_builtin_catalog()
FAL_KEY = "matrix-fal-key-id:matrix-fal-secret"
OPENAI_KEY = "sk-matrix-upstream-key"
PROMPT = "paint the roof red"
SOURCE = png_bytes(64, 48)
SECOND = png_bytes(64, 48, color=(9, 9, 9))
MASK = png_bytes(64, 48, color=(0, 0, 0))
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

Row = dict[str, JsonValue]


@dataclass(frozen=True)
class Wire:
    """One upstream request as the fake received it: where it went, its fields, its file parts.

    ``form`` is true for multipart bodies (openai edits), whose fields are all text.
    """

    target: str
    fields: dict[str, JsonValue]
    files: tuple[tuple[str, bytes], ...] = ()
    form: bool = False
    dry_run: bool = False

    def moved(self, baseline: Wire) -> set[str]:
        """The fields whose value differs from ``baseline``'s (added, removed or changed)."""
        missing = object()
        keys = self.fields.keys() | baseline.fields.keys()
        return {k for k in keys if self.fields.get(k, missing) != baseline.fields.get(k, missing)}

    def spelled(self, value: JsonValue) -> JsonValue:
        """``value`` as this wire carries it: multipart text, or the JSON value itself."""
        if not self.form:
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    def image_refs(self, name: str) -> list[bytes | str]:
        """What the wire carries for images under ``name``: bytes (decoded) or dry-run digests."""
        if self.form:
            return [data for part, data in self.files if part in (name, f"{name}[]")]
        value = self.fields.get(name)
        items = value if isinstance(value, list) else [value]
        refs: list[bytes | str] = []
        for item in items:
            assert isinstance(item, str), f"{name}: {item!r}"
            if self.dry_run:
                refs.append(item)
            else:
                assert item.startswith("data:image/png;base64,"), item[:40]
                refs.append(base64.b64decode(item.split(",", 1)[1]))
        return refs


def _same_image(ref: bytes | str, data: bytes) -> bool:
    if isinstance(ref, bytes):
        return ref == data
    return ref.startswith(f"<image/png 64x48 {len(data)} bytes ")


@dataclass(frozen=True)
class Answer:
    """What the client got: status, JSON body, headers (lower-case names)."""

    status: int
    body: dict[str, JsonValue]
    headers: dict[str, str]

    @classmethod
    def of(cls, response: HttpResponse) -> Answer:
        body = response.json()
        assert response.status_code == 200, body
        return cls(response.status_code, body, {k.lower(): v for k, v in response.headers.items()})


class HttpResponse(Protocol):
    """The SDK's raw HTTP response (its own httpx build), as far as the probes read it."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    def json(self) -> Any: ...


@dataclass
class Exchange:
    """One probe: the response the client got and the upstream requests it caused."""

    status: int
    body: dict[str, JsonValue]
    headers: dict[str, str]
    wires: list[Wire]

    @property
    def wire(self) -> Wire:
        assert len(self.wires) == 1, self.wires
        return self.wires[0]

    def handled(self, name: str) -> Row:
        metadata = self.body["metadata"]
        assert isinstance(metadata, dict)
        parameters = metadata["parameters"]
        assert isinstance(parameters, dict)
        row = parameters[name]
        assert isinstance(row, dict)
        return row

    def images(self) -> list[Image.Image]:
        data = self.body["data"]
        assert isinstance(data, list)
        out: list[Image.Image] = []
        for item in data:
            assert isinstance(item, dict) and isinstance(item.get("b64_json"), str)
            out.append(Image.open(io.BytesIO(base64.b64decode(str(item["b64_json"])))))
        return out


@dataclass
class Harness:
    """The live gateway, its fake upstreams, an SDK client, the tables and per-model baselines."""

    gateway: LiveGateway
    fal: FakeFal
    upstream: FakeOpenAIServer
    sdk: openai.OpenAI
    baselines: dict[tuple[str, Mode], Exchange] = field(default_factory=dict)
    tables: dict[str, dict[str, Row]] = field(default_factory=dict)

    def table(self, model: str) -> dict[str, Row]:
        if model not in self.tables:
            response = httpx.get(
                f"{self.gateway.api_url}/models/{model}", headers={"Authorization": f"Bearer {TEST_KEY}"}
            )
            assert response.status_code == 200
            self.tables[model] = response.json()["parameters"]
        return self.tables[model]

    def baseline(self, entry: ModelEntry, mode: Mode) -> Exchange:
        key = (entry.id, mode)
        if key not in self.baselines:
            self.baselines[key] = self.probe(entry, mode)
        return self.baselines[key]

    def _send(
        self,
        entry: ModelEntry,
        mode: Mode,
        extra: dict[str, JsonValue],
        *,
        images: int,
        mask: bool,
        prompt: str,
        dry_run: bool,
    ) -> Answer:
        body: dict[str, JsonValue] = {"response_format": "b64_json", **extra}
        query = {"dry_run": "true"} if dry_run else None
        if mode == "generate":
            raw = self.sdk.images.with_raw_response.generate(
                model=entry.id, prompt=prompt, extra_body=body, extra_query=query
            )
            return Answer.of(raw.http_response)
        files = [(f"in{i}.png", data, "image/png") for i, data in enumerate([SOURCE, SECOND][:images])]
        # Multipart: every scalar travels as text, as the SDKs send it.
        form = {key: _form_text(value) for key, value in body.items()}
        raw_edit = self.sdk.images.with_raw_response.edit(
            model=entry.id,
            prompt=prompt,
            image=files if images > 1 else files[0],
            mask=("mask.png", MASK, "image/png") if mask else openai.omit,
            extra_body=form,
            extra_query=query,
        )
        return Answer.of(raw_edit.http_response)

    def probe(
        self,
        entry: ModelEntry,
        mode: Mode,
        extra: dict[str, JsonValue] | None = None,
        *,
        images: int = 1,
        mask: bool = False,
        prompt: str = PROMPT,
    ) -> Exchange:
        """Send one request and collect what reached the upstream."""
        self.fal.reset()
        self.upstream.app.reset()
        args = extra or {}
        answer = self._send(entry, mode, args, images=images, mask=mask, prompt=prompt, dry_run=False)
        if entry.provider == "fal":
            wires = [Wire(s.endpoint_id, dict(s.payload)) for s in self.fal.submissions]
        elif entry.provider == "openai":
            wires = [_openai_wire(captured) for captured in self.upstream.app.requests]
        else:
            planned = self._send(entry, mode, args, images=images, mask=mask, prompt=prompt, dry_run=True).body
            calls = planned["upstream_requests"]
            assert isinstance(calls, list)
            wires = []
            for call in calls:
                assert isinstance(call, dict) and isinstance(call["body"], dict)
                wires.append(Wire(str(call["upstream"]), dict(call["body"]), dry_run=True))
        return Exchange(answer.status, answer.body, answer.headers, wires)


def _form_text(value: JsonValue) -> JsonValue:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def _openai_wire(captured: Captured) -> Wire:
    if captured.path.endswith("/images/generations"):
        fields = captured.json()
        assert isinstance(fields, dict)
        return Wire(str(fields.pop("model")), fields)
    form = captured.form()
    values: dict[str, JsonValue] = {}
    for key, value in form.fields:
        if key.endswith("[]"):
            listed = values.setdefault(key.removesuffix("[]"), [])
            assert isinstance(listed, list)
            listed.append(value)
        else:
            values[key] = value
    files = tuple((part.name, part.data) for part in form.files)
    return Wire(str(values.pop("model")), values, files, form=True)


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with (
        pytest.MonkeyPatch.context() as patch,
        FakeFal(api_key=FAL_KEY, latency=0) as fal,
        FakeOpenAIServer(FakeOpenAI(image=png_bytes(32, 32))) as upstream,
    ):
        # A job of the fake is done at once; the first poll need not wait the production 20 ms.
        patch.setattr(FalAdapter, "poll_initial_seconds", 0.001)
        fal.default_size = (64, 64)  # generations without a size: no 1024x1024 image to encode per probe
        settings = make_settings(
            tmp_path_factory.mktemp("matrix-data"),
            fal_key=FAL_KEY,
            fal_base_url=fal.base_url,
            fal_storage_url=fal.storage_url,
            openai_api_key=OPENAI_KEY,
            openai_base_url=upstream.base_url,
            providers_yaml={"fal": {"max_retries": 0}, "openai": {"max_retries": 0}},
        )
        with (
            LiveGateway(settings) as live,
            openai.OpenAI(base_url=live.api_url, api_key=TEST_KEY, max_retries=0, timeout=30) as sdk,
        ):
            yield Harness(live, fal, upstream, sdk)


# --- the cases -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    model: str
    mode: Mode
    param: str

    def __str__(self) -> str:
        return f"{self.model}-{self.mode}-{self.param}"


def _cases() -> list[Case]:
    cases = []
    for entry in CATALOG.entries():
        for mode in entry.modes:
            for name in [*parameter_table(entry), UNLISTED]:
                if mode == "generate" and name in ("image", "mask"):
                    continue
                cases.append(Case(entry.id, mode, name))
    return cases


CASES = _cases()


def _entry(model: str) -> ModelEntry:
    entry = CATALOG.get(model)
    assert entry is not None
    return entry


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


def _pixel_values(entry: ModelEntry) -> list[str]:
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
            sent = _pixel_values(entry)[-1]
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
            sent = _ratio_text(_pixel_values(entry)[-1])
        else:
            sent = "16:9"
        result = h.probe(entry, case.mode, {"aspect_ratio": sent})
    else:
        sent = "0.5K"
        result = h.probe(entry, case.mode, {"resolution": sent})
    wire = result.wire
    if "/" in upstream:  # free width/height sent as two fields
        width_field, height_field = upstream.split("/")
        assert wire.moved(base) == {width_field, height_field}
        native: JsonValue = {"width": wire.fields[width_field], "height": wire.fields[height_field]}
    else:
        assert wire.moved(base) == {upstream}
        native = wire.fields[upstream]
    if spec.kind == "aspect_ratio":
        expected = ratio if case.param == "size" else sent
        assert native == expected
    elif spec.kind == "pixel_enum":
        assert native in _pixel_values(entry)
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
        assert len(refs) == images and all(_same_image(r, d) for r, d in zip(refs, [SOURCE, SECOND], strict=False))
        if behavior == "converted":  # a list field, even for one image
            assert result.wire.form or isinstance(result.wire.fields[str(upstream)], list)
        else:
            assert result.wire.form or isinstance(result.wire.fields[str(upstream)], str)
    elif name == "mask":
        result = h.probe(entry, case.mode, mask=True)
        [ref] = result.wire.image_refs(str(upstream))
        assert _same_image(ref, MASK)
        assert result.handled("mask") == {"behavior": "renamed", "upstream": upstream, "note": None}
    elif name == "n":
        count = min(2, entry.count.max)
        result = h.probe(entry, case.mode, {"n": count})
        assert result.wire.moved(base) == {upstream}
        assert result.wire.fields[str(upstream)] == result.wire.spelled(count)
        assert len(result.images()) == count
    elif name == "output_format":
        fmt = next(f for f in entry.output_format.values if f != "png")
        result = h.probe(entry, case.mode, {"output_format": fmt})
        assert result.wire.moved(base) == {upstream}
        assert result.wire.fields[str(upstream)] == fmt
        assert result.body["output_format"] == fmt
    else:
        assert name == "output_compression"
        _check_forwarded(h, entry, case, row)


def _check_unlisted(h: Harness, entry: ModelEntry, case: Case) -> None:
    result = h.probe(entry, case.mode, {"x_probe_field": "on"})
    assert result.wire.moved(h.baseline(entry, case.mode).wire) == {"x_probe_field"}
    assert result.wire.fields["x_probe_field"] == "on"


STRUCTURAL = frozenset({"model", "prompt", "image", "mask", "n", "output_format", "output_compression"})


@pytest.mark.parametrize("case", CASES, ids=str)
def test_parameter_reaches_the_upstream_as_its_table_says(harness: Harness, case: Case) -> None:
    entry = _entry(case.model)
    if case.param == UNLISTED:
        _check_unlisted(harness, entry, case)
        return
    row = harness.table(entry.id)[case.param]
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


@pytest.mark.parametrize("entry", CATALOG.entries(), ids=lambda e: e.id)
def test_the_matrix_covers_every_row_the_table_shows(harness: Harness, entry: ModelEntry) -> None:
    covered = {case.param for case in CASES if case.model == entry.id}
    assert set(harness.table(entry.id)) | {UNLISTED} == covered


# --- bad values ----------------------------------------------------------------------------------


def _bad_value(row: Row) -> JsonValue | None:
    """A value ``row`` must refuse, or None when the row accepts any value of its type."""
    kind, values = row.get("type"), row.get("values")
    maximum, minimum = row.get("maximum"), row.get("minimum")
    if isinstance(values, list):
        return "not-one-of-them"
    if kind in ("integer", "number"):
        if isinstance(maximum, int | float):
            return maximum + 1
        if isinstance(minimum, int | float):
            return minimum - 1
        return "many"
    if kind == "boolean":
        return "maybe"
    if kind == "array":
        return "[not json"
    return None


def _bad_cases() -> list[tuple[str, str, JsonValue]]:
    cases: list[tuple[str, str, JsonValue]] = []
    for entry in CATALOG.entries():
        for name, spec in entry.params.items():
            if spec.behavior in ("passthrough", "renamed"):
                row: Row = {
                    "type": spec.type.value,
                    "values": list(spec.enum) if spec.enum else None,
                    "maximum": spec.maximum,
                    "minimum": spec.minimum,
                }
                bad = _bad_value(row)
                if bad is not None:
                    cases.append((entry.id, name, bad))
    return cases


def _refused(h: Harness, entry: ModelEntry, extra: dict[str, JsonValue]) -> dict[str, JsonValue]:
    h.fal.reset()
    h.upstream.app.reset()
    mode: Mode = entry.modes[0]
    with pytest.raises(openai.BadRequestError) as caught:
        h.probe(entry, mode, extra)
    assert (h.fal.attempts, h.upstream.app.requests) == ([], [])
    body = caught.value.body
    assert isinstance(body, dict)
    assert set(body) == {"message", "type", "param", "code"} and body["type"] == "invalid_request_error"
    return body


@pytest.mark.parametrize(("model", "param", "value"), _bad_cases(), ids=lambda v: str(v))
def test_bad_value_is_a_400_naming_the_clients_parameter(
    harness: Harness, model: str, param: str, value: JsonValue
) -> None:
    assert _refused(harness, _entry(model), {param: value})["param"] == param


@pytest.mark.parametrize("model", ["hidream-e1-1", "hidream-i1-full", "gpt-image-1"])
@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("n", 11),
        ("n", 0),
        ("size", "big"),
        ("aspect_ratio", "wide"),
        ("resolution", "9 parsecs"),
        ("response_format", "xml"),
        ("output_format", "bmp"),
        ("output_compression", 101),
        ("seed", "lucky"),
    ],
)
def test_bad_standard_value_is_a_400_naming_it(harness: Harness, model: str, param: str, value: JsonValue) -> None:
    assert _refused(harness, _entry(model), {param: value})["param"] == param


def test_the_upstream_spelling_is_checked_and_named_as_sent(harness: Harness) -> None:
    body = _refused(harness, _entry("hidream-e1-1"), {"guidance_scale": 21})
    assert body["param"] == "guidance_scale"


# --- the dry run is what the upstream receives ------------------------------------------------------


def _upstream_modes() -> list[tuple[str, Mode]]:
    return [(e.id, mode) for e in CATALOG.entries() if e.provider in ("fal", "openai") for mode in e.modes]


@pytest.mark.parametrize(("model", "mode"), _upstream_modes(), ids=lambda v: str(v))
def test_dry_run_shows_exactly_what_the_upstream_then_receives(harness: Harness, model: str, mode: Mode) -> None:
    entry = _entry(model)
    native = entry.count.max
    n = native + 1 if native < 10 else 2  # beyond the native maximum where the API's 10 allows
    extra: dict[str, JsonValue] = {"n": n, "x_probe_field": "on"}
    seed = entry.params.get("seed")
    if seed is not None and seed.behavior == "passthrough":
        extra["seed"] = 100
    if mode == "generate":
        extra["size"] = _pixel_values(entry)[0] if entry.size.kind == "pixel_enum" else "96x64"
    harness.fal.reset()
    harness.upstream.app.reset()
    planned = harness._send(entry, mode, extra, images=1, mask=False, prompt=PROMPT, dry_run=True).body
    assert (harness.fal.attempts, harness.upstream.app.requests) == ([], [])
    emulation = planned["emulation"]
    assert isinstance(emulation, dict) and emulation["n"] == n
    calls = planned["upstream_requests"]
    assert isinstance(calls, list) and len(calls) == -(-n // native)

    sent = harness.probe(entry, mode, extra)
    assert len(sent.images()) == n
    image_field = entry.images.field if entry.images and mode == "edit" else None
    shown, received = [], []
    for call, wire in zip(calls, sent.wires, strict=True):
        assert isinstance(call, dict) and call["upstream"] == wire.target == entry.upstream
        body = call["body"]
        assert isinstance(body, dict)
        if image_field is not None:
            [ref] = wire.image_refs(image_field)
            digest = body.pop(image_field)
            [shown_ref] = digest if isinstance(digest, list) else [digest]
            assert _same_image(ref, SOURCE) and _same_image(str(shown_ref), SOURCE)
        shown.append(json.dumps({k: wire.spelled(v) for k, v in body.items()}, sort_keys=True))
        received.append(json.dumps({k: v for k, v in wire.fields.items() if k != image_field}, sort_keys=True))
    # The calls run concurrently, so they reach the upstream in any order.
    assert sorted(shown) == sorted(received)
