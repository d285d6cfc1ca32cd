"""The harness of the wire tests: a live pixelgate on the fake fal and fake openai upstreams.

:func:`start_harness` runs both fakes and one gateway whose ``fal`` and ``openai`` providers point
at them; :class:`Harness` sends a request through the openai SDK and returns an :class:`Exchange`:
what the client got and every upstream request the fakes captured, as :class:`Wire` objects that
compare alike whatever the protocol (fal JSON, OpenAI JSON or multipart). The sandbox models have no
upstream: their ``?dry_run=true`` payload stands in for the captured one.
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

from normalization.catalog import Mode, ModelEntry
from providers.fal import FalAdapter
from tests.conftest import TEST_KEY, upstream_settings
from tests.fakes.fake_fal import FakeFal
from tests.fakes.fake_openai import Captured, FakeOpenAI, FakeOpenAIServer
from tests.images import png_bytes
from tests.live import LiveGateway

FAL_KEY = "matrix-fal-key-id:matrix-fal-secret"
OPENAI_KEY = "sk-matrix-upstream-key"
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
                model=entry.id, prompt=prompt, extra_body=body, extra_query=query
            )
            return Answer.of(raw.http_response)
        files = [(f"in{i}.png", data, "image/png") for i, data in enumerate([SOURCE, SECOND][:images])]
        # Multipart: every scalar travels as text, as the SDKs send it.
        form = {key: form_text(value) for key, value in body.items()}
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
        answer = self.send(entry, mode, args, images=images, mask=mask, prompt=prompt, dry_run=False)
        if entry.provider == "fal":
            wires = [Wire(s.endpoint_id, dict(s.payload)) for s in self.fal.submissions]
        elif entry.provider == "openai":
            wires = [openai_wire(captured) for captured in self.upstream.app.requests]
        else:
            planned = self.send(entry, mode, args, images=images, mask=mask, prompt=prompt, dry_run=True).body
            calls = planned["upstream_requests"]
            assert isinstance(calls, list)
            wires = []
            for call in calls:
                assert isinstance(call, dict) and isinstance(call["body"], dict)
                wires.append(Wire(str(call["upstream"]), dict(call["body"]), dry_run=True))
        return Exchange(answer.status, answer.body, answer.headers, wires)


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


@contextmanager
def start_harness(data_dir: Path) -> Iterator[Harness]:
    """Both fakes and a gateway on them, for the duration of a ``with`` block (one per test module)."""
    with (
        pytest.MonkeyPatch.context() as patch,
        FakeFal(api_key=FAL_KEY, latency=0) as fal,
        FakeOpenAIServer(FakeOpenAI(image=png_bytes(32, 32))) as upstream,
    ):
        # A job of the fake is done at once; the first poll need not wait the production 20 ms.
        patch.setattr(FalAdapter, "poll_initial_seconds", 0.001)
        fal.default_size = (64, 64)  # generations without a size: no 1024x1024 image to encode per probe
        settings = upstream_settings(
            data_dir, fal=fal, fal_key=FAL_KEY, openai_server=upstream, openai_key=OPENAI_KEY, max_retries=0
        )
        with (
            LiveGateway(settings) as live,
            openai.OpenAI(base_url=live.api_url, api_key=TEST_KEY, max_retries=0, timeout=30) as sdk,
        ):
            yield Harness(live, fal, upstream, sdk)
