"""The event loop stays free while images convert: ``/healthz`` answers fast under heavy conversions.

Pillow work runs in the worker pool, so a burst of big conversions must not stall other requests.
Three SDK requests each ask for two 2048x2048 WebP images fitted from a tiny sandbox edit (the
sandbox's own work is trivial; nearly all the time is pixelgate's resize and encode), and meanwhile
``/healthz`` is sampled. A sample counts only if it was sent while a conversion was running in the
gateway (the live server runs in this process, so its threads' stacks can be looked at; the test's
own threads never enter the conversion module). The median of those samples must be under 50 ms: a liveness
property, so the median, not the maximum, on a noisy shared machine.
"""

from __future__ import annotations

import base64
import statistics
import sys
import threading
import time
from types import FrameType

import httpx
import openai

from tests.conftest import TEST_KEY
from tests.e2e.test_output_formats import MAGIC
from tests.images import decode, png_bytes
from tests.live import LiveGateway

REQUESTS = 3
N = 2
SIDE = 2048


def _in_imaging(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.endswith("normalization/emulation/output_format.py"):
            return True
        frame = frame.f_back
    return False


def _converting() -> bool:
    """True while a thread of the live server (worker pool or not) is inside the conversion module."""
    return any(_in_imaging(frame) for frame in sys._current_frames().values())


def test_healthz_answers_fast_while_conversions_run(gateway: LiveGateway) -> None:
    source = png_bytes(64, 64)
    results: list[list[bytes]] = []
    errors: list[BaseException] = []

    def convert_heavy() -> None:
        try:
            with openai.OpenAI(base_url=gateway.api_url, api_key=TEST_KEY, max_retries=0, timeout=120) as client:
                result = client.images.edit(
                    model="sandbox-edit",
                    image=("in.png", source, "image/png"),
                    prompt="night",
                    n=N,
                    size=f"{SIDE}x{SIDE}",
                    output_format="webp",
                    response_format="b64_json",
                )
            assert result.data is not None
            results.append([base64.b64decode(item.b64_json or "") for item in result.data])
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=convert_heavy) for _ in range(REQUESTS)]
    during: list[float] = []
    with httpx.Client(base_url=gateway.base_url, timeout=10) as health:
        health.get("/healthz")  # connection up before the measurement
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            before = _converting()
            started = time.perf_counter()
            response = health.get("/healthz")
            elapsed = time.perf_counter() - started
            assert response.status_code == 200
            if before:
                during.append(elapsed)
            time.sleep(0.02)
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert len(results) == REQUESTS and all(len(images) == N for images in results)
    for images in results:
        for data in images:
            assert MAGIC["webp"](data)
            assert decode(data).size == (SIDE, SIDE)
    assert len(during) >= 5, f"only {len(during)} samples overlapped a conversion"
    assert statistics.median(during) < 0.05, sorted(during)
