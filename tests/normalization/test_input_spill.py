"""A request's inputs leave memory once its upstream jobs have them (in process, through the Router).

The adapters here report their job accepted (``tracker.started``) as fal and Replicate do, then wait;
the tests look at the inputs' holders and the spill directory while they wait, after a failover and
once the run ended however it ended.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.errors import UpstreamError
from core.images import InputImage
from normalization.catalog import Model, ModelEntry
from normalization.emulation.fanout import FanOut
from normalization.engine import plan_request
from normalization.input_spill import InputSpill, sweep
from normalization.metering import NoObserver, Spend
from normalization.plan import Plan
from normalization.request import EditInputs, ImageRequest
from normalization.response import Attempt
from normalization.routing.breaker import Admission, MemoryBreakers
from normalization.routing.route import Route, plan_route
from normalization.routing.router import Router
from providers.base import GeneratedImage, ImageAdapter, ProviderResult, UpstreamCall, UpstreamHandle, UpstreamTracker
from tests.images import png_bytes
from tests.normalization.admission_events import RecordingAdmission

MODEL = Model.model_validate(
    {
        "id": "routed",
        "modes": ["edit"],
        "deployments": [
            {"provider": "first", "upstream": "a/x", "images": {"field": "image_url"}},
            {"provider": "second", "upstream": "b/x", "images": {"field": "image"}},
        ],
    }
)
SOURCE = png_bytes(64, 48)


class WaitingAdapter(ImageAdapter):
    """Reports each call accepted, then waits for ``release``; ``fail`` makes the job fail after it."""

    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.sent: list[bytes] = []
        self.waiting = asyncio.Event()
        self.release = asyncio.Event()

    async def run(self, call: UpstreamCall) -> ProviderResult:
        raise AssertionError("the router always hands a tracker on")

    async def run_tracked(self, call: UpstreamCall, tracker: UpstreamTracker) -> ProviderResult:
        self.sent.append(call.images[0].data)
        await tracker.started(call, UpstreamHandle(request_id=f"job-{call.index}", state={}))
        self.waiting.set()
        await self.release.wait()
        if self.fail:
            raise UpstreamError("the job failed upstream")
        return ProviderResult(images=(GeneratedImage(data=png_bytes(8, 8)),))


def _route(image: InputImage) -> Route:
    inputs = EditInputs(images=(image,))

    def plan_for(request: ImageRequest, deployment: ModelEntry) -> Plan:
        return plan_request(request, deployment, "edit", inputs)

    return plan_route(MODEL, "edit", ImageRequest(prompt="p", model="routed"), plan_for, forced=None)


def _router(directory: Path | None, first: ImageAdapter, second: ImageAdapter) -> Router:
    fanout = FanOut(4, asyncio.Semaphore(8))
    return Router({"first": first, "second": second}, MemoryBreakers(), fanout, NoObserver(), InputSpill(directory))


def _image() -> InputImage:
    return InputImage(data=SOURCE, media_type="image/png", width=64, height=48)


def test_a_waiting_jobs_input_is_on_disk_and_the_file_goes_with_the_request(tmp_path: Path) -> None:
    first, second = WaitingAdapter(), WaitingAdapter()
    image = _image()

    async def run() -> None:
        task = asyncio.create_task(_router(tmp_path, first, second).run(_route(image), spend=Spend(), attempts=[]))
        await first.waiting.wait()
        assert not image.held.in_memory and image.held.spills == 1
        [path] = tmp_path.iterdir()
        assert path.read_bytes() == SOURCE
        first.release.set()
        served = await task
        assert len(served.images()) == 1

    asyncio.run(run())
    assert first.sent == [SOURCE] and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("how", ["one deployment", "one forced"])
def test_an_input_no_failover_can_need_leaves_memory_without_a_file(tmp_path: Path, how: str) -> None:
    first, second = WaitingAdapter(), WaitingAdapter()
    image = _image()
    inputs = EditInputs(images=(image,))
    model = MODEL if how == "one forced" else MODEL.model_copy(update={"deployments": MODEL.deployments[:1]})

    def plan_for(request: ImageRequest, deployment: ModelEntry) -> Plan:
        return plan_request(request, deployment, "edit", inputs)

    forced = "first" if how == "one forced" else None
    route = plan_route(model, "edit", ImageRequest(prompt="p", model="routed"), plan_for, forced=forced)

    async def run() -> None:
        task = asyncio.create_task(_router(tmp_path, first, second).run(route, spend=Spend(), attempts=[]))
        await first.waiting.wait()
        assert not image.held.in_memory and image.held.spills == 1
        assert list(tmp_path.iterdir()) == []
        with pytest.raises(RuntimeError, match="forgotten"):
            _ = image.data
        first.release.set()
        assert len((await task).images()) == 1

    asyncio.run(run())
    assert first.sent == [SOURCE] and second.sent == [] and list(tmp_path.iterdir()) == []


@dataclass
class SlowAdmission(MemoryBreakers):
    """Admits each leg later than the one before, as a breaker state in Redis may (a round trip each)."""

    admitted: int = 0

    async def admit(self, provider: str) -> Admission:
        self.admitted += 1
        await asyncio.sleep(0.02 * self.admitted)
        return await super().admit(provider)


def test_a_leg_that_starts_after_another_was_accepted_still_sends_the_input(tmp_path: Path) -> None:
    first = WaitingAdapter()
    first.release.set()
    image = _image()
    inputs = EditInputs(images=(image,))
    model = MODEL.model_copy(update={"deployments": MODEL.deployments[:1]})

    def plan_for(request: ImageRequest, deployment: ModelEntry) -> Plan:
        return plan_request(request, deployment, "edit", inputs)

    route = plan_route(model, "edit", ImageRequest(prompt="p", model="routed", n=3), plan_for, forced=None)
    assert len(route.options[0].legs) == 3  # one image per call: three legs, each its own task
    fanout = FanOut(4, asyncio.Semaphore(8))
    router = Router({"first": first}, SlowAdmission(), fanout, NoObserver(), InputSpill(tmp_path))
    served = asyncio.run(router.run(route, spend=Spend(), attempts=[]))
    assert len(served.images()) == 3
    assert first.sent == [SOURCE] * 3  # the last leg, admitted 60 ms after the first, sent it too
    assert not image.held.in_memory and image.held.pins == 0 and list(tmp_path.iterdir()) == []


def test_a_failover_after_the_first_provider_accepted_sends_the_same_image(tmp_path: Path) -> None:
    first, second = WaitingAdapter(fail=True), WaitingAdapter()
    second.release.set()
    image = _image()
    attempts: list[Attempt] = []

    async def run() -> None:
        router = _router(tmp_path, first, second)
        task = asyncio.create_task(router.run(_route(image), spend=Spend(), attempts=attempts))
        await first.waiting.wait()
        assert not image.held.in_memory
        first.release.set()
        await task

    asyncio.run(run())
    assert first.sent == [SOURCE] and second.sent == [SOURCE]
    assert image.held.sync_reloads == 0  # read back off the loop before the second attempt
    assert [a.provider for a in attempts] == ["first", "second"]
    assert list(tmp_path.iterdir()) == []


def test_a_failed_or_cancelled_request_leaves_no_file(tmp_path: Path) -> None:
    first, second = WaitingAdapter(fail=True), WaitingAdapter(fail=True)
    second.release.set()

    async def run() -> None:
        router = _router(tmp_path, first, second)
        failing = asyncio.create_task(router.run(_route(_image()), spend=Spend(), attempts=[]))
        await first.waiting.wait()
        first.release.set()
        with pytest.raises(UpstreamError):
            await failing
        assert list(tmp_path.iterdir()) == []
        waiting = WaitingAdapter()
        cancelled = asyncio.create_task(
            _router(tmp_path, waiting, second).run(_route(_image()), spend=Spend(), attempts=[])
        )
        await waiting.waiting.wait()
        assert len(list(tmp_path.iterdir())) == 1
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled

    asyncio.run(run())
    assert list(tmp_path.iterdir()) == []


def test_a_disk_that_cannot_take_the_file_keeps_the_input_in_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = WaitingAdapter(), WaitingAdapter()
    first.release.set()
    image = _image()
    asyncio.run(_router(tmp_path / "absent", first, second).run(_route(image), spend=Spend(), attempts=[]))
    assert image.held.in_memory and image.held.spills == 0 and first.sent == [SOURCE]
    assert "stay in memory" in caplog.text


def test_without_a_spill_directory_inputs_stay_in_memory() -> None:
    first, second = WaitingAdapter(), WaitingAdapter()
    first.release.set()
    image = _image()
    asyncio.run(_router(None, first, second).run(_route(image), spend=Spend(), attempts=[]))
    assert image.held.in_memory and image.held.spills == 0


def test_start_up_removes_a_previous_process_s_files(tmp_path: Path) -> None:
    directory = tmp_path / "inputs"
    directory.mkdir()
    (directory / "input-stale.bin").write_bytes(b"x")
    (directory / "keep.txt").write_bytes(b"x")
    assert sweep(directory) == 1
    assert [p.name for p in directory.iterdir()] == ["keep.txt"]


def test_a_failover_reading_an_input_back_reserves_its_size_first(tmp_path: Path) -> None:
    # The first job accepted the input (its share of the intake budget went back, the input went to
    # its file) and then failed: the resend reads the input back into memory, so it reserves first.
    first, second = WaitingAdapter(fail=True), WaitingAdapter()
    first.release.set()
    second.release.set()
    image = _image()
    events: list[str] = []

    class Noting(RecordingAdmission):
        async def reserve_intake(self, more: int) -> int:
            self.events.append(f"reserve {more} (in memory: {image.held.in_memory})")
            return more

    async def run() -> None:
        router = _router(tmp_path, first, second)
        await router.run(_route(image), spend=Spend(), attempts=[], admission=Noting(events))

    asyncio.run(run())
    assert events == ["inputs sent", f"reserve {len(SOURCE)} (in memory: False)", "inputs sent"]
    assert second.sent == [SOURCE]
