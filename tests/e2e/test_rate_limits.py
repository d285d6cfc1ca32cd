"""Issue 7, per-key limits: a token bucket and a concurrency cap, seen through the openai SDK.

Every image-endpoint response carries ``x-ratelimit-{limit,remaining,reset}-requests``; a refused
request is a 429 in OpenAI's shape for rate limits with ``retry-after``, which the SDK honours.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.ratelimit import duration
from tests.conftest import TEST_KEY, make_settings
from tests.images import png_bytes
from tests.live import LiveGateway
from tests.polling import wait_until

OTHER_KEY = "sk-test-other-team"


def _sdk(live: LiveGateway, key: str = TEST_KEY, retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(base_url=live.api_url, api_key=key, max_retries=retries, timeout=30)


def _generate(sdk: openai.OpenAI, **extra: object) -> dict[str, str]:
    """The response headers of one successful generation (the SDK raises on any error status)."""
    raw = sdk.images.with_raw_response.generate(
        model="sandbox-generate", prompt="x", size="16x16", response_format="b64_json", extra_body=extra or None
    )
    assert raw.status_code == 200
    return dict(raw.headers)


@pytest.fixture
def tight(tmp_path: Path) -> Iterator[LiveGateway]:
    """Two tokens per key, refilled at one a minute: the third request within a minute is refused."""
    settings = make_settings(tmp_path, api_keys=[TEST_KEY, OTHER_KEY], rate_limit_rpm=1, rate_limit_burst=2)
    with LiveGateway(settings) as live:
        yield live


def test_bucket_headers_count_down_then_429_in_openai_shape(tight: LiveGateway) -> None:
    with _sdk(tight) as sdk:
        first, second = _generate(sdk), _generate(sdk)
        assert [r["x-ratelimit-limit-requests"] for r in (first, second)] == ["2", "2"]
        assert [r["x-ratelimit-remaining-requests"] for r in (first, second)] == ["1", "0"]
        assert second["x-ratelimit-reset-requests"].endswith("s")
        with pytest.raises(openai.RateLimitError) as caught:
            _generate(sdk)
    error = caught.value
    assert error.status_code == 429
    assert error.body == {
        "message": error.body["message"],  # type: ignore[index]
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    headers = error.response.headers
    assert int(headers["retry-after"]) >= 59  # one token a minute
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-request-id"]


def test_each_key_has_its_own_bucket(tight: LiveGateway) -> None:
    with _sdk(tight) as sdk, _sdk(tight, OTHER_KEY) as other:
        _generate(sdk), _generate(sdk)
        with pytest.raises(openai.RateLimitError):
            _generate(sdk)
        assert _generate(other)["x-ratelimit-remaining-requests"] == "1"


def test_rejected_keys_do_not_spend_the_bucket(tight: LiveGateway) -> None:
    with _sdk(tight, "sk-wrong") as stranger:
        for _ in range(3):
            with pytest.raises(openai.AuthenticationError):
                _generate(stranger)
    with _sdk(tight) as sdk:
        assert _generate(sdk)["x-ratelimit-remaining-requests"] == "1"


def test_error_responses_carry_the_headers_too(tight: LiveGateway) -> None:
    response = httpx.post(
        f"{tight.api_url}/images/generations",
        json={"model": "no-such-model", "prompt": "x"},
        headers={"Authorization": f"Bearer {TEST_KEY}"},
        timeout=30,
    )
    assert response.status_code == 404
    assert response.headers["x-ratelimit-remaining-requests"] == "1"
    edit = httpx.post(
        f"{tight.api_url}/images/edits",
        files=[("image", ("a.png", png_bytes(8, 8), "image/png"))],
        data={"model": "sandbox-edit", "prompt": "x", "n": "0"},
        headers={"Authorization": f"Bearer {TEST_KEY}"},
        timeout=30,
    )
    assert edit.status_code == 400
    assert edit.headers["x-ratelimit-remaining-requests"] == "0"


def test_sdk_waits_for_retry_after_and_then_succeeds(tmp_path: Path) -> None:
    # 600 a minute is a token every 100 ms: the 429 says retry-after-ms ~100, and the SDK's retry lands.
    settings = make_settings(tmp_path, rate_limit_rpm=600, rate_limit_burst=1)
    with LiveGateway(settings) as live, _sdk(live, retries=2) as sdk:
        _generate(sdk)
        started = time.monotonic()
        retried = sdk.images.with_raw_response.generate(
            model="sandbox-generate", prompt="x", size="16x16", response_format="b64_json"
        )
        assert retried.status_code == 200
        assert retried.retries_taken >= 1
        assert time.monotonic() - started < 5


def test_without_keys_each_client_address_has_its_own_bucket(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, api_keys=[], rate_limit_rpm=1, rate_limit_burst=1)
    body = {"model": "sandbox-generate", "prompt": "x", "size": "16x16", "response_format": "b64_json"}
    with LiveGateway(settings) as live:
        url = f"{live.api_url}/images/generations"
        with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.1"), timeout=30) as one:
            assert one.post(url, json=body).status_code == 200
            limited = one.post(url, json=body)
            assert limited.status_code == 429 and limited.json()["error"]["code"] == "rate_limit_exceeded"
        with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"), timeout=30) as two:
            assert two.post(url, json=body).status_code == 200


def _sandbox_calls_in_flight(live: LiveGateway) -> float:
    """The gateway's own count of calls at the sandbox provider now (``GET /metrics``, from loopback)."""
    scrape = httpx.get(f"{live.base_url}/metrics", timeout=30)
    for family in text_string_to_metric_families(scrape.text):
        for sample in family.samples:
            if sample.name == "pixelgate_upstream_calls_inflight" and sample.labels.get("provider") == "sandbox":
                return sample.value
    return 0.0


def test_concurrency_cap_per_key_and_slots_come_back(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, api_keys=[TEST_KEY, OTHER_KEY], max_concurrent_per_key=1)
    with LiveGateway(settings) as live, _sdk(live) as sdk, _sdk(live, OTHER_KEY) as other:
        slow_done = threading.Event()

        def slow() -> None:
            with _sdk(live) as patient:
                _generate(patient, delay_ms=5000)
            slow_done.set()

        worker = threading.Thread(target=slow)
        worker.start()
        try:
            # Nothing else of the key is sent until the slow request holds its only slot (it is at its
            # provider): probing for it instead took the slot from it on a loaded host.
            wait_until(lambda: _sandbox_calls_in_flight(live) == 1, "the slow request at its provider")
            with pytest.raises(openai.RateLimitError) as caught:
                _generate(sdk)
            assert caught.value.response.headers["retry-after"] == "1"
            assert "concurrent" in caught.value.message
            _generate(other)  # another key is not affected
        finally:
            worker.join(timeout=30)
        assert slow_done.is_set()
        # Slots are returned after successes and after errors alike.
        for _ in range(3):
            with pytest.raises(openai.NotFoundError):
                sdk.images.generate(model="no-such-model", prompt="x")
        _generate(sdk)


def test_defaults_do_not_limit_normal_use(gateway: LiveGateway) -> None:
    with _sdk(gateway) as sdk:
        headers = _generate(sdk)
    assert int(headers["x-ratelimit-limit-requests"]) == 6000
    assert int(headers["x-ratelimit-remaining-requests"]) > 5000


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0, "0ms"), (0.0204, "21ms"), (1.0, "1s"), (1.5, "1.5s"), (59.9999, "60s"), (360.0, "6m0s"), (3725, "1h2m5s")],
)
def test_reset_durations_are_written_like_openai(seconds: float, text: str) -> None:
    assert duration(seconds) == text
