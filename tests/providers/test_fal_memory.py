"""What a fal job holds while it waits upstream: a gateway keeps thousands of them at once."""

from __future__ import annotations

import asyncio
import base64
import gc
import io
import random
import time
import tracemalloc

from PIL import Image

from core.images import InputImage
from providers.base import UpstreamCall
from tests.fakes.fake_fal import FakeFal
from tests.providers.conftest import AdapterMaker


def noise_png(side: int) -> bytes:
    """An incompressible PNG of about ``3 * side**2`` bytes."""
    image = Image.frombytes("RGB", (side, side), random.Random(side).randbytes(side * side * 3))
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=0)
    return out.getvalue()


async def test_a_waiting_edit_does_not_keep_its_inputs_data_uri(fake_fal: FakeFal, make_adapter: AdapterMaker) -> None:
    # A 1 MiB input goes to fal as a 1.4 MB data URI inside the submitted JSON; once submitted, the
    # job needs neither (measured in the long-job benchmark: 2.5 MiB held per waiting 1 MiB edit
    # with the payload kept for the whole job, 1.2 MiB without).
    data = noise_png(600)
    image = InputImage(data=data, media_type="image/png", width=600, height=600)
    call = UpstreamCall(
        model_id="hidream-e1-1",
        provider="fal",
        upstream="fal-ai/hidream-e1-1",
        mode="edit",
        payload={"prompt": "make it blue"},
        images=(image,),
        image_field="image_url",
    )
    fake_fal.latency = 60.0  # the job waits upstream while we look; cancelled at the end
    tracemalloc.start(64)
    # httpx's request and response refer to each other until a collection: with the collector off,
    # only the body's release at the submit's end lets its base64 go while the job waits.
    gc.disable()
    task = asyncio.create_task(make_adapter().run(call))
    try:
        deadline = time.monotonic() + 20
        while fake_fal.status_requests == 0:  # the status stream follows the submit's answer
            assert time.monotonic() < deadline, "the job was not submitted and followed"
            await asyncio.sleep(0.01)
        snapshot = tracemalloc.take_snapshot()
    finally:
        gc.enable()
        tracemalloc.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    by_adapter = snapshot.filter_traces([tracemalloc.Filter(True, "*/providers/fal/*", all_frames=True)])
    held = sum(trace.size for trace in by_adapter.traces)
    assert fake_fal.submissions[0].payload["image_url"] == "data:image/png;base64," + base64.b64encode(data).decode()
    assert held < len(data) // 4, f"{held} bytes the adapter allocated are still held while the job waits"
