"""``x-should-retry``: what the official SDK, at its default two retries, does with pixelgate's errors.

The SDK retries every 5xx unless the answer says ``x-should-retry: false``. Where pixelgate already
waited out its deadline or retried the upstream itself, another try would start more upstream jobs
(each possibly billed), so the answer says not to; the count of jobs at the fake fal shows it.
Overload and an upstream rate limit stay retryable: nothing reached (or was charged by) a provider.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.conftest import TEST_KEY, upstream_settings
from tests.e2e.conftest import FAL_KEY
from tests.fakes.fake_fal import FakeFal
from tests.live import LiveGateway
from tests.polling import wait_until

DEADLINE_SECONDS = 3.0


@pytest.fixture(scope="module")
def live(fal_server: FakeFal, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    settings = upstream_settings(
        tmp_path_factory.mktemp("retry"),
        fal=fal_server,
        fal_key=FAL_KEY,
        max_retries=1,
        request_timeout_seconds=DEADLINE_SECONDS,
        max_inflight=1,
        max_queued=0,
    )
    with LiveGateway(settings) as gateway:
        yield gateway


def _generate_with_default_retries(live: LiveGateway, prompt: str) -> openai.APIStatusError:
    """One SDK call at the SDK's default ``max_retries`` (2); returns the error it ended with."""
    with (
        openai.OpenAI(base_url=live.api_url, api_key=TEST_KEY, timeout=60) as sdk,
        pytest.raises(openai.APIStatusError) as caught,
    ):
        assert sdk.max_retries == 2
        sdk.images.generate(model="hidream-i1-full", prompt=prompt, size="64x64", response_format="b64_json")
    return caught.value


def _code(error: openai.APIStatusError) -> object:
    assert isinstance(error.body, dict)
    return error.body["code"]


def test_a_504_after_the_deadline_starts_one_upstream_job_not_three(live: LiveGateway, fake: FakeFal) -> None:
    error = _generate_with_default_retries(live, "x [fake:never]")
    assert (error.status_code, _code(error)) == (504, "upstream_timeout")
    assert error.response.headers["x-should-retry"] == "false"
    assert len(fake.submissions) == 1


def test_a_502_after_pixelgates_own_retries_is_not_retried_again(live: LiveGateway, fake: FakeFal) -> None:
    error = _generate_with_default_retries(live, "x [fake:503_always]")
    assert (error.status_code, _code(error)) == (502, "upstream_error")
    assert error.response.headers["x-should-retry"] == "false"
    assert len(fake.attempts) == 2  # pixelgate's first try and its one retry; the SDK added none


def test_a_failed_job_is_not_run_again(live: LiveGateway, fake: FakeFal) -> None:
    error = _generate_with_default_retries(live, "x [fake:completed_error]")
    assert error.status_code == 502
    assert error.response.headers["x-should-retry"] == "false"
    assert len(fake.submissions) == 1


def test_an_upstream_rate_limit_stays_retryable_with_its_retry_after(live: LiveGateway, fake: FakeFal) -> None:
    response = httpx.post(
        f"{live.api_url}/images/generations",
        json={"model": "hidream-i1-full", "prompt": "x [fake:429_always:1]", "size": "64x64"},
        headers={"Authorization": f"Bearer {TEST_KEY}"},
        timeout=30,
    )
    assert response.status_code == 502 and response.json()["error"]["code"] == "upstream_rate_limited"
    assert response.headers["x-should-retry"] == "true"
    assert response.headers["retry-after"] == "1"


def test_overload_stays_retryable(live: LiveGateway) -> None:
    """The only slot is held by a stalled upload and nothing may queue: the next request is a 503."""
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
        sock.sendall(
            (
                "POST /v1/images/edits HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {TEST_KEY}\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                "Content-Length: 100000\r\n\r\n--b\r\n"
            ).encode()
        )
        wait_until(
            lambda: httpx.get(f"{live.base_url}/readyz", timeout=5).json()["admission"]["inflight"] == 1,
            "the stalled upload holds the slot",
        )
        response = httpx.post(
            f"{live.api_url}/images/generations",
            json={"model": "sandbox-generate", "prompt": "x", "size": "16x16"},
            headers={"Authorization": f"Bearer {TEST_KEY}"},
            timeout=30,
        )
    assert response.status_code == 503 and response.json()["error"]["code"] == "server_overloaded"
    assert response.headers["x-should-retry"] == "true"
    assert response.headers["retry-after"]


@pytest.mark.parametrize(
    ("path", "status"),
    [("/v1/models/no-such-model", 404), ("/v1/no-such-route", 404)],
)
def test_client_errors_say_not_to_retry(live: LiveGateway, path: str, status: int) -> None:
    response = httpx.get(f"{live.base_url}{path}", headers={"Authorization": f"Bearer {TEST_KEY}"}, timeout=10)
    assert response.status_code == status
    assert response.headers["x-should-retry"] == "false"
