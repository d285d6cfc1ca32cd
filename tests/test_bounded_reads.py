"""The connection's reads (``app.http_protocol``): small while the bytes would only wait for the app,
large while the app reads its body, and every byte delivered in order.

Drives the protocol class ``pixelgate serve`` gives uvicorn as the event loop would (``get_buffer``,
a read of at most that buffer's size, ``buffer_updated``), over an in-memory transport that honours
pause and resume, in front of an app that waits for its "admission" before reading a 1 MiB body.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from app.http_protocol import BODY_READ_BYTES, HEAD_READ_BYTES, guarded_protocol

BODY = bytes(range(256)) * 4096  # 1 MiB
REQUEST = (
    b"POST /v1/images/edits HTTP/1.1\r\nhost: test\r\ncontent-type: application/octet-stream\r\n"
    b"content-length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
)


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.paused = False
        self.closed = False
        self.written = bytearray()
        self.protocol: asyncio.BaseProtocol | None = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 8000) if name in ("sockname", "peername") else default

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self.protocol is not None
        return self.protocol


async def test_a_waiting_request_is_read_in_small_pieces_and_a_read_one_in_large() -> None:
    admitted = asyncio.Event()
    received = hashlib.sha256()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await admitted.wait()  # an admission slot, as the gateway's guards wait for one
        more = True
        while more:
            message = await receive()
            received.update(message.get("body", b""))
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    config = uvicorn.Config(app, http=guarded_protocol(30.0), lifespan="off", log_level="warning")
    config.load()
    # As uvicorn's server makes it (its annotation says asyncio.Protocol: hence the ignore, as uvicorn's).
    protocol = config.http_protocol_class(config=config, server_state=ServerState(), app_state={})  # type: ignore[call-arg]
    assert isinstance(protocol, asyncio.BufferedProtocol)
    transport = _Transport()
    transport.set_protocol(protocol)
    protocol.connection_made(transport)

    sent = 0
    sizes: list[int] = []

    async def read_while_not_paused() -> None:
        nonlocal sent
        while sent < len(REQUEST) and not transport.paused:
            buffer = memoryview(protocol.get_buffer(-1))
            count = min(len(buffer), len(REQUEST) - sent)
            buffer[:count] = REQUEST[sent : sent + count]
            protocol.buffer_updated(count)
            sizes.append(len(buffer))
            sent += count
            await asyncio.sleep(0)  # the loop runs the app's task between reads

    await read_while_not_paused()
    head = REQUEST.index(b"\r\n\r\n") + 4
    # Not admitted: reading stopped at uvicorn's 64 KiB mark, one small read past it at most.
    assert transport.paused
    assert sent - head <= 64 * 1024 + HEAD_READ_BYTES
    assert max(sizes) == HEAD_READ_BYTES

    admitted.set()
    waiting = sizes.copy()
    for _ in range(10_000):
        if sent == len(REQUEST):
            break
        await read_while_not_paused()
        await asyncio.sleep(0)
    for _ in range(100):  # the app's last receive and its answer
        await asyncio.sleep(0)
    assert sent == len(REQUEST) and b"200 OK" in transport.written
    assert received.digest() == hashlib.sha256(BODY).digest()
    reading = sizes[len(waiting) :]
    assert max(reading) == BODY_READ_BYTES
    assert len(reading) < len(BODY) // HEAD_READ_BYTES  # mostly large reads once the app reads
    protocol.connection_lost(None)
