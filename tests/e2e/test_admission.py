"""The global in-flight cap, seen by the official SDK: FIFO queue, then 503 with ``retry-after``.

A slot covers the gateway's own work, not the upstream's: a request holds it while its body is read,
so a raw-socket upload that stalls mid-body keeps the gateway's only slot (``/readyz`` reports the
gate's load) and what the next requests get is determined, not raced. A request waiting for a slow
upstream holds no slot, so it does not cap how many images are generated at once.
"""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai
import orjson
import pytest

from tests.conftest import TEST_KEY, make_settings
from tests.fakes.fake_openai import FakeOpenAIServer, result_png
from tests.images import noise_png
from tests.live import LiveGateway
from tests.polling import wait_until
from tests.providers.openai_calls import API_KEY

HOLD_SECONDS = 1.5


def _gateway(fake: FakeOpenAIServer, data_dir: Path, **limits: object) -> LiveGateway:
    settings = make_settings(
        data_dir,
        providers={"openai": {"base_url": fake.base_url, "api_key": API_KEY}},
        overload_retry_after_seconds=3,
        **limits,
    )
    return LiveGateway(settings)


def _client(gateway: LiveGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.api_url, api_key=TEST_KEY, max_retries=0, timeout=30)


def _hold_next_upstream_answer(fake: FakeOpenAIServer, seconds: float = HOLD_SECONDS) -> None:
    body = orjson.dumps({"created": 1, "data": [{"b64_json": base64.b64encode(result_png()).decode()}]})
    fake.app.answer_next(200, body, delay_seconds=seconds)


def _generate(client: openai.OpenAI) -> int:
    result = client.images.generate(model="gpt-image-1", prompt="a lighthouse", response_format="b64_json")
    assert result.data and result.data[0].b64_json
    return len(result.data)


def _load(gateway: LiveGateway) -> dict[str, int]:
    load: dict[str, int] = httpx.get(f"{gateway.base_url}/readyz", timeout=5).json()["admission"]
    return load


def _until(gateway: LiveGateway, condition: Callable[[dict[str, int]], bool]) -> None:
    wait_until(lambda: condition(_load(gateway)), "admission reached the expected state")


@contextmanager
def _stalled_upload(gateway: LiveGateway) -> Iterator[None]:
    """An edit whose body stops after a few bytes: admitted, it holds its slot until the socket closes."""
    head = (
        "POST /v1/images/edits HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {TEST_KEY}\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        "Content-Length: 100000\r\n\r\n--b\r\n"
    )
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(head.encode())
        _until(gateway, lambda load: load["inflight"] == 1)
        yield


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=4) as executor:
        yield executor


def test_beyond_the_queue_an_upload_gets_503_with_retry_after(fake_openai: FakeOpenAIServer, tmp_path: Path) -> None:
    with _gateway(fake_openai, tmp_path, max_inflight=1, max_queued=0) as gateway:
        client = _client(gateway)
        with _stalled_upload(gateway):
            upload = noise_png(600)  # ~1 MiB still being sent when the gateway answers: it must see the 503
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
        assert fake_openai.app.requests == []  # the refused edit never reached the upstream
        # The stalled client left: its slot is free again.
        _until(gateway, lambda load: load["inflight"] == 0)
        assert _generate(client) == 1


def test_a_queued_request_waits_its_turn_then_is_served(
    fake_openai: FakeOpenAIServer, tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    with _gateway(fake_openai, tmp_path, max_inflight=1, max_queued=1) as gateway:
        client = _client(gateway)
        with _stalled_upload(gateway):
            queued = pool.submit(_generate, client)
            _until(gateway, lambda load: load["queued"] == 1)
            time.sleep(0.2)
            assert fake_openai.app.requests == [] and not queued.done()
        assert queued.result(timeout=30) == 1
        assert len(fake_openai.app.requests) == 1


def test_a_request_queued_past_the_timeout_gets_503(fake_openai: FakeOpenAIServer, tmp_path: Path) -> None:
    with _gateway(fake_openai, tmp_path, max_inflight=1, max_queued=4, queue_timeout_seconds=0.2) as gateway:
        client = _client(gateway)
        with _stalled_upload(gateway):
            with pytest.raises(openai.APIStatusError) as refused:
                _generate(client)
            assert refused.value.status_code == 503
            assert refused.value.response.headers["retry-after"] == "3"
        assert fake_openai.app.requests == []


def test_requests_waiting_for_a_slow_upstream_hold_no_slot(
    fake_openai: FakeOpenAIServer, tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    with _gateway(fake_openai, tmp_path, max_inflight=1, max_queued=4) as gateway:
        client = _client(gateway)
        for _ in range(3):
            _hold_next_upstream_answer(fake_openai, seconds=5.0)  # room for a loaded machine
        running = [pool.submit(_generate, client) for _ in range(3)]
        # All three reach the upstream while it still works on the first: one slot, three images at once.
        wait_until(
            lambda: len(fake_openai.app.requests) == 3,
            "the upstream calls were serialised by the admission slot",
            timeout=4.0,  # under the 5 s hold: serialised calls could not all arrive in time
        )
        assert not any(future.done() for future in running)
        assert _load(gateway)["inflight"] == 0
        assert [future.result(timeout=30) for future in running] == [1, 1, 1]


def test_duplicates_of_an_idempotent_request_wait_without_a_slot(
    fake_openai: FakeOpenAIServer, tmp_path: Path, pool: ThreadPoolExecutor
) -> None:
    # One slot: if a duplicate held it while waiting for the first request, the first could never take
    # its slot back to finish, and both would hang until the request deadline.
    with _gateway(fake_openai, tmp_path, max_inflight=1, max_queued=4, request_timeout_seconds=20) as gateway:
        client = _client(gateway)
        _hold_next_upstream_answer(fake_openai)

        def generate() -> str:
            result = client.images.generate(
                model="gpt-image-1",
                prompt="a lighthouse",
                response_format="b64_json",
                extra_headers={"Idempotency-Key": "one-image"},
            )
            assert result.data and result.data[0].b64_json
            return result.data[0].b64_json

        first = pool.submit(generate)
        wait_until(lambda: bool(fake_openai.app.requests), "the first request reached the upstream")
        duplicates = [pool.submit(generate) for _ in range(2)]
        answers = {future.result(timeout=15) for future in [first, *duplicates]}
        assert len(answers) == 1
        assert len(fake_openai.app.requests) == 1
