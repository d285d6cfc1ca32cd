"""``stream=true`` end to end: OpenAI's image stream events, read by the official SDKs' stream iterators.

One live gateway serves the offline sandbox models and the fal catalog on the fake fal (keep-alives
every 50 ms). What is checked, as a client sees it:

- the Python SDK's ``images.generate(..., stream=True)`` and ``images.edit(..., stream=True)``
  iterators yield one completed event per image, base64 whatever ``response_format`` says, the same
  images the JSON answer gives for the same seed; the Node SDK's ``for await`` does the same;
- the raw stream: ``text/event-stream``, no caching, no proxy buffering, ``x-request-id``; ``:
  keep-alive`` comments while a slow fal job runs (the test decides when the job ends);
- errors before the stream are JSON answers with their status (404 model, 400 ``partial_images``,
  401, ``Idempotency-Key`` with ``stream``); an upstream failure after it is one ``error`` event,
  which both SDKs raise as ``APIError``, and which the metrics count under its real status;
- a client that leaves mid-stream gets its fal job cancelled.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import openai
import pytest
from openai.types import ImageEditCompletedEvent, ImageGenCompletedEvent
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import TEST_KEY, priced_sandbox_generation, upstream_settings
from tests.e2e.conftest import FAL_KEY
from tests.fakes.fake_fal import FakeFal
from tests.images import decode, png_bytes
from tests.live import LiveGateway
from tests.node_client import node_modules
from tests.polling import wait_until

KEEPALIVE_SECONDS = 0.05
AUTH = {"Authorization": f"Bearer {TEST_KEY}"}


@pytest.fixture(scope="module")
def fal_gateway(fal_server: FakeFal, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    settings = upstream_settings(
        tmp_path_factory.mktemp("stream-data"),
        fal=fal_server,
        fal_key=FAL_KEY,
        max_retries=0,
        stream_keepalive_seconds=KEEPALIVE_SECONDS,
    )
    with LiveGateway(settings) as live:
        yield live


@dataclass
class RawStream:
    """An event stream as it arrived: its comments and its events (name, parsed data), in order."""

    comments: list[str] = field(default_factory=list)
    events: list[tuple[str, dict[str, object]]] = field(default_factory=list)
    order: list[str] = field(default_factory=list)
    """``comment`` or the event name, in arrival order."""


def read_frames(lines: Iterator[str], stream: RawStream) -> Iterator[None]:
    """Parse SSE lines into ``stream``; yields after each comment or event."""
    name, data = "message", ""
    for line in lines:
        if line.startswith(":"):
            stream.comments.append(line[1:].strip())
            stream.order.append("comment")
            yield
        elif line.startswith("event:"):
            name = line.partition(":")[2].strip()
        elif line.startswith("data:"):
            data += line.partition(":")[2].strip()
        elif not line and data:
            stream.events.append((name, json.loads(data)))
            stream.order.append(name)
            name, data = "message", ""
            yield


def _generation_stream(api_url: str, body: dict[str, object]) -> AbstractContextManager[httpx.Response]:
    return httpx.stream("POST", f"{api_url}/images/generations", json=body, headers=AUTH, timeout=30)


def _size(b64: object) -> tuple[int, int]:
    assert isinstance(b64, str)
    size: tuple[int, int] = decode(base64.b64decode(b64)).size
    return size


def _metrics(live: LiveGateway) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(f"{live.base_url}/metrics", timeout=30).text  # no admin key: open on loopback
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


# -- the Python SDK -----------------------------------------------------------------------------


def test_generate_stream_yields_one_completed_event_per_image(sdk: openai.OpenAI) -> None:
    events = list(
        sdk.images.generate(
            model="sandbox-generate", prompt="a lighthouse", size="48x32", n=2, stream=True, extra_body={"seed": 7}
        )
    )
    assert [type(event) for event in events] == [ImageGenCompletedEvent, ImageGenCompletedEvent]
    for event in events:
        assert event.type == "image_generation.completed"
        assert (event.size, event.output_format, event.quality, event.background) == ("48x32", "png", "auto", "auto")
        assert _size(event.b64_json) == (48, 32)
        assert event.usage.total_tokens == 0 and event.usage.input_tokens_details.image_tokens == 0
        assert event.created_at > 0
        assert (event.model_extra or {})["metadata"]["provider"] == "sandbox"
    # The same execution as the JSON answer: the same images for the same request.
    plain = sdk.images.generate(
        model="sandbox-generate",
        prompt="a lighthouse",
        size="48x32",
        n=2,
        response_format="b64_json",
        extra_body={"seed": 7},
    )
    assert plain.data is not None
    assert [event.b64_json for event in events] == [image.b64_json for image in plain.data]


def test_edit_stream_carries_base64_whatever_response_format_says(sdk: openai.OpenAI) -> None:
    source = png_bytes(40, 24)
    events = list(
        sdk.images.edit(
            model="sandbox-edit",
            image=("in.png", source, "image/png"),
            prompt="invert it",
            response_format="url",
            quality="high",
            background="opaque",
            stream=True,
        )
    )
    assert len(events) == 1 and isinstance(events[0], ImageEditCompletedEvent)
    event = events[0]
    assert event.type == "image_edit.completed"
    assert (event.quality, event.background, event.size) == ("high", "opaque", "40x24")
    out = decode(base64.b64decode(event.b64_json))
    assert out.size == (40, 24)
    assert out.tobytes() != decode(source).convert(out.mode).tobytes()  # edited, not echoed


def test_fal_edit_streams_through_the_real_adapter(sdk: openai.OpenAI, fake: FakeFal) -> None:
    events = list(
        sdk.images.edit(
            model="hidream-e1-1", image=("in.png", png_bytes(96, 64), "image/png"), prompt="sky", stream=True
        )
    )
    assert [event.type for event in events] == ["image_edit.completed"]
    assert _size(events[0].b64_json) == (96, 64)
    assert [submission.endpoint_id for submission in fake.submissions] == ["fal-ai/hidream-e1-1"]


# -- the raw stream ------------------------------------------------------------------------------


def test_keepalives_flow_while_the_job_runs_then_the_image(fal_gateway: LiveGateway, fake: FakeFal) -> None:
    body = {"model": "hidream-i1-full", "prompt": "[fake:never] a fox", "size": "128x128", "stream": True}
    stream = RawStream()
    with _generation_stream(fal_gateway.api_url, body) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        assert answer.headers["cache-control"] == "no-cache"
        assert answer.headers["x-accel-buffering"] == "no"
        assert answer.headers["x-request-id"].startswith("req_")
        assert "content-length" not in answer.headers
        for _ in read_frames(answer.iter_lines(), stream):
            if len(stream.comments) == 2 and not stream.events:
                # Two keep-alives in, the job still running: the test lets it finish now.
                wait_until(lambda: bool(fake.submissions), "the fal job was submitted")
                request_id = fake.submissions[0].request_id
                assert request_id is not None
                fake.finish(request_id)
    assert stream.comments[:2] == ["keep-alive", "keep-alive"]
    assert stream.order[-1] == "image_generation.completed"
    assert [name for name, _ in stream.events] == ["image_generation.completed"]
    _, data = stream.events[0]
    assert _size(data["b64_json"]) == (128, 128)
    assert {"type", "b64_json", "created_at", "size", "quality", "background", "output_format", "usage"} <= set(data)
    assert fake.cancelled == []


def test_partial_images_are_accepted_with_a_warning_and_only_final_images(gateway_url: str) -> None:
    body = {"model": "sandbox-generate", "prompt": "p", "size": "16x16", "stream": True, "partial_images": 2}
    stream = RawStream()
    with _generation_stream(gateway_url, body) as answer:
        assert answer.status_code == 200
        assert "partial_images" in answer.headers["x-pixelgate-warnings"]
        for _ in read_frames(answer.iter_lines(), stream):
            pass
    assert [name for name, _ in stream.events] == ["image_generation.completed"]


@pytest.fixture
def gateway_url(fal_gateway: LiveGateway) -> str:
    return fal_gateway.api_url


# -- errors before and after the stream starts --------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "status", "param", "code"),
    [
        ({"model": "no-such-model"}, 404, "model", "model_not_found"),
        ({"partial_images": 4}, 400, "partial_images", "invalid_value"),
        ({"n": 11}, 400, "n", "invalid_value"),
    ],
)
def test_errors_before_the_stream_are_json_answers(
    gateway_url: str, fields: dict[str, object], status: int, param: str, code: str
) -> None:
    body = {"model": "sandbox-generate", "prompt": "p", "size": "16x16", "stream": True, **fields}
    answer = httpx.post(f"{gateway_url}/images/generations", json=body, headers=AUTH, timeout=30)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    error = answer.json()["error"]
    assert (error["param"], error["code"]) == (param, code), error


def test_the_sdk_raises_status_errors_before_the_stream(sdk: openai.OpenAI, fal_gateway: LiveGateway) -> None:
    with pytest.raises(openai.NotFoundError):
        sdk.images.generate(model="no-such-model", prompt="p", stream=True)
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.images.edit(
            model="sandbox-edit",
            image=("a.png", png_bytes(16, 16), "image/png"),
            prompt="p",
            stream=True,
            extra_body={"partial_images": 9},
        )
    assert caught.value.param == "partial_images"
    with (
        openai.OpenAI(base_url=fal_gateway.api_url, api_key="sk-wrong", max_retries=0) as stranger,
        pytest.raises(openai.AuthenticationError),
    ):
        stranger.images.generate(model="sandbox-generate", prompt="p", stream=True)


def test_an_idempotency_key_with_stream_is_a_400_naming_stream(sdk: openai.OpenAI, fake: FakeFal) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.images.generate(
            model="hidream-i1-full",
            prompt="p",
            size="128x128",
            stream=True,
            extra_headers={"Idempotency-Key": "stream-key-1"},
        )
    assert (caught.value.param, caught.value.code) == ("stream", "unsupported_parameter")
    assert fake.attempts == []  # nothing reached the provider


def test_an_upstream_failure_after_the_start_is_one_error_event(
    sdk: openai.OpenAI, fal_gateway: LiveGateway, fake: FakeFal
) -> None:
    before = _metrics(fal_gateway)
    with pytest.raises(openai.APIError) as caught:
        list(sdk.images.generate(model="hidream-i1-full", prompt="[fake:completed_error]", size="128x128", stream=True))
    assert not isinstance(caught.value, openai.APIStatusError)  # raised by the iterator, after the 200
    assert isinstance(caught.value.body, dict) and caught.value.body["code"] == "upstream_error"

    body = {"model": "hidream-i1-full", "prompt": "[fake:completed_error]", "size": "128x128", "stream": True}
    stream = RawStream()
    with _generation_stream(fal_gateway.api_url, body) as answer:
        assert answer.status_code == 200
        for _ in read_frames(answer.iter_lines(), stream):
            pass
    assert [name for name, _ in stream.events] == ["error"]
    _, data = stream.events[0]
    assert data["type"] == "error"
    error = data["error"]
    assert isinstance(error, dict) and set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["code"]) == ("upstream_error", "upstream_error")

    after = _metrics(fal_gateway)
    labels = frozenset({"model": "hidream-i1-full", "provider": "unknown", "status": "502"}.items())
    key = ("pixelgate_requests_total", labels)
    assert after.get(key, 0) - before.get(key, 0) == 2  # counted as what it was, not as the 200 on the wire
    errors = ("pixelgate_request_errors_total", frozenset({"code": "upstream_error"}.items()))
    assert after.get(errors, 0) - before.get(errors, 0) == 2
    assert after[("pixelgate_admission_slots_in_use", frozenset())] == 0


def test_a_client_that_leaves_mid_stream_cancels_the_fal_job(fal_gateway: LiveGateway, fake: FakeFal) -> None:
    body = {"model": "hidream-i1-full", "prompt": "[fake:never] a fox", "size": "128x128", "stream": True}
    stream = RawStream()
    with _generation_stream(fal_gateway.api_url, body) as answer:
        assert answer.status_code == 200
        frames = read_frames(answer.iter_lines(), stream)
        next(frames)  # the first keep-alive: the stream runs
        wait_until(lambda: bool(fake.submissions), "the fal job was submitted")
    # The connection is closed with the job still running upstream.
    wait_until(lambda: bool(fake.cancelled), "pixelgate cancelled the fal job of the client that left")
    assert fake.cancelled == [fake.submissions[0].request_id]
    assert stream.events == []
    wait_until(
        lambda: _metrics(fal_gateway)[("pixelgate_admission_slots_in_use", frozenset())] == 0,
        "the stream's admission slot was given back",
    )


# -- the Node SDK --------------------------------------------------------------------------------

NODE_SCRIPT = """
import fs from "node:fs";
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.env.PIXELGATE_URL, apiKey: process.env.PIXELGATE_API_KEY, maxRetries: 0 });
const seen = [];
const generation = await client.images.generate({
  model: "sandbox-generate", prompt: "a lighthouse", size: "48x32", n: 2, stream: true,
});
for await (const event of generation) {
  seen.push({ type: event.type, size: event.size, b64: event.b64_json, quality: event.quality });
}
const edit = await client.images.edit({
  model: "sandbox-edit", image: fs.createReadStream("input.png"), prompt: "invert", stream: true,
});
for await (const event of edit) {
  seen.push({ type: event.type, size: event.size, b64: event.b64_json, quality: event.quality });
}
try {
  const failing = await client.images.generate({
    model: "hidream-i1-full", prompt: "[fake:completed_error]", size: "128x128", stream: true,
  });
  for await (const event of failing) seen.push({ type: event.type });
} catch (err) {
  seen.push({ error: err.constructor.name, code: err.code, isApiError: err instanceof OpenAI.APIError });
}
console.log(JSON.stringify(seen));
"""


def test_the_node_sdk_iterates_the_stream(fal_gateway: LiveGateway, fake: FakeFal, tmp_path: Path) -> None:
    (tmp_path / "node_modules").symlink_to(node_modules(), target_is_directory=True)
    (tmp_path / "input.png").write_bytes(png_bytes(40, 24))
    (tmp_path / "stream.mjs").write_text(NODE_SCRIPT, encoding="utf-8")
    result = subprocess.run(
        ["node", "stream.mjs"],
        cwd=tmp_path,
        env={**os.environ, "PIXELGATE_URL": fal_gateway.api_url, "PIXELGATE_API_KEY": TEST_KEY},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert [item.get("type") for item in seen[:3]] == [
        "image_generation.completed",
        "image_generation.completed",
        "image_edit.completed",
    ]
    assert [_size(item["b64"]) for item in seen[:3]] == [(48, 32), (48, 32), (40, 24)]
    assert seen[3] == {"error": "APIError", "code": "upstream_error", "isApiError": True}


# -- budgets and the usage ledger ----------------------------------------------------------------

ADMIN_KEY = "admin-stream-5c1d"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
PRICED = priced_sandbox_generation("sandbox-priced", per_image=0.01, source="test: one cent per image")


def _usage_row(live: LiveGateway, key_id: object, requests: int) -> dict[str, object]:
    """The key's ledger totals once its ``requests`` rows are written (in batches, off the request path)."""
    found: dict[str, object] = {}

    def written() -> bool:
        answer = httpx.get(f"{live.base_url}/admin/usage", params={"group_by": "key"}, headers=ADMIN, timeout=30)
        rows = [row for row in answer.json()["data"] if row["key"] == key_id]
        found.update(rows[0] if rows else {})
        return bool(rows) and rows[0]["requests"] == requests

    wait_until(written, f"{requests} ledger rows for the key")
    return found


