"""A finished result waits upstream until the gateway has room for it: the openai SDK -> a live
pixelgate with one admission slot -> the fake fal.

A request hands its slot on while its job runs upstream, and takes it back before it fetches the
result (fal's result and the image on its CDN). So a burst of jobs finishing together cannot fill
memory with results that then wait for slots. Here another request holds the only slot (its upload
stalls half-way) while the first request's job finishes: the result is fetched only once that upload
is complete and its slot handed on.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from tests.conftest import TEST_KEY, upstream_settings
from tests.e2e.conftest import FAL_KEY
from tests.fakes.fake_fal import FakeFal
from tests.images import png_bytes
from tests.live import LiveGateway
from tests.polling import wait_until

JOB_SECONDS = 0.5
BOUNDARY = "roomboundary"


@pytest.fixture(scope="module")
def one_slot(fal_server: FakeFal, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    settings = upstream_settings(tmp_path_factory.mktemp("one-slot"), fal=fal_server, fal_key=FAL_KEY, max_inflight=1)
    with LiveGateway(settings) as live:
        yield live


def _edit_request(port: int) -> tuple[bytes, bytes]:
    """A multipart edit as raw HTTP: its head and its body."""
    fields = {"model": "hidream-e1-1", "prompt": "make it blue", "response_format": "b64_json"}
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()
    ]
    parts += [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="in.png"\r\n'
        "Content-Type: image/png\r\n\r\n".encode(),
        png_bytes(64, 48),
        f"\r\n--{BOUNDARY}--\r\n".encode(),
    ]
    body = b"".join(parts)
    head = (
        f"POST /v1/images/edits HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {TEST_KEY}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode(), body


def _inflight(live: LiveGateway) -> int:
    return int(httpx.get(f"{live.base_url}/readyz", timeout=5).json()["admission"]["inflight"])


def _answer(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def test_a_finished_result_waits_at_fal_while_the_only_slot_is_taken(one_slot: LiveGateway, fake: FakeFal) -> None:
    fake.latency = JOB_SECONDS
    head, body = _edit_request(one_slot.port)
    half = len(body) // 2
    with (
        openai.OpenAI(base_url=one_slot.api_url, api_key=TEST_KEY, max_retries=0, timeout=30) as client,
        ThreadPoolExecutor(max_workers=1) as pool,
    ):
        generation = pool.submit(
            client.images.generate, model="hidream-i1-full", prompt="a lighthouse", response_format="b64_json"
        )
        wait_until(lambda: len(fake.submissions) == 1, "the generation's job is with fal")
        with socket.create_connection(("127.0.0.1", one_slot.port), timeout=30) as sock:
            sock.sendall(head + body[:half])  # the upload stalls half-way, holding the only slot
            wait_until(lambda: _inflight(one_slot) == 1, "the stalled upload holds the slot")
            finished_at = fake.submissions[0].at + JOB_SECONDS
            time.sleep(max(0.0, finished_at - time.monotonic()) + 0.5)
            # The generation's job is done at fal; its result waits there (no slot to take it with).
            assert fake.cdn_fetches == 0 and not generation.done()
            sock.sendall(body[half:])
            answer = _answer(sock)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
        assert len(generation.result().data or []) == 1
    assert fake.cdn_fetches == 2  # each request's image, once
