"""A waiting edit's input leaves memory: the openai SDK -> a live pixelgate -> fake fal (and Replicate).

An edit of a ~1 MiB image whose fal job waits: while it waits, no allocation of the gateway's code
holds its bytes (tracemalloc, the gateway running in this process). A model with one deployment
cannot fail over, so its input is dropped and no file is written; a routed model's input is in one
file under ``<data_dir>/inputs`` while it waits, and a job that fails after fal accepted it fails
over to Replicate with the same image, read back from that file. Each edit then succeeds and the
file is gone; a failed and a cancelled request leave no file either.
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest
from PIL import Image

from app.forms import ParsedForm
from tests.conftest import TEST_KEY
from tests.fakes.fake_fal import FakeFal
from tests.fakes.fake_replicate import FakeReplicate
from tests.fakes.replicate_predictions import data_uri_input
from tests.live import LiveGateway, settings_from_yaml
from tests.polling import wait_until

FAL_KEY = "fal-memory-key"
TOKEN = "r8_memory_token_0123456789abcdef"
FAL_EDIT = "fal-ai/hidream-e1-1"
QWEN = "qwen/qwen-image-edit"
REPO = Path(__file__).resolve().parents[2]
GATEWAY_CODE = [f"{REPO}/{package}/*" for package in ("app", "core", "normalization", "providers")]
SERVER_CODE = [*GATEWAY_CODE, "*/uvicorn/*"]
"""Where a request's body is allocated: uvicorn's receive, and the protocol feeding its parser."""


def config(fal: FakeFal, replicate: FakeReplicate) -> str:
    return f"""
api_keys: [{TEST_KEY}]
providers:
  fal: {{api_key: {FAL_KEY}, base_url: "{fal.base_url}", storage_url: "{fal.storage_url}", max_retries: 1}}
  replicate: {{api_key: {TOKEN}, base_url: "{replicate.base_url}", wait_seconds: 1, max_retries: 1,
              upload_threshold_bytes: 4194304}}
models:
  - id: waiting-edit
    modes: [edit]
    deployments:
      - {{provider: fal, upstream: {FAL_EDIT}, images: {{field: image_url, kind: single}}}}
  - id: failover-edit
    modes: [edit]
    deployments:
      - {{provider: fal, upstream: {FAL_EDIT}, images: {{field: image_url, kind: single}}}}
      - {{provider: replicate, upstream: {QWEN}}}
