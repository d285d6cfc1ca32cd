"""The router in process, with adapters that answer as scripted: the order of tries, the cooling
period's exceptions, and a trial handed back when its request is cancelled."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from core.errors import GatewayError, ProviderNotConfiguredError, UpstreamError
from normalization.catalog import Model, ModelEntry
from normalization.emulation.fanout import FanOut
from normalization.engine import plan_request
from normalization.metering import NoObserver, Spend
from normalization.plan import Plan
from normalization.request import ImageRequest
from normalization.response import Attempt
from normalization.routing.breaker import BreakerPolicy, MemoryBreakers
from normalization.routing.route import Route, plan_route
from normalization.routing.router import Router
from providers.base import GeneratedImage, ImageAdapter, ProviderResult, UpstreamCall, UpstreamHandle, UpstreamTracker
from tests.images import png_bytes
from tests.normalization.admission_events import RecordingAdmission

MODEL = Model.model_validate(
    {
        "id": "m",
        "modes": ["generate"],
        "deployments": [{"provider": "a", "upstream": "ua"}, {"provider": "b", "upstream": "ub"}],
    }
)
IMAGE = GeneratedImage(data=png_bytes(8, 8))


class Scripted(ImageAdapter):
    """Answers each call with ``answer()``: an error to raise, None for an image, or an Event to wait on."""

    def __init__(self, answer: Callable[[], GatewayError | asyncio.Event | None]) -> None:
        self.answer = answer
        self.calls = 0

    async def run(self, call: UpstreamCall) -> ProviderResult:
        self.calls += 1
        outcome = self.answer()
        if isinstance(outcome, asyncio.Event):
            await outcome.wait()
        elif outcome is not None:
            raise outcome
        return ProviderResult(images=(IMAGE,) * call.expected_images)


def route(n: int = 1, forced: str | None = None) -> Route:
    def plan_for(request: ImageRequest, deployment: ModelEntry) -> Plan:
        return plan_request(request, deployment, "generate", None)

    return plan_route(MODEL, "generate", ImageRequest(prompt="p", n=n), plan_for, forced=forced)


def router(adapters: dict[str, ImageAdapter], breakers: MemoryBreakers) -> Router:
    return Router(adapters, breakers, FanOut(10, asyncio.Semaphore(10)), NoObserver())


def run(r: Router, the_route: Route) -> tuple[list[str], list[Attempt]]:
    attempts: list[Attempt] = []

    async def go() -> list[str]:
        served = await r.run(the_route, spend=Spend(), attempts=attempts)
        return [the_route.options[leg.option].deployment.provider for leg in served.legs]

    return asyncio.run(go()), attempts


def test_a_provider_that_is_cooling_is_skipped_while_another_can_serve_and_tried_when_none_can() -> None:
    breakers = MemoryBreakers(BreakerPolicy(failures=1, cooldown_seconds=60))
    a, b = Scripted(lambda: UpstreamError("down")), Scripted(lambda: None)
    served, attempts = run(router({"a": a, "b": b}, breakers), route())
    assert served == ["b"] and [(x.provider, x.status) for x in attempts] == [("a", 502), ("b", 200)]
    served, attempts = run(router({"a": a, "b": b}, breakers), route())
    assert served == ["b"] and a.calls == 1  # a cools: not called
    # b fails too: a cooling provider is better than none.
    b.answer = lambda: UpstreamError("also down")
    with pytest.raises(UpstreamError) as failed:
        run(router({"a": a, "b": b}, breakers), route())
    assert a.calls == 2 and "a: down" in failed.value.message and "b: also down" in failed.value.message


def test_a_provider_without_credentials_is_passed_over_and_named_when_none_is_left() -> None:
    breakers = MemoryBreakers()
    served, attempts = run(router({"b": Scripted(lambda: None)}, breakers), route())
    assert served == ["b"] and [x.provider for x in attempts] == ["b"]
    with pytest.raises(ProviderNotConfiguredError):
        run(router({}, breakers), route())


def test_each_leg_fails_over_alone() -> None:
    answers = iter([UpstreamError("one failed"), None, None])
    a, b = Scripted(lambda: next(answers)), Scripted(lambda: None)
    served, attempts = run(router({"a": a, "b": b}, MemoryBreakers()), route(n=3))
    assert sorted(served) == ["a", "a", "b"] and b.calls == 1
    assert sorted((x.provider, x.status) for x in attempts) == [("a", 200), ("a", 200), ("a", 502), ("b", 200)]


def test_a_cancelled_trial_is_handed_back() -> None:
    now = [0.0]
    breakers = MemoryBreakers(BreakerPolicy(failures=1, cooldown_seconds=5, trial_seconds=300), clock=lambda: now[0])
    hang = asyncio.Event()

    async def go() -> None:
        await breakers.record("a", failed=True)
        now[0] = 10  # cooled: the next request is a's trial
        a = Scripted(lambda: hang)
        r = router({"a": a, "b": Scripted(lambda: None)}, breakers)
        task = asyncio.create_task(r.run(route(), spend=Spend(), attempts=[]))
        while a.calls == 0:  # the trial's call is running
            await asyncio.sleep(0)
        assert await breakers.admit("a") == "skip"  # the trial is held
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await breakers.admit("a") == "trial"  # handed back, not held for 300 s

    asyncio.run(go())


class Reporting(ImageAdapter):
    """A queue-like upstream: the inputs are submitted, the job accepted, then waited for."""

    reports_acceptance = True

    def __init__(self, events: list[str]) -> None:
        self.events = events

    async def run(self, call: UpstreamCall) -> ProviderResult:
        raise AssertionError("a reporting adapter is run tracked")

    async def run_tracked(self, call: UpstreamCall, tracker: UpstreamTracker) -> ProviderResult:
        self.events.append("submitted")
        await tracker.started(call, UpstreamHandle(request_id="job-1"))
        self.events.append("waiting for the job")
        return ProviderResult(images=(IMAGE,) * call.expected_images)


def _events_of(adapter: ImageAdapter, events: list[str]) -> list[str]:
    r = router({"a": adapter}, MemoryBreakers(BreakerPolicy(failures=5, cooldown_seconds=60)))

    async def go() -> None:
        await r.run(route(forced="a"), spend=Spend(), attempts=[], admission=RecordingAdmission(events))

    asyncio.run(go())
    return events


def test_inputs_count_as_sent_once_a_queue_accepted_the_job() -> None:
    events: list[str] = []
    assert _events_of(Reporting(events), events) == ["submitted", "inputs sent", "waiting for the job"]


def test_inputs_count_as_sent_as_a_one_call_upstream_starts() -> None:
    events: list[str] = []

    def answer() -> None:
        events.append("called")

    assert _events_of(Scripted(answer), events) == ["inputs sent", "called"]


class Queue(ImageAdapter):
    """A queue-like upstream whose calls are accepted when ``accept[i]`` is set (at once with
    ``accepted``), then, with ``fetch``, finish and have their results fetched, then fail or answer."""

    reports_acceptance = True

    def __init__(
        self,
        events: list[str],
        calls: int,
        fail_after: GatewayError | None = None,
        *,
        accepted: bool = False,
        fetch: bool = False,
    ) -> None:
        self.events = events
        self.accept = [asyncio.Event() for _ in range(calls)]
        if accepted:
            for event in self.accept:
                event.set()
        self.fail_after = fail_after
        self.fetch = fetch
        self.calls = 0

    async def run(self, call: UpstreamCall) -> ProviderResult:
        raise AssertionError("a reporting adapter is run tracked")

    async def run_tracked(self, call: UpstreamCall, tracker: UpstreamTracker) -> ProviderResult:
        index, self.calls = self.calls, self.calls + 1
        await self.accept[index].wait()
        self.events.append(f"accepted {index}")
        await tracker.started(call, UpstreamHandle(request_id=f"job-{index}"))
        if self.fetch:
            await tracker.finished(call)
            self.events.append(f"results {index} fetched")
        if self.fail_after is not None:
            raise self.fail_after
        return ProviderResult(images=(IMAGE,) * call.expected_images)


async def _settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


def test_inputs_count_as_sent_once_every_leg_s_job_was_accepted() -> None:
    # n=2 on an upstream without n: two jobs, each holding its own copy of the inputs until accepted.
    events: list[str] = []
    queue = Queue(events, calls=2)

    async def go() -> None:
        r = router({"a": queue}, MemoryBreakers())
        admission = RecordingAdmission(events)
        task = asyncio.create_task(r.run(route(n=2, forced="a"), spend=Spend(), attempts=[], admission=admission))
        queue.accept[0].set()
        await _settle()
        assert events == ["accepted 0"]  # the other job's inputs are still being sent
        queue.accept[1].set()
        await asyncio.wait_for(task, 5)

    asyncio.run(go())
    assert events == ["accepted 0", "accepted 1", "inputs sent"]


def _admission_events(adapters: dict[str, ImageAdapter], the_route: Route, events: list[str]) -> list[str]:
    """Run ``the_route`` with a request's admission that records into ``events``; returns them."""

    async def go() -> None:
        r = router(adapters, MemoryBreakers())
        await r.run(the_route, spend=Spend(), attempts=[], admission=RecordingAdmission(events))

    asyncio.run(go())
    return events


