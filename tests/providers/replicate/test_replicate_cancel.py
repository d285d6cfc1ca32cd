"""Cancellation reaches Replicate: a call given up on (client gone, deadline, a sibling failing) cancels
its prediction, even while the create itself is still waiting, and deletes its uploaded inputs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from core.errors import UpstreamError
from normalization.emulation.fanout import FanOut
from tests.fakes.fake_replicate import FakeReplicate
from tests.providers.replicate.conftest import AdapterMaker, kontext_edit


async def _until(condition: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not true after {timeout} s: {what}"
        await asyncio.sleep(0.01)


async def test_a_call_cancelled_while_polling_cancels_its_prediction(
    fake: FakeReplicate, make_adapter: AdapterMaker
) -> None:
    task = asyncio.create_task(make_adapter(wait_seconds=0).run(kontext_edit("[fake:never]")))
    await _until(lambda: fake.polls, "the adapter polls")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fake.cancels == [fake.attempts[0].prediction_id]


async def test_a_call_cancelled_during_a_waited_create_cancels_the_prediction_it_made(
    fake: FakeReplicate, make_adapter: AdapterMaker
) -> None:
    # The create holds for 1 s and only then names the prediction: the cancel must wait for that.
    task = asyncio.create_task(make_adapter(wait_seconds=1).run(kontext_edit("[fake:never]")))
    await _until(lambda: fake.creates, "the create reached Replicate")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fake.cancels == [fake.creates[0].prediction_id]
    assert fake.polls == []


async def test_a_cancelled_call_deletes_its_uploaded_inputs(fake: FakeReplicate, make_adapter: AdapterMaker) -> None:
    task = asyncio.create_task(
        make_adapter(wait_seconds=0, upload_threshold_bytes=10).run(kontext_edit("[fake:never]"))
    )
    await _until(lambda: fake.polls, "the adapter polls")
    assert len(fake.files) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fake.cancels == [fake.attempts[0].prediction_id] and fake.files == {}


async def test_a_sibling_call_failing_cancels_the_prediction_still_running(
    fake: FakeReplicate, make_adapter: AdapterMaker
) -> None:
    adapter = make_adapter(wait_seconds=0)
    calls = [kontext_edit("[fake:never]"), kontext_edit("[fake:failed]").model_copy(update={"index": 1})]
    with pytest.raises(UpstreamError) as caught:
        await FanOut(4, asyncio.Semaphore(4)).run(adapter, calls)
    assert caught.value.code == "upstream_job_failed"
    never = next(a.prediction_id for a in fake.attempts if a.scenario == "never")
    assert fake.cancels == [never]


async def test_a_finished_prediction_is_not_cancelled(fake: FakeReplicate, make_adapter: AdapterMaker) -> None:
    await make_adapter(wait_seconds=0).run(kontext_edit())
    assert fake.cancels == []
