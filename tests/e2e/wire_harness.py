"""The harness of the wire tests: a live pixelgate on the fake fal, openai, Replicate and Gemini upstreams.

:func:`start_harness` runs the four fakes and one gateway whose ``fal``, ``openai``, ``replicate`` and
``gemini`` providers point at them; :class:`Harness` sends a request through the openai SDK and returns
an :class:`Exchange`: what the client got and every upstream request the fakes captured, as :class:`Wire`
objects that compare alike whatever the protocol (fal JSON, OpenAI JSON or multipart, a Replicate
prediction's ``input``, a Gemini ``generateContent`` body flattened back to the fields pixelgate placed).
A deployment of a routed model is reached by forcing it (``model: "<provider>/<id>"``), so each
deployment's own table is what reaches its upstream. The sandbox models have no upstream: their
``?dry_run=true`` payload stands in for the captured one.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import openai
import pytest
from PIL import Image
from pydantic import JsonValue

from normalization.catalog import Mode, ModelEntry, load_builtin_catalog
from providers.fal import FalAdapter
from tests.conftest import TEST_KEY, upstream_settings
from tests.fakes.fake_fal import FakeFal
from tests.fakes.fake_gemini import FakeGemini, GeminiRequest
from tests.fakes.fake_openai import Captured, FakeOpenAI, FakeOpenAIServer
from tests.fakes.fake_replicate import CreateAttempt, FakeReplicate
from tests.images import png_bytes
from tests.live import LiveGateway

FAL_KEY = "matrix-fal-key-id:matrix-fal-secret"
OPENAI_KEY = "sk-matrix-upstream-key"
REPLICATE_TOKEN = "r8_matrix_token_0123456789"
GEMINI_KEY = "AIza-matrix-key-0123456789"
OUTPUT_SIDE = 64
"""The Replicate and Gemini fakes scale their images to this longest side: no megapixel image per probe."""
PROMPT = "paint the roof red"
SOURCE = png_bytes(64, 48)
SECOND = png_bytes(64, 48, color=(9, 9, 9))
MASK = png_bytes(64, 48, color=(0, 0, 0))

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


def same_image(ref: bytes | str, data: bytes) -> bool:
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
    replicate: FakeReplicate
    gemini: FakeGemini
    sdk: openai.OpenAI
    baselines: dict[tuple[str, str, Mode], Exchange] = field(default_factory=dict)
    tables: dict[str, dict[str, Row]] = field(default_factory=dict)

    def table(self, entry: ModelEntry) -> dict[str, Row]:
        """The deployment's own table, as ``GET /v1/models/{id}`` lists it under ``deployments``."""
        key = deployment_name(entry)
        if key not in self.tables:
            response = httpx.get(
                f"{self.gateway.api_url}/models/{model_name(entry)}", headers={"Authorization": f"Bearer {TEST_KEY}"}
            )
            assert response.status_code == 200
            [shown] = [d for d in response.json()["deployments"] if d["upstream"] == entry.upstream]
            self.tables[key] = shown["parameters"]
        return self.tables[key]

    def baseline(self, entry: ModelEntry, mode: Mode) -> Exchange:
        key = (entry.provider, entry.upstream, mode)
        if key not in self.baselines:
            self.baselines[key] = self.probe(entry, mode)
        return self.baselines[key]

    def send(
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
                model=model_name(entry), prompt=prompt, extra_body=body, extra_query=query
            )
            return Answer.of(raw.http_response)
        files = [(f"in{i}.png", data, "image/png") for i, data in enumerate([SOURCE, SECOND][:images])]
        # Multipart: every scalar travels as text, as the SDKs send it.
        form = {key: form_text(value) for key, value in body.items()}
        raw_edit = self.sdk.images.with_raw_response.edit(
            model=model_name(entry),
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
        strict_input: bool = True,
    ) -> Exchange:
        """Send one request and collect what reached the upstream.

        ``strict_input=False`` lets the fake Replicate take ``input`` keys its schema lacks (whether
        Replicate itself refuses them is unconfirmed; cog models usually ignore them).
        """
        self.fal.reset()
        self.upstream.app.reset()
        self.replicate.reset()
        self.gemini.reset()
        self.replicate.max_output_side = self.gemini.max_output_side = OUTPUT_SIDE
        self.replicate.strict_input = strict_input
        args = extra or {}
        answer = self.send(entry, mode, args, images=images, mask=mask, prompt=prompt, dry_run=False)
        if entry.provider == "fal":
            wires = [Wire(s.endpoint_id, dict(s.payload)) for s in self.fal.submissions]
        elif entry.provider == "openai":
            wires = [openai_wire(captured) for captured in self.upstream.app.requests]
        elif entry.provider == "replicate":
            wires = [replicate_wire(attempt) for attempt in self.replicate.creates]
        elif entry.provider == "gemini":
            wires = [gemini_wire(request) for request in self.gemini.requests]
        else:
            planned = self.send(entry, mode, args, images=images, mask=mask, prompt=prompt, dry_run=True).body
            calls = planned["upstream_requests"]
            assert isinstance(calls, list)
            wires = []
            for call in calls:
                assert isinstance(call, dict) and isinstance(call["body"], dict)
                wires.append(Wire(str(call["upstream"]), dict(call["body"]), dry_run=True))
        return Exchange(answer.status, answer.body, answer.headers, wires)


