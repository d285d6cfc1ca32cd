"""A slow client upload (slowloris-style) against the live gateway: it gets a 408, never a hang.

uvicorn has no request-body read timeout; ``PIXELGATE_UPLOAD_IDLE_TIMEOUT_SECONDS`` and
``PIXELGATE_UPLOAD_TIMEOUT_SECONDS`` (``app/body_timeout.py``) bound the wait per chunk and for
the whole body. Raw sockets send exactly the bytes and pauses a slow client would.
"""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_KEY, make_settings
from tests.images import png_bytes
from tests.live import LiveGateway

IDLE, TOTAL = 0.6, 2.0


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    conf = make_settings(
        tmp_path_factory.mktemp("slow"), upload_idle_timeout_seconds=IDLE, upload_timeout_seconds=TOTAL
    )
    with LiveGateway(conf) as gateway:
        yield gateway


def _head(path: str, content_type: str, length: int) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TEST_KEY}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def _answer(sock: socket.socket) -> tuple[int, dict[str, object]]:
    sock.settimeout(10)
    raw = b""
    while b"\r\n\r\n" not in raw or len(raw.partition(b"\r\n\r\n")[2]) < _length(raw):
        chunk = sock.recv(65536)
        if not chunk:
            break
        raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


def _length(raw: bytes) -> int:
    for line in raw.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def _assert_408(status: int, body: dict[str, object]) -> str:
    assert status == 408
    error = body["error"]
    assert isinstance(error, dict) and set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["code"]) == ("invalid_request_error", "request_timeout")
    return str(error["message"])


def test_a_stalled_body_is_answered_408_after_the_idle_timeout(live: LiveGateway) -> None:
    with socket.create_connection(("127.0.0.1", live.port)) as sock:
        sock.sendall(_head("/v1/images/generations", "application/json", 200) + b'{"model": "sandbox-gen')
        started = time.monotonic()
        status, body = _answer(sock)
        waited = time.monotonic() - started
    assert "idle" in _assert_408(status, body)
    assert IDLE <= waited < IDLE + 5


def test_a_trickled_multipart_upload_is_cut_at_the_total_timeout(live: LiveGateway) -> None:
    boundary = "slowloris"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode() + png_bytes(64, 64) * 20
    with socket.create_connection(("127.0.0.1", live.port)) as sock:
        sock.sendall(_head("/v1/images/edits", f"multipart/form-data; boundary={boundary}", len(body) + 100))
        started = time.monotonic()
        sent = 0
        while sent < len(body) and not select.select([sock], [], [], 0)[0]:
            sock.sendall(body[sent : sent + 16])  # 16 bytes every 0.1 s: never idle, never done
            sent += 16
            time.sleep(0.1)
            assert time.monotonic() - started < TOTAL + 5, "the gateway let a trickling upload run on"
        status, answer = _answer(sock)
    assert "total" in _assert_408(status, answer)
    assert sent < len(body)


def test_a_slow_but_steady_upload_within_the_limits_succeeds(live: LiveGateway) -> None:
    image = png_bytes(48, 32)

    def slow_body() -> Iterator[bytes]:
        parts = [
            b'--b\r\nContent-Disposition: form-data; name="model"\r\n\r\nsandbox-edit\r\n',
            b'--b\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nnight\r\n',
            b'--b\r\nContent-Disposition: form-data; name="response_format"\r\n\r\nb64_json\r\n',
            b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n' + image + b"\r\n",
            b"--b--\r\n",
        ]
        for part in parts:
            time.sleep(IDLE / 3)
            yield part

    response = httpx.post(
        f"{live.api_url}/images/edits",
        content=slow_body(),
        headers={"Authorization": f"Bearer {TEST_KEY}", "Content-Type": "multipart/form-data; boundary=b"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.json()["size"] == "48x32"


def test_the_timeouts_are_settings(tmp_path: Path) -> None:
    conf = make_settings(tmp_path)
    assert (conf.upload_idle_timeout_seconds, conf.upload_timeout_seconds) == (30.0, 300.0)


# --- a request head that never completes ----------------------------------------------------------

HEAD_TIMEOUT = 0.8


@pytest.fixture(scope="module")
def strict_heads(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    conf = make_settings(tmp_path_factory.mktemp("heads"), header_timeout_seconds=HEAD_TIMEOUT)
    with LiveGateway(conf) as gateway:
        yield gateway


def _closed_within(sock: socket.socket, seconds: float) -> float:
    """Seconds until the server closed ``sock`` (reads return b""); fails if it is still open after ``seconds``."""
    started = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        pytest.fail(f"the connection was still open after {seconds} s")
    return time.monotonic() - started


def test_a_request_head_that_stops_halfway_is_closed(strict_heads: LiveGateway) -> None:
    with socket.create_connection(("127.0.0.1", strict_heads.port)) as sock:
        sock.sendall(b"POST /v1/images/edits HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/")
        waited = _closed_within(sock, HEAD_TIMEOUT + 10)
    assert waited >= HEAD_TIMEOUT * 0.9
    # Other clients were served meanwhile and still are.
    assert httpx.get(f"{strict_heads.base_url}/healthz", timeout=5).status_code == 200


def test_a_connection_that_sends_nothing_is_closed(strict_heads: LiveGateway) -> None:
    with socket.create_connection(("127.0.0.1", strict_heads.port)) as sock:
        _closed_within(sock, HEAD_TIMEOUT + 10)


def test_the_next_request_on_a_kept_alive_connection_has_the_same_deadline(strict_heads: LiveGateway) -> None:
    with socket.create_connection(("127.0.0.1", strict_heads.port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        sock.settimeout(10)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        time.sleep(
            HEAD_TIMEOUT * 1.5
        )  # idle, under uvicorn's keep-alive timeout (5 s): the head deadline only runs per request
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 1")
        _closed_within(sock, HEAD_TIMEOUT + 10)
