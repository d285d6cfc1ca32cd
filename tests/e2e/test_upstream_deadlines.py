"""Issue 7, deadlines and cancellation end to end: the openai SDK -> a live pixelgate -> upstreams that hang.

Two kinds of hang on loopback: a listener whose accept queue is full (the TCP handshake never
completes: the connect deadline) and a server that accepts and never answers (the read deadline).
Each must give a 504 long before the request's total deadline. A client that disconnects cancels
every fal job of its fan-out.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import TEST_KEY, make_settings
from tests.fakes.fake_fal import FakeFal
from tests.images import png_bytes
from tests.live import LiveGateway

CONNECT_SECONDS = 0.3
READ_SECONDS = 0.5
TOTAL_SECONDS = 20.0


class Unanswered:
    """A loopback port that never answers: ``mode="connect"`` never completes the handshake,
    ``mode="read"`` accepts and reads but never writes."""

    def __init__(self, mode: str) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._acceptor: threading.Thread | None = None
        if mode == "connect":
            self._listener.listen(0)
            for _ in range(3):  # fill the accept queue; later SYNs are dropped
                filler = socket.socket()
                filler.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    filler.connect(("127.0.0.1", self.port))
                self._held.append(filler)
            time.sleep(0.05)
        else:
            self._listener.listen(64)
            self._listener.settimeout(0.1)
            self._acceptor = threading.Thread(target=self._accept, daemon=True)
            self._acceptor.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                conn, _ = self._listener.accept()
                self._held.append(conn)

    def connections(self) -> int:
        return len(self._held)

    def hung_up(self) -> bool:
        """True once every connection made to this server has been closed by its client."""
        for conn in list(self._held):
            conn.setblocking(False)
            while True:
                try:
                    if conn.recv(65536) == b"":
                        break
                except BlockingIOError:
                    return False
        return bool(self._held)

    def close(self) -> None:
        self._stop.set()
        if self._acceptor is not None:
            self._acceptor.join(timeout=5)
        for sock in self._held:
            sock.close()
        self._listener.close()


@pytest.fixture(params=["connect", "read"])
def unanswered(request: pytest.FixtureRequest) -> Iterator[Unanswered]:
    server = Unanswered(request.param)
    yield server
    server.close()


def _hanging_gateway(data_dir: Path, upstream: Unanswered) -> LiveGateway:
    timeouts = {"connect_timeout_seconds": CONNECT_SECONDS, "read_timeout_seconds": READ_SECONDS, "max_retries": 0}
    settings = make_settings(
        data_dir,
        providers={
            "fal": {"api_key": "k:s", "base_url": upstream.url, "storage_url": upstream.url, **timeouts},
            "openai": {"api_key": "sk-upstream", "base_url": upstream.url + "/v1", **timeouts},
        },
        request_timeout_seconds=TOTAL_SECONDS,
        fetch_timeout_seconds=READ_SECONDS,
        fetch_allow_hosts=[f"127.0.0.1:{upstream.port}"],
    )
    return LiveGateway(settings)


@pytest.mark.parametrize("model", ["hidream-i1-full", "gpt-image-1"])
def test_an_upstream_that_does_not_answer_is_a_prompt_504(tmp_path: Path, unanswered: Unanswered, model: str) -> None:
    with (
        _hanging_gateway(tmp_path, unanswered) as live,
        openai.OpenAI(base_url=live.api_url, api_key=TEST_KEY, max_retries=0, timeout=30) as sdk,
    ):
        started = time.monotonic()
        with pytest.raises(openai.APIStatusError) as caught:
            sdk.images.generate(model=model, prompt="x", size="1024x1024", response_format="b64_json")
        elapsed = time.monotonic() - started
    assert caught.value.status_code == 504
    assert isinstance(caught.value.body, dict) and caught.value.body["code"] == "upstream_timeout"
    assert elapsed < 5  # the connect/read deadline, not the 20 s total one


def test_an_image_url_that_does_not_answer_is_a_prompt_400(tmp_path: Path, unanswered: Unanswered) -> None:
    with _hanging_gateway(tmp_path, unanswered) as live:
        started = time.monotonic()
        response = httpx.post(
            f"{live.api_url}/images/edits",
            json={"model": "sandbox-edit", "prompt": "x", "images": [{"image_url": f"{unanswered.url}/in.png"}]},
            headers={"Authorization": f"Bearer {TEST_KEY}"},
            timeout=30,
        )
        elapsed = time.monotonic() - started
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "images[0]"
    assert elapsed < 5


@pytest.fixture
def never_fal() -> Iterator[FakeFal]:
    with FakeFal(api_key="k:s") as fake:
        fake.scenario = "never"
        yield fake


def test_a_client_that_leaves_cancels_its_whole_fan_out(tmp_path: Path, never_fal: FakeFal) -> None:
    settings = make_settings(
        tmp_path,
        providers={"fal": {"api_key": "k:s", "base_url": never_fal.base_url, "storage_url": never_fal.storage_url}},
        request_timeout_seconds=TOTAL_SECONDS,
    )
    with LiveGateway(settings) as live:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(
                f"{live.api_url}/images/generations",
                json={"model": "hidream-i1-full", "prompt": "x", "n": 10, "size": "64x64"},
                headers={"Authorization": f"Bearer {TEST_KEY}"},
                timeout=httpx.Timeout(10, read=1.0),
            )
        deadline = time.monotonic() + 5
        while len(never_fal.cancelled) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    assert len(never_fal.submissions) == 3  # n=10 over fal's 4 per call: 4 + 3 + 3
    assert sorted(never_fal.cancelled) == sorted(s.request_id for s in never_fal.submissions if s.request_id)


def test_a_client_that_leaves_an_edit_upload_cancels_it_too(tmp_path: Path, never_fal: FakeFal) -> None:
    """Same for an edit whose input went through fal storage (above the data-URI threshold)."""
    settings = make_settings(
        tmp_path,
        providers={
            "fal": {
                "api_key": "k:s",
                "base_url": never_fal.base_url,
                "storage_url": never_fal.storage_url,
                "upload_threshold_bytes": 0,
            }
        },
    )
    data_url = "data:image/png;base64," + base64.b64encode(png_bytes(32, 32)).decode()
    with LiveGateway(settings) as live:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(
                f"{live.api_url}/images/edits",
                json={"model": "hidream-e1-1", "prompt": "x", "images": [{"image_url": data_url}], "n": 2},
                headers={"Authorization": f"Bearer {TEST_KEY}"},
                timeout=httpx.Timeout(10, read=1.0),
            )
        deadline = time.monotonic() + 5
        while not never_fal.cancelled and time.monotonic() < deadline:
            time.sleep(0.02)
    assert never_fal.uploads
    assert never_fal.cancelled == [s.request_id for s in never_fal.submissions]


def test_a_client_that_leaves_during_the_submit_still_gets_the_job_cancelled(tmp_path: Path) -> None:
    """fal has not told us the job's id yet when the client leaves; the id comes, then the cancel."""
    with FakeFal(api_key="k:s", latency=5.0) as fake:
        settings = make_settings(
            tmp_path, providers={"fal": {"api_key": "k:s", "base_url": fake.base_url, "storage_url": fake.storage_url}}
        )
        with LiveGateway(settings) as live:
            with pytest.raises(httpx.ReadTimeout):
                httpx.post(
                    f"{live.api_url}/images/generations",
                    json={"model": "hidream-i1-full", "prompt": "x [fake:slow_submit:1.0]", "size": "64x64"},
                    headers={"Authorization": f"Bearer {TEST_KEY}"},
                    timeout=httpx.Timeout(10, read=0.3),
                )
            assert fake.submissions == []  # the submit is still in flight
            deadline = time.monotonic() + 5
            while not fake.cancelled and time.monotonic() < deadline:
                time.sleep(0.02)
        assert len(fake.submissions) == 1
        assert fake.cancelled == [fake.submissions[0].request_id]


def test_a_client_that_leaves_aborts_its_openai_upstream_request(tmp_path: Path) -> None:
    """The openai adapter has no job to cancel: leaving must close its upstream request instead."""
    upstream = Unanswered("read")
    settings = make_settings(
        tmp_path,
        providers={
            "openai": {
                "api_key": "sk-upstream",
                "base_url": upstream.url + "/v1",
                "read_timeout_seconds": 60,
                "max_retries": 0,
            }
        },
    )
    try:
        with LiveGateway(settings) as live:
            with pytest.raises(httpx.ReadTimeout):
                httpx.post(
                    f"{live.api_url}/images/generations",
                    json={"model": "gpt-image-1", "prompt": "x", "size": "1024x1024"},
                    headers={"Authorization": f"Bearer {TEST_KEY}"},
                    timeout=httpx.Timeout(10, read=1.0),
                )
            assert upstream.connections() == 1
            deadline = time.monotonic() + 5
            while not upstream.hung_up() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert upstream.hung_up()
    finally:
        upstream.close()