CATALOG = load_builtin_catalog()
UNLISTED_FIELDS: dict[str, tuple[str, str]] = {"gemini": ("personGeneration", "ALLOW_ADULT")}
"""A field no table lists, per provider (default ``x_probe_field``): Gemini refuses a name it does not know
with a 400, so its probe is a real ``imageConfig`` field that the gemini tables leave out."""


def unlisted_field(entry: ModelEntry) -> tuple[str, str]:
    """A field the deployment's table does not list, and a value for it, that its upstream accepts."""
    return UNLISTED_FIELDS.get(entry.provider, ("x_probe_field", "on"))


def find_deployment(provider: str, model_id: str, upstream: str) -> ModelEntry:
    model = CATALOG.get(model_id)
    assert model is not None, model_id
    [entry] = [d for d in model.deployments if (d.provider, d.upstream) == (provider, upstream)]
    return entry


def model_name(entry: ModelEntry) -> str:
    """What a client sends as ``model`` to reach this deployment: ``<provider>/<id>`` for a routed model."""
    model = CATALOG.get(entry.id)
    assert model is not None, entry.id
    return entry.id if len(model.deployments) == 1 else f"{entry.provider}/{entry.id}"


def deployment_name(entry: ModelEntry) -> str:
    """A deployment's unique name (test ids, table keys)."""
    return f"{entry.provider}/{entry.id}/{entry.upstream}"


def form_text(value: JsonValue) -> JsonValue:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def openai_wire(captured: Captured) -> Wire:
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


def replicate_wire(attempt: CreateAttempt) -> Wire:
    """A prediction's ``input``; its target is the model route's ``owner/name`` or the ``version`` as sent."""
    body = attempt.body
    assert isinstance(body, dict)
    target = body["version"] if attempt.route == "predictions" else attempt.model
    return Wire(str(target), dict(attempt.input))


def gemini_wire(request: GeminiRequest) -> Wire:
    """A ``generateContent`` body flattened back to the fields pixelgate placed (providers/gemini/request.py).

    The text part is ``prompt``; the ``inlineData`` parts are ``inlineData`` as ``data:`` URIs; each
    ``generationConfig`` field, and each ``imageConfig`` one, is a field of its own; the rest of the
    request's top level stays as it is.
    """
    body = request.body
    assert isinstance(body, dict)
    fields: dict[str, JsonValue] = {k: v for k, v in body.items() if k not in ("contents", "generationConfig")}
    contents = body["contents"]
    assert isinstance(contents, list) and len(contents) == 1
    [content] = contents
    assert isinstance(content, dict) and isinstance(content["parts"], list)
    images: list[JsonValue] = []
    for part in content["parts"]:
        assert isinstance(part, dict)
        if "text" in part:
            assert "prompt" not in fields, "one text part"
            fields["prompt"] = part["text"]
        else:
            blob = part["inlineData"]
            assert isinstance(blob, dict)
            images.append(f"data:{blob['mimeType']};base64,{blob['data']}")
    if images:
        fields["inlineData"] = images
    config = body.get("generationConfig", {})
    assert isinstance(config, dict)
    image_config = config.get("imageConfig", {})
    assert isinstance(image_config, dict)
    fields.update({k: v for k, v in config.items() if k != "imageConfig"})
    fields.update(image_config)
    return Wire(request.model, fields)


@contextmanager
def start_harness(data_dir: Path) -> Iterator[Harness]:
    """The four fakes and a gateway on them, for the duration of a ``with`` block (one per test module)."""
    with (
        pytest.MonkeyPatch.context() as patch,
        FakeFal(api_key=FAL_KEY, latency=0) as fal,
        FakeOpenAIServer(FakeOpenAI(image=png_bytes(32, 32))) as upstream,
        FakeReplicate(token=REPLICATE_TOKEN, latency=0) as replicate,
        FakeGemini(api_key=GEMINI_KEY) as gemini,
    ):
        # A job of the fake is done at once; the first poll need not wait the production 20 ms.
        patch.setattr(FalAdapter, "poll_initial_seconds", 0.001)
        fal.default_size = (64, 64)  # generations without a size: no 1024x1024 image to encode per probe
        settings = upstream_settings(
            data_dir,
            fal=fal,
            fal_key=FAL_KEY,
            openai_server=upstream,
            openai_key=OPENAI_KEY,
            replicate=replicate,
            replicate_token=REPLICATE_TOKEN,
            gemini=gemini,
            gemini_key=GEMINI_KEY,
            max_retries=0,
        )
        with (
            LiveGateway(settings) as live,
            openai.OpenAI(base_url=live.api_url, api_key=TEST_KEY, max_retries=0, timeout=30) as sdk,
        ):
            yield Harness(live, fal, upstream, replicate, gemini, sdk)
