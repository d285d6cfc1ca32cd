"""The fal adapter's resume seam: the queue job is reported once fal accepted it, a recorded job is
followed instead of submitted again, and a detaching cancellation leaves the fal job running."""

from __future__ import annotations

import asyncio

from providers.base import UpstreamCall, UpstreamHandle, UpstreamTracker
from tests.fakes.fake_fal import FakeFal
from tests.providers.conftest import AdapterMaker, edit_call, generate_call


async def _reported(tracker: RecordingTracker) -> None:
    """Wait (bounded) until the adapter has reported its queue job."""
    async with asyncio.timeout(10):
        while not tracker.reported:
            await asyncio.sleep(0.01)


class RecordingTracker(UpstreamTracker):
    def __init__(self, recorded: dict[int, UpstreamHandle] | None = None) -> None:
        self.recorded = dict(recorded or {})
        self.reported: list[tuple[int, UpstreamHandle]] = []

    def previous(self, call: UpstreamCall) -> UpstreamHandle | None:
        return self.recorded.get(call.index)

    async def started(self, call: UpstreamCall, handle: UpstreamHandle) -> None:
        self.reported.append((call.index, handle))


async def test_the_queue_job_is_reported_with_what_follows_it(fake_fal: FakeFal, make_adapter: AdapterMaker) -> None:
    tracker = RecordingTracker()
    result = await make_adapter().run_tracked(edit_call(), tracker)
    [submission] = fake_fal.submissions
    [(index, handle)] = tracker.reported
    assert index == 0 and handle.request_id == submission.request_id == result.upstream_request_id
    assert set(handle.state) == {"status_url", "response_url", "cancel_url"}
    assert all(url.startswith(fake_fal.base_url) for url in handle.state.values())
    assert "key" not in str(handle.model_dump()).lower()  # the URLs, never the credential


async def test_a_recorded_job_is_followed_without_a_second_submit(
    fake_fal: FakeFal, make_adapter: AdapterMaker
) -> None:
    fake_fal.latency = 0.6
    adapter = make_adapter()
    first = RecordingTracker()
    first.detaching = True
    task = asyncio.create_task(adapter.run_tracked(generate_call(), first))
    await _reported(first)
    task.cancel()  # the process stops: the job stays on fal
    await asyncio.gather(task, return_exceptions=True)
    assert fake_fal.cancelled == []

    [(_, handle)] = first.reported
    result = await adapter.run_tracked(generate_call(), RecordingTracker({0: handle}))
    assert len(fake_fal.submissions) == 1  # followed, not submitted again
    assert result.upstream_request_id == handle.request_id and len(result.images) == 1


async def test_a_cancellation_that_is_not_a_detach_cancels_the_fal_job(
    fake_fal: FakeFal, make_adapter: AdapterMaker
) -> None:
    fake_fal.latency = 5
    tracker = RecordingTracker()
    task = asyncio.create_task(make_adapter().run_tracked(generate_call(), tracker))
    await _reported(tracker)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert fake_fal.cancelled == [tracker.reported[0][1].request_id]


async def test_detaching_during_the_submit_records_the_job_the_submit_made(
    fake_fal: FakeFal, make_adapter: AdapterMaker
) -> None:
    tracker = RecordingTracker()
    tracker.detaching = True
    task = asyncio.create_task(make_adapter().run_tracked(generate_call("[fake:slow_submit:0.5]"), tracker))
    await asyncio.sleep(0.2)  # the submit is on its way
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    [submission] = fake_fal.submissions
    assert [handle.request_id for _, handle in tracker.reported] == [submission.request_id]
    assert fake_fal.cancelled == []


async def test_a_recorded_job_on_another_host_is_not_followed(fake_fal: FakeFal, make_adapter: AdapterMaker) -> None:
    elsewhere = "https://attacker.example/fal-ai/x/requests/1"
    state = {"status_url": elsewhere + "/status", "response_url": elsewhere, "cancel_url": elsewhere + "/cancel"}
    result = await make_adapter().run_tracked(
        generate_call(), RecordingTracker({0: UpstreamHandle(request_id="1", state=state)})
    )
    [submission] = fake_fal.submissions  # submitted anew: the recorded URLs would carry the key elsewhere
    assert result.upstream_request_id == submission.request_id
