"""Async jobs end to end: the openai SDK sends ``Prefer: respond-async``, the job is polled, cancelled and
called back, against a live gateway in front of the fake fal, with a webhook receiver on loopback.

The SDK would parse a 202 job body as an ImagesResponse, so the submit goes through
``with_raw_response`` and the job endpoints through httpx, as a client of this API would.
"""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import openai
import pytest
from openai.types import ImagesResponse
from PIL import Image
from standardwebhooks import Webhook, WebhookVerificationError

from tests.conftest import TEST_KEY, upstream_settings
from tests.e2e.conftest import FAL_KEY
from tests.fakes.fake_fal import FakeFal
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.images import png_bytes
from tests.live import LiveGateway
from tests.polling import wait_until

OTHER_KEY = "sk-test-another-team"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"async-jobs-test-webhook-key-0123").decode()
ASYNC = {"Prefer": "respond-async"}
IMAGE_TTL_SECONDS = 6
FINISHED = ("completed", "failed", "cancelled")


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as server:
        yield server


@pytest.fixture
def hook(receiver: WebhookReceiver) -> WebhookReceiver:
    receiver.reset()
    return receiver


@pytest.fixture(scope="module")
def fal_gateway(tmp_path_factory: pytest.TempPathFactory, fal_server: FakeFal) -> Iterator[LiveGateway]:
    settings = upstream_settings(
        tmp_path_factory.mktemp("jobs"),
        fal=fal_server,
        fal_key=FAL_KEY,
        api_keys=[TEST_KEY, OTHER_KEY],
        fetch_allow_hosts=["127.0.0.1"],
        webhook_secret=WEBHOOK_SECRET,
        webhook_retry_seconds=[0.2, 0.2, 0.2],
        image_ttl_seconds=IMAGE_TTL_SECONDS,
    )
    with LiveGateway(settings) as live:
        yield live


@pytest.fixture
def http(fal_gateway: LiveGateway, fake: FakeFal) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {TEST_KEY}"}
    with httpx.Client(base_url=fal_gateway.api_url, headers=headers, timeout=30) as client:
        yield client


