"""``stream=true`` with ``partial_images``: an upstream's partial images passed on, end to end.

One live gateway serves the built-in catalog with the ``openai`` provider on the fake OpenAI (which
speaks OpenAI's image stream when sent ``stream: true``) and fal on the fake fal, plus a routed
model (the fake OpenAI first, the offline sandbox second). What is checked, as a client sees it:

- the Python SDK's ``images.generate``/``images.edit(..., stream=True, partial_images=N)`` on a GPT
  image model yields N ``*.partial_image`` events (the upstream's previews, indexed from 0) before
  the completed one, and the upstream was sent ``stream: true`` and ``partial_images: N``;
- an upstream that streams no partials (fal, the sandbox) still gives completed events only, with
  the warning naming ``partial_images``; fal is sent neither field;
- an upstream ``error`` event after a partial becomes the client's ``error`` event (the partial
  already sent stays sent), which the SDK raises as ``APIError``;
- a routed model whose first deployment fails mid-stream: its partial reached the client, then
  the second deployment's final image (previews of a failed attempt are acceptable);
- a client that leaves after a partial closes the upstream stream;
- the Node SDK's ``for await`` sees the same partial and completed events.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai.types import ImageEditPartialImageEvent, ImageGenCompletedEvent, ImageGenPartialImageEvent

from tests.conftest import TEST_KEY, upstream_settings
from tests.e2e.conftest import FAL_KEY
from tests.fakes.fake_fal import FakeFal
from tests.fakes.fake_openai import FakeOpenAIServer, partial_png, result_png
from tests.images import png_bytes
from tests.live import LiveGateway
from tests.node_client import node_modules
from tests.polling import wait_until
from tests.providers.openai_calls import API_KEY

AUTH = {"Authorization": f"Bearer {TEST_KEY}"}
ROUTED = {
    "id": "preview-routed",
    "modes": ["generate"],
    "deployments": [
        {
            "provider": "openai",
            "upstream": "gpt-image-1",
            "params": {"partial_images": {"type": "integer", "minimum": 0, "maximum": 3}},
        },
        {
            "provider": "sandbox",
            "upstream": "sandbox/generate",
            "size": {"kind": "dimensions", "encoding": "fields", "min_side": 64, "max_side": 2048},
            "count": {"field": "num_images", "max": 4, "seeds_per_image": True},
            "output_format": {"values": ["png"], "default": "png"},
        },
    ],
}


@pytest.fixture(scope="module")
def live(
    fal_server: FakeFal, openai_server: FakeOpenAIServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveGateway]:
    settings = upstream_settings(
        tmp_path_factory.mktemp("partials-data"),
        fal=fal_server,
        fal_key=FAL_KEY,
        openai_server=openai_server,
        openai_key=API_KEY,
        max_retries=0,
        breaker_failures=1000,  # the failures scripted here must not cool the fake OpenAI down
        models=[ROUTED],
    )
    with LiveGateway(settings) as gateway:
        yield gateway


@pytest.fixture
def sdk(live: LiveGateway, fake: FakeFal, fake_openai: FakeOpenAIServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=live.api_url, api_key=TEST_KEY, max_retries=0, timeout=60) as client:
        yield client


def _raw_events(
    live: LiveGateway, body: dict[str, object]
) -> tuple[httpx.Headers, list[tuple[str, dict[str, object]]]]:
    """The event stream of a generation as it arrived: its headers and its (name, data) events."""
    events: list[tuple[str, dict[str, object]]] = []
    name, data = "message", ""
    with httpx.stream("POST", f"{live.api_url}/images/generations", json=body, headers=AUTH, timeout=60) as answer:
        assert answer.status_code == 200
        for line in answer.iter_lines():
            if line.startswith("event:"):
                name = line.partition(":")[2].strip()
            elif line.startswith("data:"):
                data += line.partition(":")[2].strip()
            elif not line and data:
                events.append((name, json.loads(data)))
                name, data = "message", ""
        return answer.headers, events


def test_generate_yields_the_upstreams_partials_before_the_image(
    sdk: openai.OpenAI, fake_openai: FakeOpenAIServer
) -> None:
    events = list(
        sdk.images.generate(model="gpt-image-1", prompt="a lighthouse", stream=True, partial_images=2, quality="high")
    )
    assert [type(event) for event in events] == [
        ImageGenPartialImageEvent,
        ImageGenPartialImageEvent,
        ImageGenCompletedEvent,
    ]
    partials, completed = events[:2], events[2]
    for index, partial in enumerate(partials):
        assert isinstance(partial, ImageGenPartialImageEvent)
        assert partial.type == "image_generation.partial_image"
        assert partial.partial_image_index == index
        assert base64.b64decode(partial.b64_json) == partial_png()  # the upstream's preview, untouched
        assert (partial.size, partial.quality, partial.background, partial.output_format) == (
            "1024x1024",
            "high",
            "auto",
            "png",
        )
        assert partial.created_at > 0
    assert completed.type == "image_generation.completed"
    assert base64.b64decode(completed.b64_json) == result_png()
    [request] = fake_openai.app.requests
    sent = request.json()
    assert (sent["stream"], sent["partial_images"], sent["model"]) == (True, 2, "gpt-image-1")


def test_edit_yields_partial_edit_events(sdk: openai.OpenAI, fake_openai: FakeOpenAIServer) -> None:
    events = list(
        sdk.images.edit(
            model="gpt-image-1.5",
            image=("in.png", png_bytes(64, 64), "image/png"),
            prompt="make it blue",
            stream=True,
            partial_images=1,
        )
    )
    assert [event.type for event in events] == ["image_edit.partial_image", "image_edit.completed"]
    assert isinstance(events[0], ImageEditPartialImageEvent) and events[0].partial_image_index == 0
    fields = dict(fake_openai.app.requests[0].form().fields)
    assert (fields["stream"], fields["partial_images"]) == ("true", "1")


def test_a_stream_without_partial_images_sends_no_stream_upstream(
    sdk: openai.OpenAI, fake_openai: FakeOpenAIServer
) -> None:
    events = list(sdk.images.generate(model="gpt-image-1", prompt="p", stream=True))
    assert [event.type for event in events] == ["image_generation.completed"]
    assert "stream" not in fake_openai.app.requests[0].json()


@pytest.mark.parametrize("model", ["hidream-i1-full", "sandbox-generate"])
def test_an_upstream_without_partials_gives_completed_events_only(live: LiveGateway, fake: FakeFal, model: str) -> None:
    body = {"model": model, "prompt": "p", "size": "128x128", "stream": True, "partial_images": 2}
    headers, events = _raw_events(live, body)
    assert [name for name, _ in events] == ["image_generation.completed"]
    assert "'partial_images'" in headers["x-pixelgate-warnings"]
    if model == "hidream-i1-full":
        [submission] = fake.submissions
        assert not {"stream", "partial_images"} & set(submission.payload)


def test_an_upstream_error_event_is_the_clients_error_event(
    sdk: openai.OpenAI, live: LiveGateway, fake_openai: FakeOpenAIServer
) -> None:
    fake_openai.app.fail_stream_next(after_partials=1, error_type="server_error", message="the GPU caught fire")
    seen: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        for event in sdk.images.generate(model="gpt-image-1", prompt="p", stream=True, partial_images=2):
            seen.append(event.type)
    assert seen == ["image_generation.partial_image"]  # the preview sent before the failure
    assert not isinstance(caught.value, openai.APIStatusError)  # raised by the iterator, after the 200
    assert isinstance(caught.value.body, dict) and caught.value.body["code"] == "upstream_error"

    fake_openai.app.fail_stream_next(
        error_type="image_generation_user_error", code="moderation_blocked", message="refused", flat=True
    )
    body = {"model": "gpt-image-1", "prompt": "p", "stream": True, "partial_images": 2}
    _, events = _raw_events(live, body)
    assert [name for name, _ in events] == ["error"]
    error = events[0][1]["error"]
    assert isinstance(error, dict) and error["code"] == "moderation_blocked"


def test_a_routed_model_fails_over_after_its_first_deployments_partial(
    live: LiveGateway, fake_openai: FakeOpenAIServer
) -> None:
    fake_openai.app.fail_stream_next(after_partials=1, error_type="server_error")
    body = {"model": "preview-routed", "prompt": "p", "size": "1024x1024", "stream": True, "partial_images": 2}
    _, events = _raw_events(live, body)
    assert [name for name, _ in events] == ["image_generation.partial_image", "image_generation.completed"]
    metadata = events[1][1]["metadata"]
    assert isinstance(metadata, dict)
    assert [(a["provider"], a["status"]) for a in metadata["attempts"]] == [("openai", 502), ("sandbox", 200)]
    assert fake_openai.app.requests[0].json()["partial_images"] == 2


def test_a_client_that_leaves_after_a_partial_closes_the_upstream_stream(
    live: LiveGateway, fake_openai: FakeOpenAIServer
) -> None:
    fake_openai.app.hold_stream_next(after_partials=1)
    body = {"model": "gpt-image-1", "prompt": "p", "stream": True, "partial_images": 2}
    with httpx.stream("POST", f"{live.api_url}/images/generations", json=body, headers=AUTH, timeout=60) as answer:
        lines = answer.iter_lines()
        while not next(lines).startswith("event: image_generation.partial_image"):
            pass
        assert fake_openai.app.stream_disconnects == 0
    # The client is gone with the upstream stream still open: pixelgate cancels it.
    wait_until(lambda: fake_openai.app.stream_disconnects == 1, "the upstream stream was closed")


NODE_SCRIPT = """
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.env.PIXELGATE_URL, apiKey: process.env.PIXELGATE_API_KEY, maxRetries: 0 });
const seen = [];
const stream = await client.images.generate({ model: "gpt-image-1", prompt: "a fox", stream: true, partial_images: 2 });
for await (const event of stream) seen.push({ type: event.type, index: event.partial_image_index ?? null });
console.log(JSON.stringify(seen));
"""


def test_the_node_sdk_iterates_the_partials(live: LiveGateway, fake_openai: FakeOpenAIServer, tmp_path: Path) -> None:
    (tmp_path / "node_modules").symlink_to(node_modules(), target_is_directory=True)
    (tmp_path / "partials.mjs").write_text(NODE_SCRIPT, encoding="utf-8")
    result = subprocess.run(
        ["node", "partials.mjs"],
        cwd=tmp_path,
        env={**os.environ, "PIXELGATE_URL": live.api_url, "PIXELGATE_API_KEY": TEST_KEY},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        {"type": "image_generation.partial_image", "index": 0},
        {"type": "image_generation.partial_image", "index": 1},
        {"type": "image_generation.completed", "index": None},
    ]