def test_a_stream_holds_and_charges_the_budget_and_is_in_the_ledger(tmp_path: Path) -> None:
    settings = upstream_settings(tmp_path, admin_key=ADMIN_KEY, models=[PRICED])
    with LiveGateway(settings) as live:
        created = httpx.post(
            f"{live.base_url}/admin/keys", json={"name": "s", "budget_usd": 0.025}, headers=ADMIN, timeout=30
        ).json()
        with openai.OpenAI(base_url=live.api_url, api_key=created["key"], max_retries=0, timeout=30) as client:
            events = list(client.images.generate(model="sandbox-priced", prompt="p", size="64x64", n=2, stream=True))
            assert [event.type for event in events] == ["image_generation.completed"] * 2
            assert (events[0].model_extra or {})["metadata"]["cost_usd"] == pytest.approx(0.02)
            wait_until(
                lambda: (
                    httpx.get(f"{live.base_url}/admin/keys/{created['id']}", headers=ADMIN, timeout=30).json()[
                        "spent_usd"
                    ]
                    == pytest.approx(0.02)
                ),
                "the stream's two images were charged",
            )
            # Half a cent left, a cent asked: refused before any stream, as JSON.
            with pytest.raises(openai.RateLimitError) as refused:
                client.images.generate(model="sandbox-priced", prompt="p", size="64x64", stream=True)
            assert refused.value.code == "insufficient_quota"
            assert refused.value.response.headers["content-type"] == "application/json"
        row = _usage_row(live, created["id"], 2)
        assert row["images"] == 2 and row["cost_usd"] == pytest.approx(0.02) and row["errors"] == 1
