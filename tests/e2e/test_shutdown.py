"""Issue 7, graceful shutdown: the real ``pixelgate serve`` in a subprocess, SIGTERM, a fake fal with latency.

Within the drain timeout a request in flight completes; new connections are refused at once; past
the drain timeout the request is cut with a 503 in the OpenAI shape and its fal job is cancelled;
the process exits promptly either way.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from app.settings import Settings
from tests.conftest import TEST_KEY
from tests.fakes.fake_fal import FakeFal
from tests.live import free_port
from tests.polling import wait_until

FAL_KEY = "shutdown-fal-key:secret"
PIXELGATE = Path(sys.executable).parent / "pixelgate"


@pytest.fixture
def fake() -> Iterator[FakeFal]:
    with FakeFal(api_key=FAL_KEY, latency=1.5) as server:
        yield server


class Served:
    """``pixelgate serve`` on a free loopback port, configured by environment as a user would."""

    def __init__(self, data_dir: Path, fake: FakeFal, drain_seconds: int, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "PIXELGATE_API_KEYS": TEST_KEY,
            "PIXELGATE_DATA_DIR": str(data_dir),
            "PIXELGATE_SIGNING_SECRET": "shutdown-test-signing-secret",
            "FAL_KEY": FAL_KEY,
            "PIXELGATE_FAL_BASE_URL": fake.base_url,
            "PIXELGATE_FAL_STORAGE_URL": fake.storage_url,
            "PIXELGATE_DRAIN_TIMEOUT_SECONDS": str(drain_seconds),
            **(env or {}),
        }
        self.proc = subprocess.Popen(
            [str(PIXELGATE), "serve", "--port", str(self.port), "--log-level", "info"],
            env=env,
            cwd=data_dir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError(f"pixelgate serve did not start: {self.output()}")
            time.sleep(0.1)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        out, _ = self.proc.communicate(timeout=30)
        return out

    def refuses_connections(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except ConnectionRefusedError:
            return True
        return False


class Call(threading.Thread):
    """One generation through the SDK in the background; ``result`` or ``error`` when done."""

    def __init__(self, served: Served, prompt: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(daemon=True)
        self.served, self.prompt, self.headers = served, prompt, headers
        self.result: openai.types.ImagesResponse | None = None
        self.error: openai.APIStatusError | None = None

    def run(self) -> None:
        with openai.OpenAI(base_url=f"{self.served.base_url}/v1", api_key=TEST_KEY, max_retries=0, timeout=60) as sdk:
            try:
                self.result = sdk.images.generate(
                    model="hidream-i1-full",
                    prompt=self.prompt,
                    size="64x64",
                    response_format="b64_json",
                    extra_headers=self.headers,
                )
            except openai.APIStatusError as exc:
                self.error = exc


def test_sigterm_drains_in_flight_requests_and_refuses_new_connections(tmp_path: Path, fake: FakeFal) -> None:
    served = Served(tmp_path, fake, drain_seconds=20)
    call = Call(served, "a lighthouse")
    call.start()
    wait_until(lambda: len(fake.submissions) == 1, "the job is at fal")  # ~1.5 s from done
    signalled = time.monotonic()
    served.proc.send_signal(signal.SIGTERM)
    wait_until(served.refuses_connections, "the listener closed on SIGTERM", timeout=3.0)
    call.join(timeout=20)
    assert call.error is None and call.result is not None
    assert call.result.data is not None and len(call.result.data) == 1
    served.proc.wait(timeout=10)
    assert time.monotonic() - signalled < 6  # the drain ended with the last request, not at 20 s
    assert fake.cancelled == []
    output = served.output()
    assert "Exception in ASGI application" not in output


@pytest.mark.parametrize("headers", [None, {"Idempotency-Key": "shutdown-1"}], ids=["plain", "idempotent"])
def test_past_the_drain_timeout_requests_are_cut_and_their_fal_jobs_cancelled(
    tmp_path: Path, fake: FakeFal, headers: dict[str, str] | None
) -> None:
    """With an Idempotency-Key the work is not tied to the connection: the shutdown cancels it all the same."""
    served = Served(tmp_path, fake, drain_seconds=1)
    call = Call(served, "a lighthouse that never ends [fake:never]", headers)
    call.start()
    wait_until(lambda: len(fake.submissions) == 1, "the job is at fal")
    signalled = time.monotonic()
    served.proc.send_signal(signal.SIGTERM)
    call.join(timeout=20)
    assert call.error is not None, "the request should have been cut"
    assert call.error.status_code == 503
    assert isinstance(call.error.body, dict) and call.error.body["code"] == "shutting_down"
    assert call.error.response.headers["retry-after"] == "1"
    served.proc.wait(timeout=15)
    assert time.monotonic() - signalled < 8
    assert fake.cancelled == [fake.submissions[0].request_id]
    assert "Exception in ASGI application" not in served.output()


def test_a_request_still_queued_for_admission_is_cut_with_the_same_503(tmp_path: Path, fake: FakeFal) -> None:
    served = Served(tmp_path, fake, drain_seconds=1, env={"PIXELGATE_MAX_INFLIGHT": "1"})
    # An upload that stalls after its head holds the only slot; the generation behind it queues.
    stalled = socket.create_connection(("127.0.0.1", served.port), timeout=10)
    stalled.sendall(
        (
            "POST /v1/images/edits HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {TEST_KEY}\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            "Content-Length: 100000\r\n\r\n--b\r\n"
        ).encode()
    )

    def load() -> dict[str, int]:
        admission: dict[str, int] = httpx.get(f"{served.base_url}/readyz", timeout=5).json()["admission"]
        return admission

    wait_until(lambda: load()["inflight"] == 1, "the stalled upload holds the slot")
    call = Call(served, "a lighthouse")
    call.start()
    wait_until(lambda: load()["queued"] == 1, "the generation waits for admission")
    served.proc.send_signal(signal.SIGTERM)
    call.join(timeout=20)
    stalled.close()
    assert call.error is not None and call.error.status_code == 503
    assert isinstance(call.error.body, dict) and call.error.body["code"] == "shutting_down"
    served.proc.wait(timeout=15)
    assert fake.submissions == []
    assert "Exception in ASGI application" not in served.output()


def test_compose_gives_the_drain_time_before_docker_kills() -> None:
    """docker stop waits 10 s before SIGKILL unless told otherwise: that would cut the 30 s drain."""
    compose = yaml.safe_load((Path(__file__).parents[2] / "docker-compose.yml").read_text(encoding="utf-8"))
    grace = compose["services"]["pixelgate"]["stop_grace_period"]
    assert grace.endswith("s") and int(grace[:-1]) > Settings.model_fields["drain_timeout_seconds"].default