def _failover_events(a: ImageAdapter, events: list[str]) -> list[str]:
    return _admission_events({"a": a, "b": Scripted(lambda: None)}, route(), events)


def test_a_failover_after_the_inputs_were_sent_takes_a_share_again() -> None:
    # a accepted the job (the share went back), then the job failed: b gets the inputs again.
    events: list[str] = []
    queue = Queue(events, calls=1, fail_after=UpstreamError("the job failed"))
    queue.accept[0].set()
    assert _failover_events(queue, events) == ["accepted 0", "inputs sent", "reserve 0", "inputs sent"]


def test_a_failover_before_any_job_was_accepted_keeps_the_share_it_has() -> None:
    events: list[str] = []

    class Refusing(Queue):
        async def run_tracked(self, call: UpstreamCall, tracker: UpstreamTracker) -> ProviderResult:
            raise UpstreamError("submit refused")

    assert _failover_events(Refusing(events, calls=1), events) == ["inputs sent"]  # b's start only


def test_a_finished_job_s_results_are_fetched_once_the_caller_made_room() -> None:
    events: list[str] = []
    queue = Queue(events, calls=1, accepted=True, fetch=True)
    assert _admission_events({"a": queue}, route(forced="a"), events) == [
        "accepted 0",
        "inputs sent",
        "room made",
        "results 0 fetched",
    ]


