"""The global in-flight cap, seen by the official SDK: FIFO queue, then 503 with ``retry-after``.

The fake OpenAI upstream holds the first request (a scripted delay) so that it keeps the gateway's
only slot; what the next requests get is then determined, not raced.
"""

from __future__ import annotations

import base64
import io
import random
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import orjson
import pytest
from PIL import Image

from tests.conftest import TEST_KEY, make_settings
from tests.fakes.fake_openai import FakeOpenAIServer, result_png
from tests.live import LiveGateway
from tests.providers.openai_calls import API_KEY

HOLD_SECONDS = 1.5


def _gateway(fake: FakeOpenAIServer, data_dir: Path, **limits: object) -> LiveGateway:
    settings = make_settings(
        data_dir, openai_base_url=fake.base_url, openai_api_key=API_KEY, overload_retry_after_seconds=3, **limits
    )
    return LiveGateway(settings)


def _client(gateway: LiveGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.api_url, api_key=TEST_KEY, max_retries=0, timeout=30)


def _hold_next_upstream_answer(fake: FakeOpenAIServer) -> None:
    body = orjson.dumps({"created": 1, "data": [{"b64_json": base64.b64encode(result_png()).decode()}]})
    fake.app.answer_next(200, body, delay_seconds=HOLD_SECONDS)


def _generate(client: openai.OpenAI) -> int:
    result = client.images.generate(model="gpt-image-1", prompt="a lighthouse", response_format="b64_json")
    assert result.data and result.data[0].b64_json
    return len(result.data)


def _start_holding_request(pool: ThreadPoolExecutor, client: openai.OpenAI, fake: FakeOpenAIServer) -> Future[int]:
    """A generation that has reached the upstream (and so holds its slot) when this returns."""
    _hold_next_upstream_answer(fake)
    held = pool.submit(_generate, client)
    deadline = time.monotonic() + 10
    while not fake.app.requests:
        assert time.monotonic() < deadline, "the first request never reached the upstream"
        time.sleep(0.01)
    return held


def _noise_png(side: int) -> bytes:
    image = Image.frombytes("RGB", (side, side), random.Random(7).randbytes(side * side * 3))
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=0)
    return out.getvalue()


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=4) as executor:
        yield executor


def test_beyond_the_queue_an_upload_gets_503_with_retry_after(
    fake_openai: FakeOpenAIServer, tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    with _gateway(fake_openai, tmp_path, max_inflight=1, max_queued=0) as gateway:
        client = _client(gateway)
        held = _start_holding_request(pool, client, fake_openai)
        upload = _noise_png(600)  # ~1 MiB still being sent when the gateway answers: it must see the 503
        with pytest.raises(openai.APIStatusError) as refused:
            client.images.edit(model="gpt-image-1", image=("in.png", upload, "image/png"), prompt="make it blue")
        response = refused.value.response
        assert response.status_code == 503
        assert response.headers["retry-after"] == "3"
        assert response.headers["x-request-id"]
        error = response.json()["error"]
        assert error["type"] == "server_error"
        assert error["code"] == "server_overloaded"
        assert set(error) == {"message", "type", "param", "code"}
        # Other routes are not admission-controlled: health answers while the slot is taken.
        assert httpx.get(f"{gateway.base_url}/healthz", timeout=5).status_code == 200
        assert held.result(timeout=30) == 1
        assert len(fake_openai.app.requests) == 1  # the refused edit never reached the upstream
        # The slot is free again.
        assert _generate(client) == 1


def test_a_queued_request_waits_its_turn_then_is_served(
    fake_openai: FakeOpenAIServer, tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    with _gateway(fake_openai, tmp_path, max_inflight=1, max_queued=1) as gateway:
        client = _client(gateway)
        held = _start_holding_request(pool, client, fake_openai)
        started = time.monotonic()
        assert _generate(client) == 1
        assert held.result(timeout=30) == 1
        # The queued request started upstream only after the held one was answered.
        assert time.monotonic() - started > HOLD_SECONDS / 2
        assert len(fake_openai.app.requests) == 2


def test_a_request_queued_past_the_timeout_gets_503(
    fake_openai: FakeOpenAIServer, tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    with _gateway(fake_openai, tmp_path, max_inflight=1, max_queued=4, queue_timeout_seconds=0.2) as gateway:
        client = _client(gateway)
        held = _start_holding_request(pool, client, fake_openai)
        with pytest.raises(openai.APIStatusError) as refused:
            _generate(client)
        assert refused.value.status_code == 503
        assert refused.value.response.headers["retry-after"] == "3"
        assert held.result(timeout=30) == 1
        assert len(fake_openai.app.requests) == 1