"""


def noise_png(side: int = 600) -> bytes:
    """A PNG of random pixels: about ``side * side * 3`` bytes (600: ~1 MiB), as deflate cannot shrink it."""
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(out, "PNG", compress_level=1)
    return out.getvalue()


SOURCE = noise_png()


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeFal, FakeReplicate]]:
    with FakeFal(api_key=FAL_KEY, latency=0.05) as fal, FakeReplicate(token=TOKEN, latency=0.05) as replicate:
        yield fal, replicate


@pytest.fixture(scope="module")
def live(fakes: tuple[FakeFal, FakeReplicate], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    settings = settings_from_yaml(tmp_path_factory.mktemp("edit-memory"), config(*fakes))
    with LiveGateway(settings) as gateway:
        yield gateway


@pytest.fixture
def fal(fakes: tuple[FakeFal, FakeReplicate]) -> FakeFal:
    fakes[0].reset()
    return fakes[0]


@pytest.fixture
def replicate(fakes: tuple[FakeFal, FakeReplicate]) -> FakeReplicate:
    fakes[1].reset()
    fakes[1].max_output_side = 96
    return fakes[1]


@pytest.fixture
def spill_dir(live: LiveGateway) -> Path:
    [own] = (live.settings.data_dir / "inputs").iterdir()  # this process's folder (replicas may share the dir)
    return own


@pytest.fixture
def sdk(live: LiveGateway, fal: FakeFal, replicate: FakeReplicate) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=live.api_url, api_key=TEST_KEY, max_retries=0, timeout=60) as client:
        yield client


def _files(directory: Path) -> list[Path]:
    return list(directory.glob("input-*.bin"))


def _fal_input(fal: FakeFal) -> bytes | None:
    [submission] = [s for s in fal.submissions if s.request_id is not None]
    url = submission.payload["image_url"]
    assert isinstance(url, str)
    if url.startswith("data:"):
        return base64.b64decode(url.partition(",")[2])
    return fal.storage.bytes_at(url)


def _allocation_sizes(patterns: list[str]) -> list[int]:
    """The sizes of the live blocks tracemalloc traced to files matching ``patterns``."""
    snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, p) for p in patterns])
    return [trace.size for trace in snapshot.traces]


def _largest_gateway_allocation() -> int:
    return max(_allocation_sizes(GATEWAY_CODE), default=0)


def _allocated_in(patterns: list[str]) -> int:
    return sum(_allocation_sizes(patterns))


def _accepted(fal: FakeFal) -> str | None:
    return next((s.request_id for s in fal.submissions if s.request_id is not None), None)


def _edit_while_its_job_waits(
    sdk: openai.OpenAI, fal: FakeFal, spill_dir: Path, model: str, while_waiting: Callable[[], None]
) -> None:
    """An edit of SOURCE on ``model`` whose fal job waits: once fal has it and the input has left the
    gateway's memory, ``while_waiting`` looks; then the job finishes, the edit succeeds and no file
    is left."""
    tracemalloc.start()
    try:
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(
                sdk.images.edit,
                model=model,
                image=("in.png", SOURCE, "image/png"),
                prompt="[fake:never] make it blue",
                response_format="b64_json",
            )
            wait_until(lambda: _accepted(fal) is not None, what="the job at fal", timeout=30)
            # The multipart part, the input, the data URI: none of them stays alive while the job
            # waits (they go a moment after fal answered the submit).
            wait_until(
                lambda: _largest_gateway_allocation() < len(SOURCE) // 2, what="the input out of memory", timeout=10
            )
            assert _fal_input(fal) == SOURCE
            while_waiting()
            request_id = _accepted(fal)
            assert request_id is not None
            fal.finish(request_id)
            result = answer.result(timeout=60)
    finally:
        tracemalloc.stop()
    assert result.data and result.data[0].b64_json
    assert _files(spill_dir) == []


def test_a_waiting_edits_input_leaves_memory_without_a_file(sdk: openai.OpenAI, fal: FakeFal, spill_dir: Path) -> None:
    def no_file() -> None:
        assert _files(spill_dir) == []  # one deployment: nothing could send it again

    _edit_while_its_job_waits(sdk, fal, spill_dir, "waiting-edit", no_file)


def test_a_waiting_routed_edits_input_is_on_disk_not_in_memory(
    sdk: openai.OpenAI, fal: FakeFal, spill_dir: Path
) -> None:
    def on_disk() -> None:
        # mkstemp makes the file before its bytes are written: wait for the whole of them.
        wait_until(
            lambda: [path.read_bytes() for path in _files(spill_dir)] == [SOURCE],
            what="the input spilled to disk",
            timeout=30,
        )

    _edit_while_its_job_waits(sdk, fal, spill_dir, "failover-edit", on_disk)


def test_a_failover_after_fal_accepted_and_failed_sends_the_same_image(
    sdk: openai.OpenAI, fal: FakeFal, replicate: FakeReplicate, spill_dir: Path
) -> None:
    fal.endpoint_scenarios[FAL_EDIT] = "completed_error"
    raw = sdk.images.with_raw_response.edit(
        model="failover-edit", image=("in.png", SOURCE, "image/png"), prompt="make it blue", response_format="b64_json"
    )
    assert raw.headers["x-pixelgate-provider"] == "replicate"
    assert _fal_input(fal) == SOURCE
    [create] = replicate.creates
    url = create.input["image"]
    assert isinstance(url, str) and url.startswith("data:")  # inline (the threshold above), so it can be read here
    assert data_uri_input(url) == SOURCE
    assert _files(spill_dir) == []


def test_a_failed_edit_leaves_no_file(sdk: openai.OpenAI, fal: FakeFal, spill_dir: Path) -> None:
    fal.endpoint_scenarios[FAL_EDIT] = "completed_error"
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.images.edit(model="waiting-edit", image=("in.png", SOURCE, "image/png"), prompt="make it blue")
    assert caught.value.status_code == 502
    assert _files(spill_dir) == []


def test_a_cancelled_edit_leaves_no_file(live: LiveGateway, fal: FakeFal, spill_dir: Path) -> None:
    async def leave_while_waiting() -> None:
        async with httpx.AsyncClient(base_url=live.api_url, timeout=60) as client:
            request = client.post(
                "/images/edits",
                headers={"authorization": f"Bearer {TEST_KEY}"},
                data={"model": "failover-edit", "prompt": "[fake:never] make it blue"},
                files={"image": ("in.png", SOURCE, "image/png")},
            )
            task = asyncio.create_task(request)
            while len(_files(spill_dir)) != 1:
                assert not task.done(), task.result()
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(leave_while_waiting())
    wait_until(lambda: _files(spill_dir) == [] and bool(fal.cancelled), what="the request's end", timeout=30)


def test_a_streamed_edits_input_leaves_memory_too(sdk: openai.OpenAI, fal: FakeFal, spill_dir: Path) -> None:
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(
            lambda: list(
                sdk.images.edit(
                    model="failover-edit",
                    image=("in.png", SOURCE, "image/png"),
                    prompt="[fake:never] make it blue",
                    stream=True,
                )
            )
        )
        try:
            wait_until(lambda: any(s.request_id for s in fal.submissions), what="the job at fal", timeout=30)
            wait_until(lambda: len(_files(spill_dir)) == 1, what="the streamed edit's input spilled", timeout=10)
        finally:  # the job ends either way, so the stream (and this test) does
            for submission in fal.submissions:
                if submission.request_id is not None:
                    fal.finish(submission.request_id)
        events = answer.result(timeout=60)
    assert [event.type for event in events] == ["image_edit.completed"]
    assert _files(spill_dir) == []


def test_a_waiting_duplicate_keeps_no_copy_of_its_upload(
    sdk: openai.OpenAI, fal: FakeFal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retry with the first try's Idempotency-Key (a proxy cut the first connection) waits for the
    first's job and sends nothing: its own upload leaves memory as it starts waiting, not when the
    first's job ends (its intake share goes back then, so nothing else would bound it)."""
    dropped: list[int] = []
    drop_files = ParsedForm.drop_files

    def counted(form: ParsedForm) -> None:
        dropped.append(sum(sum(len(piece) for piece in chunks) for _, chunks in form.images))
        drop_files(form)

    monkeypatch.setattr(ParsedForm, "drop_files", counted)
    key = {"Idempotency-Key": f"memory-{uuid.uuid4()}"}

    def edit() -> openai.types.ImagesResponse:
        return sdk.images.edit(
            model="waiting-edit",
            image=("in.png", SOURCE, "image/png"),
            prompt="[fake:never] make it blue",
            response_format="b64_json",
            extra_headers=key,
        )

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(edit)
        wait_until(lambda: _accepted(fal) is not None, what="the first job at fal", timeout=30)
        request_id = _accepted(fal)
        assert request_id is not None and dropped == [len(SOURCE)]  # the first's inputs hold its image
        tracemalloc.start()
        try:
            duplicate = pool.submit(edit)
            wait_until(lambda: len(dropped) == 2, what="the duplicate's parsed image dropped", timeout=30)
            assert dropped[1] == len(SOURCE) and not duplicate.done()
            wait_until(
                lambda: _allocated_in(SERVER_CODE) < len(SOURCE) // 2,
                what="the duplicate's upload out of memory",
                timeout=10,
            )
            assert not duplicate.done() and not first.done()  # both still wait on the one job
            fal.finish(request_id)
            answers = first.result(timeout=60), duplicate.result(timeout=60)
        finally:
            tracemalloc.stop()
    assert answers[0].data and answers[1].data
    assert answers[0].data[0].b64_json == answers[1].data[0].b64_json
    assert len([s for s in fal.submissions if s.request_id is not None]) == 1