def _job(http: httpx.Client, job_id: str) -> dict[str, Any]:
    response = http.get(f"/images/jobs/{job_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _finished(http: httpx.Client, job_id: str, timeout: float = 20) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def done() -> bool:
        seen.update(_job(http, job_id))
        return seen["status"] in FINISHED

    wait_until(done, f"job {job_id} finished", timeout=timeout, interval=0.05)
    return seen


def _submit(http: httpx.Client, body: dict[str, Any], *, headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = http.post("/images/generations", json=body, headers={**ASYNC, **(headers or {})})
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


def test_an_sdk_generation_becomes_a_job_that_completes_with_the_synchronous_answer(
    sdk: openai.OpenAI, http: httpx.Client, fake: FakeFal
) -> None:
    raw = sdk.images.with_raw_response.generate(
        model="hidream-i1-fast", prompt="a lighthouse", size="256x192", extra_headers=ASYNC
    )
    assert raw.status_code == 202
    job = raw.http_response.json()
    assert job["object"] == "image.job" and job["status"] == "queued" and job["id"].startswith("job_")
    assert isinstance(job["created"], int) and job["model"] == "hidream-i1-fast"
    assert raw.headers["location"] == f"/v1/images/jobs/{job['id']}"
    assert raw.headers["preference-applied"] == "respond-async"

    finished = _finished(http, job["id"])
    assert finished["status"] == "completed" and "error" not in finished
    result = ImagesResponse.model_validate(finished["result"])  # what images.generate would have returned
    assert result.size == "256x192" and result.data is not None and len(result.data) == 1
    assert finished["result"]["metadata"]["provider"] == "fal"
    assert finished["started_at"] >= job["created"] and finished["finished_at"] >= finished["started_at"]
    assert finished["expires_at"] > finished["finished_at"]
    url = result.data[0].url
    assert url is not None
    downloaded = httpx.get(url)
    assert downloaded.status_code == 200
    with Image.open(io.BytesIO(downloaded.content)) as image:
        assert image.size == (256, 192)
    assert len(fake.submissions) == 1


def test_an_sdk_edit_job_answers_b64_json_as_asked(sdk: openai.OpenAI, http: httpx.Client) -> None:
    raw = sdk.images.with_raw_response.edit(
        model="hidream-e1-1",
        image=("in.png", png_bytes(96, 64), "image/png"),
        prompt="make it blue",
        response_format="b64_json",
        extra_headers=ASYNC,
    )
    assert raw.status_code == 202
    finished = _finished(http, raw.http_response.json()["id"])
    result = ImagesResponse.model_validate(finished["result"])
    assert result.data is not None and result.data[0].url is None and result.data[0].b64_json is not None
    with Image.open(io.BytesIO(base64.b64decode(result.data[0].b64_json))) as image:
        assert image.size == (96, 64)


def _expires(url: str) -> int:
    return int(parse_qs(urlsplit(url).query)["expires"][0])


def test_url_links_are_minted_again_once_half_their_lifetime_is_gone(http: httpx.Client) -> None:
    job = _submit(http, {"model": "sandbox-generate", "prompt": "p", "size": "64x64"})
    first = _finished(http, job["id"])["result"]["data"][0]["url"]
    ends = _expires(first)
    if ends - time.time() > IMAGE_TTL_SECONDS / 2 + 0.5:  # surely fresh still (a loaded machine may be slow)
        assert _job(http, job["id"])["result"]["data"][0]["url"] == first
    time.sleep(max(0.0, ends - IMAGE_TTL_SECONDS / 2 - time.time()) + 0.3)
    second = _job(http, job["id"])["result"]["data"][0]["url"]
    assert second != first and _expires(second) > ends
    time.sleep(max(0.0, ends - time.time()) + 0.3)  # the first link has expired; the new one still works
    assert httpx.get(first).status_code in (403, 404)
    assert httpx.get(second).status_code == 200


def test_a_failed_job_carries_the_openai_error(http: httpx.Client) -> None:
    job = _submit(http, {"model": "hidream-i1-fast", "prompt": "a cat [fake:content_policy]"})
    finished = _finished(http, job["id"])
    assert finished["status"] == "failed" and "result" not in finished
    assert finished["error"]["code"] == "moderation_blocked"
    assert set(finished["error"]) == {"message", "type", "param", "code"}


def test_delete_cancels_the_job_and_its_fal_job(http: httpx.Client, fake: FakeFal) -> None:
    fake.latency = 30
    job = _submit(http, {"model": "hidream-i1-fast", "prompt": "slow"})
    wait_until(lambda: len(fake.submissions) == 1 and _job(http, job["id"])["status"] == "in_progress", "job running")
    cancelled = http.delete(f"/images/jobs/{job['id']}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    wait_until(lambda: fake.cancelled == [fake.submissions[0].request_id], "the fal job cancelled")
    assert _job(http, job["id"])["status"] == "cancelled"
    # Cancelling again, or a finished job, answers the job as it is.
    assert http.delete(f"/images/jobs/{job['id']}").json()["status"] == "cancelled"


def test_a_queued_job_cancelled_never_reaches_the_upstream(tmp_path: Path, fal_server: FakeFal, fake: FakeFal) -> None:
    settings = upstream_settings(tmp_path, fal=fal_server, fal_key=FAL_KEY, job_concurrency=1)
    fake.latency = 30
    with LiveGateway(settings) as live, httpx.Client(base_url=live.api_url, timeout=30) as http:
        http.headers["Authorization"] = f"Bearer {TEST_KEY}"
        running = _submit(http, {"model": "hidream-i1-fast", "prompt": "first"})
        queued = _submit(http, {"model": "hidream-i1-fast", "prompt": "second"})
        wait_until(lambda: _job(http, running["id"])["status"] == "in_progress", "first job running")
        assert _job(http, queued["id"])["status"] == "queued"
        assert http.delete(f"/images/jobs/{queued['id']}").json()["status"] == "cancelled"
        http.delete(f"/images/jobs/{running['id']}")
        wait_until(lambda: len(fake.cancelled) == 1, "the running job's fal job cancelled")
    assert [s.payload["prompt"] for s in fake.submissions] == ["first"]


def test_jobs_are_visible_only_to_the_key_that_made_them(http: httpx.Client, fal_gateway: LiveGateway) -> None:
    job = _submit(http, {"model": "sandbox-generate", "prompt": "mine", "size": "64x64"})
    other = {"Authorization": f"Bearer {OTHER_KEY}"}
    for method in ("GET", "DELETE"):
        response = httpx.request(method, f"{fal_gateway.api_url}/images/jobs/{job['id']}", headers=other)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "job_not_found"
    assert _finished(http, job["id"])["status"] == "completed"  # the other key's DELETE did nothing
    assert http.get("/images/jobs/job_000000000000000000000000").status_code == 404
    assert http.get("/images/jobs/not-a-job-id").status_code == 404
    assert httpx.get(f"{fal_gateway.api_url}/images/jobs/{job['id']}").status_code == 401


def test_the_webhook_is_signed_per_standard_webhooks_and_a_tampered_one_is_refused(
    http: httpx.Client, hook: WebhookReceiver
) -> None:
    job = _submit(http, {"model": "hidream-i1-fast", "prompt": "called back", "webhook_url": hook.url})
    wait_until(lambda: len(hook.delivered()) == 1, "webhook delivered")
    [delivery] = hook.received
    verified = Webhook(WEBHOOK_SECRET).verify(delivery.body, delivery.headers)
    assert verified["id"] == job["id"] and verified["status"] == "completed"
    assert verified["result"]["data"][0]["url"].startswith("http://")
    assert delivery.headers["webhook-id"] == job["id"]
    assert delivery.headers["content-type"] == "application/json"
    with pytest.raises(WebhookVerificationError):
        Webhook(WEBHOOK_SECRET).verify(delivery.body.replace(b"completed", b"failed"), delivery.headers)
    wait_until(lambda: _job(http, job["id"])["webhook"] == {"status": "delivered", "attempts": 1}, "delivery recorded")
    # The webhook_url went to the gateway, not upstream.
    assert "webhook_url" not in _job(http, job["id"])["result"]["metadata"]["parameters"]


def test_the_webhook_is_retried_after_the_receiver_fails(
    http: httpx.Client, hook: WebhookReceiver, fake: FakeFal
) -> None:
    hook.fail_first = 2
    job = _submit(http, {"model": "hidream-i1-fast", "prompt": "[fake:content_policy]", "webhook_url": hook.url})
    wait_until(lambda: len(hook.delivered()) == 1, "webhook delivered on the third try")
    assert [item.answered for item in hook.received] == [500, 500, 204]
    assert {item.headers["webhook-id"] for item in hook.received} == {job["id"]}  # one message, resent
    for item in hook.received:  # each attempt signed afresh
        assert Webhook(WEBHOOK_SECRET).verify(item.body, item.headers)["status"] == "failed"
    assert hook.received[1].at - hook.received[0].at >= 0.2  # the retry waited its turn
    wait_until(lambda: _job(http, job["id"])["webhook"] == {"status": "delivered", "attempts": 3}, "recorded")


def test_a_webhook_that_keeps_failing_is_given_up_after_the_schedule(http: httpx.Client, hook: WebhookReceiver) -> None:
    hook.fail_first = 100
    job = _submit(http, {"model": "sandbox-generate", "prompt": "p", "size": "64x64", "webhook_url": hook.url})
    wait_until(lambda: _job(http, job["id"])["webhook"]["status"] == "failed", "webhook given up")
    assert len(hook.received) == 4  # the first try and the three retries of the schedule
    assert _job(http, job["id"])["webhook"]["attempts"] == 4


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.2:9/hook",  # loopback, but not an allowed host
        "https://10.0.0.1/hook",  # private
        "https://169.254.169.254/latest",  # cloud metadata
        "ftp://example.com/hook",
        "not a url",
    ],
)
def test_a_webhook_url_the_outbound_guard_refuses_is_a_400(http: httpx.Client, fake: FakeFal, url: str) -> None:
    response = http.post(
        "/images/generations", json={"model": "hidream-i1-fast", "prompt": "p", "webhook_url": url}, headers=ASYNC
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "webhook_url"
    assert fake.submissions == []


def test_a_request_that_cannot_be_served_is_refused_at_once_not_as_a_failed_job(
    http: httpx.Client, hook: WebhookReceiver
) -> None:
    unknown = http.post("/images/generations", json={"model": "no-such-model", "prompt": "p"}, headers=ASYNC)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    bad = http.post("/images/generations", json={"model": "hidream-i1-fast", "prompt": "p", "n": 11}, headers=ASYNC)
    assert bad.status_code == 400
    synchronous = http.post(
        "/images/generations", json={"model": "hidream-i1-fast", "prompt": "p", "webhook_url": hook.url}
    )
    assert synchronous.status_code == 400 and synchronous.json()["error"]["param"] == "webhook_url"


def test_an_idempotency_key_gives_the_same_job_again(http: httpx.Client, fake: FakeFal) -> None:
    body = {"model": "hidream-i1-fast", "prompt": "once"}
    first = _submit(http, body, headers={"Idempotency-Key": "job-once-1"})
    again = _submit(http, body, headers={"Idempotency-Key": "job-once-1"})
    assert again["id"] == first["id"]
    assert _finished(http, first["id"])["status"] == "completed"
    assert len(fake.submissions) == 1


def test_a_cancelled_job_is_called_back_too(http: httpx.Client, hook: WebhookReceiver, fake: FakeFal) -> None:
    fake.latency = 30
    job = _submit(http, {"model": "hidream-i1-fast", "prompt": "never mind", "webhook_url": hook.url})
    wait_until(lambda: len(fake.submissions) == 1, "the job is at fal")
    http.delete(f"/images/jobs/{job['id']}")
    wait_until(lambda: len(hook.delivered()) == 1, "webhook delivered")
    delivered = Webhook(WEBHOOK_SECRET).verify(hook.received[0].body, hook.received[0].headers)
    assert (delivered["id"], delivered["status"]) == (job["id"], "cancelled")
    assert "result" not in delivered and "error" not in delivered


def test_a_key_is_held_to_its_unfinished_jobs_and_inputs_to_their_bound(
    tmp_path: Path, fal_server: FakeFal, fake: FakeFal
) -> None:
    settings = upstream_settings(
        tmp_path, fal=fal_server, fal_key=FAL_KEY, max_concurrent_per_key=1, job_max_input_bytes=500
    )
    fake.latency = 30
    with LiveGateway(settings) as live, httpx.Client(base_url=live.api_url, timeout=30) as http:
        http.headers["Authorization"] = f"Bearer {TEST_KEY}"
        first = _submit(http, {"model": "hidream-i1-fast", "prompt": "first"})
        refused = http.post("/images/generations", json={"model": "hidream-i1-fast", "prompt": "more"}, headers=ASYNC)
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "too_many_jobs"
        assert refused.headers["x-should-retry"] == "true" and refused.headers["retry-after"] == "1"
        # Cancelled once fal has it (a job cancelled while still queued is never sent at all).
        wait_until(lambda: len(fake.submissions) == 1, what="the first job submitted to fal", timeout=30)
        http.delete(f"/images/jobs/{first['id']}")
        big = http.post(
            "/images/edits",
            files={"image": ("in.png", png_bytes(300, 300), "image/png")},
            data={"model": "hidream-e1-1", "prompt": "p"},
            headers=ASYNC,
        )
        assert big.status_code == 413 and big.json()["error"]["param"] == "image"
    assert [s.payload["prompt"] for s in fake.submissions] == ["first"]
