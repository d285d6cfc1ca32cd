"""The fal adapter following a job through fal's status stream (fal reference, section 2.2).

One ``GET .../status/stream`` per job instead of polls; a stream that is refused, cut or ends before
COMPLETED falls back to polling the same job (no second submit); cancellation still cancels the fal
job and closes the stream; a detached job is followed again through a new stream. The stream's exact
wire shape is not confirmed by the reference (see :mod:`providers.fal.status_stream`); the fake serves
fal-js's reading of it (:mod:`tests.fakes.fal_stream`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from providers.fal.queue import FalQueue
from providers.fal.retry import FAL_RETRY
from providers.fal.status_stream import event_data, follow_status, stream_url
from providers.fal.transport import FalHttp
from tests.fakes.fake_fal import FakeFal
from tests.providers.conftest import FAL_TEST_KEY, AdapterMaker, generate_call
from tests.providers.test_fal_resume import RecordingTracker


async def _until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Wait (bounded) until ``condition()`` holds; fail with ``what`` otherwise."""
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.01)
    except TimeoutError:
        pytest.fail(f"not true after {timeout} s: {what}")


def _only_request_id(fake: FakeFal) -> str:
    [submission] = fake.submissions
    assert submission.request_id is not None
    return submission.request_id


async def test_a_job_is_followed_through_one_stream_and_never_polled(
    fake_fal: FakeFal, make_adapter: AdapterMaker
) -> None:
    result = await make_adapter().run(generate_call("[fake:slow:0.4]"))
    assert len(result.images) == 1 and result.upstream_request_id == _only_request_id(fake_fal)
    assert (fake_fal.status_streams, fake_fal.status_polls) == (1, 0)
    [record] = fake_fal.job_records()
    assert (record["status_streams"], record["status_polls"], record["results"]) == (1, 0, 1)


@pytest.mark.parametrize("keepalive", [None, 0.02], ids=["events only", "with keep-alive comments"])
async def test_the_stream_carries_each_status_change_until_completed(
    fake_fal: FakeFal, http_client: httpx.AsyncClient, keepalive: float | None
) -> None:
    fake_fal.stream_keepalive_seconds = keepalive
    http = FalHttp(client=http_client, api_key=FAL_TEST_KEY, timeout=httpx.Timeout(10.0), retry=FAL_RETRY)
    queue = FalQueue(http=http, base_url=fake_fal.base_url)
    handle = await queue.submit("fal-ai/hidream-i1-full", {"prompt": "[fake:slow:60]"})  # queued for 30 s
    seen: list[str] = []
    async for status in follow_status(http, handle.status_url):
        seen.append(status.status)
        if len(seen) == 1:
            fake_fal.finish(handle.request_id)  # the next change: COMPLETED, sent at once
    assert seen == ["IN_QUEUE", "COMPLETED"]  # the current status first, then each change; ends there
    assert (fake_fal.status_streams, fake_fal.status_polls) == (1, 0)


@pytest.mark.parametrize("how", ["stream_drop", "stream_end", "stream_404", "405"])
async def test_a_broken_stream_falls_back_to_polling_the_same_job(
    fake_fal: FakeFal, make_adapter: AdapterMaker, how: str
) -> None:
    if how == "405":
        fake_fal.status_stream = False  # an upstream (or a proxy) without the stream endpoint
    prompt = "[fake:slow:60]" if how == "405" else f"[fake:{how}:60]"
    task = asyncio.create_task(make_adapter().run(generate_call(prompt)))
    await _until(lambda: fake_fal.status_polls >= 1, "the adapter polls once the stream failed")
    fake_fal.finish(_only_request_id(fake_fal))
    result = await task
    assert len(result.images) == 1
    assert fake_fal.status_streams == 1 and len(fake_fal.attempts) == 1  # no second stream, no second submit


async def test_status_stream_false_only_polls(fake_fal: FakeFal, make_adapter: AdapterMaker) -> None:
    await make_adapter(status_stream=False).run(generate_call("[fake:slow:0.2]"))
    assert fake_fal.status_streams == 0 and fake_fal.status_polls >= 1


async def test_a_cancelled_call_cancels_the_job_and_closes_its_stream(
    fake_fal: FakeFal, make_adapter: AdapterMaker
) -> None:
    task = asyncio.create_task(make_adapter().run(generate_call("[fake:never]")))
    await _until(lambda: fake_fal.open_streams == 1, "the adapter follows the job's stream")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fake_fal.cancelled == [_only_request_id(fake_fal)]
    await _until(lambda: fake_fal.open_streams == 0, "the stream's connection is closed")
    assert fake_fal.status_polls == 0


async def test_a_detached_job_is_followed_again_through_a_new_stream(
    fake_fal: FakeFal, make_adapter: AdapterMaker
) -> None:
    adapter = make_adapter()
    first = RecordingTracker()
    first.detaching = True
    task = asyncio.create_task(adapter.run_tracked(generate_call("[fake:never]"), first))
    await _until(lambda: fake_fal.open_streams == 1, "the first run follows the job's stream")
    task.cancel()  # the process stops: the job stays on fal
    await asyncio.gather(task, return_exceptions=True)
    assert fake_fal.cancelled == []

    [(_, handle)] = first.reported
    resumed = asyncio.create_task(adapter.run_tracked(generate_call("[fake:never]"), RecordingTracker({0: handle})))
    await _until(lambda: fake_fal.status_streams == 2 and fake_fal.open_streams == 1, "the resumed run's stream")
    fake_fal.finish(handle.request_id)
    result = await resumed
    assert result.upstream_request_id == handle.request_id and len(fake_fal.submissions) == 1
    assert fake_fal.status_polls == 0


def test_the_stream_url_is_the_status_url_plus_stream() -> None:
    base = "https://queue.fal.run/fal-ai/flux-pro/requests/r1/status"
    assert stream_url(base) == base + "/stream?logs=0"
    assert stream_url(base + "?logs=1") == base + "/stream?logs=0"


async def _lines(*lines: str) -> AsyncIterator[str]:
    for line in lines:
        yield line


async def test_event_data_joins_data_lines_and_skips_comments_and_other_fields() -> None:
    lines = _lines(
        ": keep-alive",
        "",
        "event: status",
        "id: 7",
        'data: {"status":',
        'data:  "IN_QUEUE"}',
        "",
        "retry: 1000",
        'data:{"status": "COMPLETED"}',  # no blank line after it: the stream closed at once
    )
    assert [data async for data in event_data(lines)] == [
        '{"status":\n "IN_QUEUE"}',
        '{"status": "COMPLETED"}',
    ]