def test_only_the_last_job_to_finish_waits_for_room() -> None:
    # n=2: two jobs. Making room (the request's admission slot taken back) for the first to finish
    # would hold it while the second still runs: the first fetches at once, the second after room.
    events: list[str] = []
    second_done = asyncio.Event()

    class Finishing(Queue):
        async def run_tracked(self, call: UpstreamCall, tracker: UpstreamTracker) -> ProviderResult:
            index, self.calls = self.calls, self.calls + 1
            await tracker.started(call, UpstreamHandle(request_id=f"job-{index}"))
            if index == 1:
                await second_done.wait()
            await tracker.finished(call)
            events.append(f"results {index} fetched")
            if index == 0:
                second_done.set()
            return ProviderResult(images=(IMAGE,) * call.expected_images)

    _admission_events({"a": Finishing(events, calls=2)}, route(n=2, forced="a"), events)
    assert [event for event in events if event != "inputs sent"] == [
        "results 0 fetched",
        "room made",
        "results 1 fetched",
    ]


def test_a_job_that_failed_over_and_ended_leaves_the_last_one_to_make_room() -> None:
    # Leg 0's job fails on a and is served by b (which answers in one call); leg 1's job, finishing
    # after that, is the last one waiting: it makes room first.
    events: list[str] = []
    b = Scripted(lambda: None)

    class OneFails(Queue):
        async def run_tracked(self, call: UpstreamCall, tracker: UpstreamTracker) -> ProviderResult:
            index, self.calls = self.calls, self.calls + 1
            if index == 0:
                raise UpstreamError("the job failed")
            while b.calls == 0:  # leg 0 failed over
                await asyncio.sleep(0)
            await _settle()  # and b's call ended
            await tracker.finished(call)
            events.append(f"results {index} fetched")
            return ProviderResult(images=(IMAGE,) * call.expected_images)

    assert _admission_events({"a": OneFails(events, calls=2), "b": b}, route(n=2), events) == [
        "room made",
        "results 1 fetched",
    ]


def test_a_failover_after_the_results_were_fetched_hands_the_slot_on_again() -> None:
    # a's job finished (the slot taken back for its results) but its image was bad: b's job runs
    # without the slot, which the end of the run takes back.
    events: list[str] = []
    bad = UpstreamError("a truncated image", code="upstream_bad_response")
    a = Queue(events, calls=1, fail_after=bad, accepted=True, fetch=True)
    b = Scripted(lambda: events.append("b called"))
    assert _admission_events({"a": a, "b": b}, route(), events) == [
        "accepted 0",
        "inputs sent",
        "room made",
        "results 0 fetched",
        "reserve 0",
        "slot handed on",
        "inputs sent",
        "b called",
    ]
