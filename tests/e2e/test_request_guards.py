"""How the request guards meet: admission, authentication, idempotency and disconnects.

- A request without a valid key is answered 401 at once, even while every admission slot is taken:
  it neither queues behind nor pushes out the clients that have one.
- The first answer to a request with an ``Idempotency-Key`` carries the same headers as without one
  (``retry-after`` of a persistent upstream rate limit).
- A client that leaves mid-upload is not an error in the gateway's log.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.conftest import TEST_KEY, upstream_settings
from tests.e2e.conftest import FAL_KEY
from tests.fakes.fake_fal import FakeFal
from tests.live import LiveGateway
from tests.polling import wait_until


@pytest.fixture(scope="module")
def live(fal_server: FakeFal, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    settings = upstream_settings(
        tmp_path_factory.mktemp("guards"),
        fal=fal_server,
        fal_key=FAL_KEY,
        max_inflight=1,
        max_queued=8,
        queue_timeout_seconds=30,
    )
    with LiveGateway(settings) as gateway:
        yield gateway


def _inflight(live: LiveGateway) -> int:
    load: dict[str, int] = httpx.get(f"{live.base_url}/readyz", timeout=5).json()["admission"]
    return load["inflight"]


def _stalled_upload(live: LiveGateway) -> socket.socket:
    """An authorized edit whose body stops after its first bytes: it holds the only admission slot."""
    sock = socket.create_connection(("127.0.0.1", live.port), timeout=10)
    sock.sendall(
        (
            "POST /v1/images/edits HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {TEST_KEY}\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            "Content-Length: 100000\r\n\r\n--b\r\n"
        ).encode()
    )
    wait_until(lambda: _inflight(live) == 1, "the stalled upload is admitted")
    return sock


@pytest.mark.parametrize("authorization", ["Bearer not-the-key", None], ids=["wrong key", "no key"])
def test_without_a_valid_key_the_answer_is_401_even_when_every_slot_is_taken(
    live: LiveGateway, authorization: str | None
) -> None:
    sock = _stalled_upload(live)
    try:
        headers = {"Authorization": authorization} if authorization else {}
        started = time.monotonic()
        response = httpx.post(
            f"{live.api_url}/images/generations",
            json={"model": "hidream-i1-full", "prompt": "x"},
            headers=headers,
            timeout=20,
        )
        assert response.status_code == 401, response.text
        assert response.json()["error"]["type"] == "invalid_request_error"
        # Answered at once, not after waiting in the admission queue (30 s here).
        assert time.monotonic() - started < 10
    finally:
        sock.close()


def test_the_first_idempotent_answer_keeps_its_retry_after(live: LiveGateway, fake: FakeFal) -> None:
    with (
        openai.OpenAI(base_url=live.api_url, api_key=TEST_KEY, max_retries=0, timeout=30) as sdk,
        pytest.raises(openai.APIStatusError) as caught,
    ):
        sdk.images.generate(
            model="hidream-i1-full",
            prompt="x [fake:429_always:1]",
            response_format="b64_json",
            extra_headers={"Idempotency-Key": "rate-limited-once"},
        )
    error = caught.value
    assert error.status_code == 502 and isinstance(error.body, dict)
    assert error.body["code"] == "upstream_rate_limited"
    assert error.response.headers["retry-after"] == "1"


def test_a_client_leaving_mid_upload_is_not_logged_as_an_error(
    live: LiveGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pixelgate")
    sock = _stalled_upload(live)
    sock.close()
    wait_until(lambda: _inflight(live) == 0, "the abandoned upload's slot is free again")
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
