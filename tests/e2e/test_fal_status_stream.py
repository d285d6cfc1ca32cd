"""Issue 17 item 3 end to end: the openai SDK -> a live pixelgate -> the fake fal's status stream.

A job's result arrives through one status stream and no polls; a stream that breaks falls back to
polling the same job; a client that leaves gets its fal job cancelled and the stream closed. The
restart case (a job followed again after SIGTERM) is ``test_async_restart.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from tests.conftest import TEST_KEY, upstream_settings
from tests.e2e.conftest import FAL_KEY
from tests.fakes.fake_fal import FakeFal
from tests.live import LiveGateway
from tests.polling import wait_until


@pytest.fixture(scope="module")
def fal_gateway(fal_server: FakeFal, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    settings = upstream_settings(tmp_path_factory.mktemp("fal-stream-data"), fal=fal_server, fal_key=FAL_KEY)
    with LiveGateway(settings) as live:
        yield live


def _generate(sdk: openai.OpenAI, prompt: str) -> openai.types.ImagesResponse:
    return sdk.images.generate(model="hidream-i1-full", prompt=prompt, size="128x128", response_format="b64_json")


def _request_id(fake: FakeFal) -> str:
    [submission] = fake.submissions
    assert submission.request_id is not None
    return submission.request_id


def test_a_result_arrives_through_one_status_stream_and_no_polls(sdk: openai.OpenAI, fake: FakeFal) -> None:
    result = _generate(sdk, "a lighthouse [fake:slow:0.5]")
    assert result.data is not None and len(result.data) == 1 and result.data[0].b64_json
    assert (fake.status_streams, fake.status_polls) == (1, 0)
    [record] = fake.job_records()
    assert (record["status_streams"], record["status_polls"], record["results"]) == (1, 0, 1)


@pytest.mark.parametrize("how", ["stream_drop", "405"])
def test_a_broken_stream_falls_back_to_polling(sdk: openai.OpenAI, fake: FakeFal, how: str) -> None:
    if how == "405":
        fake.status_stream = False
    prompt = "a harbour " + ("[fake:slow:60]" if how == "405" else f"[fake:{how}:60]")
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(_generate, sdk, prompt)
        wait_until(lambda: fake.status_polls >= 1, "pixelgate polls the job once its stream failed", timeout=20)
        fake.finish(_request_id(fake))
        result = answer.result(timeout=30)
    assert result.data is not None and len(result.data) == 1
    assert fake.status_streams == 1 and len(fake.attempts) == 1  # the same job, polled


def test_a_client_that_leaves_gets_its_job_cancelled_and_its_stream_closed(
    fal_gateway: LiveGateway, fake: FakeFal
) -> None:
    with (
        openai.OpenAI(base_url=fal_gateway.api_url, api_key=TEST_KEY, max_retries=0, timeout=3) as impatient,
        pytest.raises(openai.APITimeoutError),
    ):
        _generate(impatient, "a lighthouse [fake:never]")  # the SDK gives up after 3 s
    wait_until(lambda: bool(fake.cancelled), "pixelgate cancelled the fal job of the client that left")
    assert fake.cancelled == [_request_id(fake)]
    wait_until(lambda: fake.open_streams == 0, "the status stream is closed")
    assert (fake.status_streams, fake.status_polls) == (1, 0)


def test_the_fake_serves_the_stream_as_server_sent_events(fake: FakeFal) -> None:
    """The wire shape the gateway reads (a guard on the fake itself, read with plain httpx)."""
    headers = {"Authorization": f"Key {FAL_KEY}"}
    submitted = httpx.post(f"{fake.base_url}/fal-ai/hidream-i1-full", json={"prompt": "x"}, headers=headers).json()
    with httpx.stream("GET", submitted["status_url"] + "/stream", headers=headers, timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines and all(line.startswith("data: ") for line in lines)
    assert '"status": "COMPLETED"' in lines[-1]
