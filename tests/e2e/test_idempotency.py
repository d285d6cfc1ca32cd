"""Issue 7, Idempotency-Key: the openai SDK -> a live pixelgate -> the fake fal, which counts submissions.

The SDK sends no Idempotency-Key of its own for images; clients pass it with ``extra_headers``, and
the SDK keeps it on its retries.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import TEST_KEY, make_settings, upstream_settings
from tests.e2e.conftest import FAL_KEY
from tests.fakes.fake_fal import FakeFal
from tests.images import png_bytes
from tests.live import LiveGateway
from tests.polling import wait_until

OTHER_KEY = "sk-test-idem-other"


@pytest.fixture(scope="module")
def fal_gateway(fal_server: FakeFal, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    settings = upstream_settings(
        tmp_path_factory.mktemp("idem"),
        fal=fal_server,
        fal_key=FAL_KEY,
        max_retries=0,
        api_keys=[TEST_KEY, OTHER_KEY],
        request_timeout_seconds=10,
    )
    with LiveGateway(settings) as server:
        yield server


def _key() -> dict[str, str]:
    return {"Idempotency-Key": f"test-{uuid.uuid4()}"}


def _edit(sdk: openai.OpenAI, headers: dict[str, str], prompt: str = "make it purple") -> tuple[str, dict[str, str]]:
    """One HiDream edit (multipart: the SDK draws a new boundary per request); its image and headers."""
    raw = sdk.images.with_raw_response.edit(
        model="hidream-e1-1",
        image=("in.png", png_bytes(64, 48), "image/png"),
        prompt=prompt,
        response_format="b64_json",
        extra_headers=headers,
    )
    data = raw.parse().data
    assert data is not None and data[0].b64_json
    return data[0].b64_json, dict(raw.headers)


def _generate_body(prompt: str = "a lighthouse") -> dict[str, object]:
    return {"model": "hidream-i1-full", "prompt": prompt, "size": "64x64", "response_format": "b64_json"}


def test_same_key_and_body_is_one_upstream_call(sdk: openai.OpenAI, fake: FakeFal) -> None:
    key = _key()
    first, first_headers = _edit(sdk, key)
    again, again_headers = _edit(sdk, key)
    assert len(fake.submissions) == 1
    assert again == first  # the stored answer, not a new image with a new random seed
    assert "idempotent-replayed" not in first_headers
    assert again_headers["idempotent-replayed"] == "true"
    assert again_headers["x-request-id"] != first_headers["x-request-id"]


def test_without_a_key_every_request_is_served(sdk: openai.OpenAI, fake: FakeFal) -> None:
    _edit(sdk, {}), _edit(sdk, {})
    assert len(fake.submissions) == 2


def test_same_key_with_another_body_is_409_and_not_retried(fal_gateway: LiveGateway, fake: FakeFal) -> None:
    key = _key()
    sent: list[object] = []  # every HTTP request the SDK sends, retries included
    with (
        openai.DefaultHttpx2Client(event_hooks={"request": [sent.append]}) as counting,
        openai.OpenAI(
            base_url=fal_gateway.api_url, api_key=TEST_KEY, max_retries=2, timeout=30, http_client=counting
        ) as sdk,
    ):
        _edit(sdk, key, "make it purple")
        assert len(sent) == 1
        with pytest.raises(openai.ConflictError) as caught:
            _edit(sdk, key, "make it green")
    assert len(sent) == 2  # x-should-retry: false, so the SDK (max_retries=2) did not send it again
    error = caught.value
    assert error.status_code == 409
    assert isinstance(error.body, dict)
    assert (error.body["type"], error.body["code"], error.body["param"]) == (
        "invalid_request_error",
        "idempotency_key_reused",
        "idempotency-key",
    )
    assert error.response.headers["x-should-retry"] == "false"
    assert len(fake.submissions) == 1


def test_keys_are_scoped_per_api_key(fal_gateway: LiveGateway, sdk: openai.OpenAI, fake: FakeFal) -> None:
    key = _key()
    _edit(sdk, key)
    with openai.OpenAI(base_url=fal_gateway.api_url, api_key=OTHER_KEY, max_retries=0, timeout=30) as other:
        _, headers = _edit(other, key, "make it green")  # another team's key: no conflict, no replay
    assert "idempotent-replayed" not in headers
    assert len(fake.submissions) == 2


def test_concurrent_duplicates_share_the_first_call(sdk: openai.OpenAI, fake: FakeFal) -> None:
    fake.latency = 1.0
    key = _key()
    results: list[tuple[str, dict[str, str]]] = []
    threads = [threading.Thread(target=lambda: results.append(_edit(sdk, key))) for _ in range(3)]
    threads[0].start()
    # The duplicates arrive while fal works on the first (1 s), not after it answered.
    wait_until(lambda: len(fake.submissions) == 1, "the first request reached fal")
    for thread in threads[1:]:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 3
    assert len(fake.submissions) == 1
    assert len({image for image, _ in results}) == 1
    assert sorted(headers.get("idempotent-replayed", "") for _, headers in results) == ["", "true", "true"]


def test_sdk_timeout_retry_gets_the_first_result_without_a_second_call(fal_gateway: LiveGateway, fake: FakeFal) -> None:
    """The SDK gives up on a slow answer and retries with the same key: the work was not cancelled."""
    fake.latency = 1.5
    with openai.OpenAI(base_url=fal_gateway.api_url, api_key=TEST_KEY, max_retries=2, timeout=0.8) as sdk:
        raw = sdk.images.with_raw_response.generate(
            model="hidream-i1-full",
            prompt="a slow lighthouse",
            size="64x64",
            response_format="b64_json",
            extra_headers=_key(),
        )
    assert raw.retries_taken >= 1
    assert raw.headers["idempotent-replayed"] == "true"
    assert len(fake.submissions) == 1
    assert fake.cancelled == []


def test_server_errors_are_not_stored_so_a_retry_can_succeed(fal_gateway: LiveGateway, fake: FakeFal) -> None:
    fake.scenario = "503_always"
    key = _key()
    headers = {"Authorization": f"Bearer {TEST_KEY}", **key}
    url = f"{fal_gateway.api_url}/images/generations"
    failed = httpx.post(url, json=_generate_body(), headers=headers, timeout=30)
    assert failed.status_code >= 500
    fake.scenario = "ok"
    retried = httpx.post(url, json=_generate_body(), headers=headers, timeout=30)
    assert retried.status_code == 200, retried.text
    assert "idempotent-replayed" not in retried.headers
    assert len(fake.attempts) == 2 and len(fake.submissions) == 1


def test_client_errors_are_stored_and_replayed(fal_gateway: LiveGateway, fake: FakeFal) -> None:
    headers = {"Authorization": f"Bearer {TEST_KEY}", **_key()}
    url = f"{fal_gateway.api_url}/images/generations"
    body = _generate_body("[fake:content_policy]")
    first = httpx.post(url, json=body, headers=headers, timeout=30)
    again = httpx.post(url, json=body, headers=headers, timeout=30)
    assert first.status_code == again.status_code == 400
    assert first.json() == again.json()
    assert first.json()["error"]["code"] == "moderation_blocked"
    assert again.headers["idempotent-replayed"] == "true"
    assert len(fake.attempts) == 1


def test_json_bodies_match_whatever_their_key_order(fal_gateway: LiveGateway, fake: FakeFal) -> None:
    headers = {"Authorization": f"Bearer {TEST_KEY}", "Content-Type": "application/json", **_key()}
    url = f"{fal_gateway.api_url}/images/generations"
    one = b'{"model": "hidream-i1-full", "prompt": "p", "size": "64x64", "response_format": "b64_json"}'
    two = b'{"response_format":"b64_json","size":"64x64","prompt":"p","model":"hidream-i1-full"}'
    assert httpx.post(url, content=one, headers=headers, timeout=30).status_code == 200
    assert httpx.post(url, content=two, headers=headers, timeout=30).headers["idempotent-replayed"] == "true"
    assert len(fake.submissions) == 1


def test_a_malformed_key_is_400(fal_gateway: LiveGateway) -> None:
    response = httpx.post(
        f"{fal_gateway.api_url}/images/generations",
        json=_generate_body(),
        headers={"Authorization": f"Bearer {TEST_KEY}", "Idempotency-Key": "k" * 256},
        timeout=30,
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_idempotency_key"


def test_answers_with_links_are_kept_no_longer_than_the_links(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, image_ttl_seconds=1)
    with (
        LiveGateway(settings) as server,
        openai.OpenAI(base_url=server.api_url, api_key=TEST_KEY, max_retries=0) as sdk,
    ):
        key = _key()

        def url() -> tuple[str | None, str | None]:
            raw = sdk.images.with_raw_response.generate(
                model="sandbox-generate", prompt="x", size="16x16", response_format="url", extra_headers=key
            )
            data = raw.parse().data
            assert data is not None
            return data[0].url, raw.headers.get("idempotent-replayed")

        first, _ = url()
        assert url() == (first, "true")
        time.sleep(1.1)
        fresh, replayed = url()
        assert fresh != first and replayed is None


def test_leaving_does_not_free_the_concurrency_slot_while_the_work_runs_on(tmp_path: Path, fake: FakeFal) -> None:
    """Work that outlives its request (a key, a client that left) still counts against the key's cap."""
    fake.latency = 3.0
    settings = upstream_settings(tmp_path, fal=fake, fal_key=FAL_KEY, max_concurrent_per_key=1)
    url_headers = {"Authorization": f"Bearer {TEST_KEY}"}
    with LiveGateway(settings) as server:
        url = f"{server.api_url}/images/generations"
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(
                url, json=_generate_body(), headers={**url_headers, **_key()}, timeout=httpx.Timeout(10, read=1.0)
            )
        wait_until(lambda: len(fake.submissions) == 1, "the abandoned request reached fal")
        refused = httpx.post(url, json=_generate_body("another"), headers=url_headers, timeout=30)
        assert refused.status_code == 429, refused.text
        answers: list[httpx.Response] = []

        def served_later() -> bool:
            answers.append(httpx.post(url, json=_generate_body("later"), headers=url_headers, timeout=30))
            return answers[-1].status_code != 429

        wait_until(served_later, "the slot came back once the abandoned work ended", interval=0.2)
        assert answers[-1].status_code == 200
    assert fake.cancelled == []
    assert len(fake.submissions) == 2
