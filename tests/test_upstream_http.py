"""The upstream client over each transport: the same exceptions, and the fetch guard's guarantees.

Every test runs on both pools of :mod:`app.upstream_http` against real loopback servers: the
adapters' retry rules and error codes hang on httpx's exception classes, so a fault must raise the
same class on aiohttp's pool as on httpcore's; and the guarded fetch's pinned request (the checked
address, the original ``Host``, SNI and certificate checked against the name) and its hop-by-hop
redirect checks must hold on both.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import ssl
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import get_args

import httpx
import pytest
import trustme

import providers.fetch
from app.settings import Settings
from app.upstream_http import UpstreamTransport, build_upstream_client
from core.errors import UpstreamError
from providers.fetch import FetchPolicy, fetch_image_bytes

TRANSPORTS = get_args(UpstreamTransport)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def serve(
    handler: Handler, ssl_context: ssl.SSLContext | None = None, host: str = "127.0.0.1"
) -> AsyncIterator[int]:
    """A raw TCP server on ``host`` running ``handler`` per connection; yields its port. On exit every
    connection is closed and every handler still running is cancelled."""
    running: set[asyncio.Task[None]] = set()

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        running.add(task)
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()
            running.discard(task)

    server = await asyncio.start_server(connection, host, 0, ssl=ssl_context)
    port: int = server.sockets[0].getsockname()[1]
    try:
        async with server:
            yield port
    finally:
        for task in list(running):
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)


async def read_head(reader: asyncio.StreamReader) -> list[bytes]:
    return (await reader.readuntil(b"\r\n\r\n")).split(b"\r\n")


def ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: image/png\r\n%s\r\n%s" % (len(body), extra, body)


def each_request(respond: Callable[[list[bytes], asyncio.StreamWriter], Awaitable[None]]) -> Handler:
    """A handler answering every request of a kept-alive connection with ``respond(head, writer)``."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await read_head(reader)
            except asyncio.IncompleteReadError:
                return
            await respond(head, writer)

    return handler


async def close_without_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_head(reader)
    writer.close()


async def cut_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_head(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
    await writer.drain()
    writer.close()


async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_head(reader)
    await asyncio.sleep(5)
    writer.close()


async def not_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_head(reader)
    writer.write(b"<html>hello</html>\r\n\r\n")
    await writer.drain()
    writer.close()


@pytest.fixture(params=TRANSPORTS)
async def client(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    async with build_upstream_client(request.param, max_connections=8) as upstream:
        yield upstream


def test_aiohttp_is_the_default_and_httpcore_can_be_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().upstream_transport == "aiohttp"
    monkeypatch.setenv("PIXELGATE_UPSTREAM_TRANSPORT", "httpcore")
    assert Settings().upstream_transport == "httpcore"
    monkeypatch.setenv("PIXELGATE_UPSTREAM_TRANSPORT", "urllib3")
    with pytest.raises(ValueError, match="upstream_transport"):
        Settings()


@pytest.mark.parametrize(
    ("handler", "expected"),
    [
        (close_without_answer, httpx.RemoteProtocolError),
        (cut_body, httpx.RemoteProtocolError),
        (stall, httpx.ReadTimeout),
        (not_http, httpx.RemoteProtocolError),
    ],
)
async def test_faults_raise_httpcore_s_exception_classes(
    client: httpx.AsyncClient, handler: Handler, expected: type[Exception]
) -> None:
    async with serve(handler) as port:
        with pytest.raises(expected):
            response = await client.get(f"http://127.0.0.1:{port}/x", timeout=httpx.Timeout(0.5))
            await response.aread()


async def test_connection_refused_is_a_connect_error(client: httpx.AsyncClient) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago, now closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(httpx.ConnectError):
        await client.get(f"http://127.0.0.1:{port}/x")


async def test_answers_and_streams_pass_through(client: httpx.AsyncClient) -> None:
    async def answer(head: list[bytes], writer: asyncio.StreamWriter) -> None:
        writer.write(ok(PNG * 1000, b"X-Upstream: yes\r\n"))
        await writer.drain()

    async with serve(each_request(answer)) as port:
        for _ in range(3):  # one kept-alive connection, three requests
            response = await client.get(f"http://127.0.0.1:{port}/a")
            assert (response.status_code, response.headers["x-upstream"], response.content) == (200, "yes", PNG * 1000)


def _chunked(*pieces: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"


FRAMINGS = {
    "length": (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (len(PNG) * 4000), PNG * 4000),
    "chunked": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", _chunked(PNG, PNG * 3000, b"end")),
    "chunked 500": (
        b"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n",
        _chunked(b"Internal ", b"Server Error"),
    ),
    "empty": (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", b""),
    "no content": (b"HTTP/1.1 204 No Content\r\n\r\n", b""),
}
"""Answers in each framing, as head and encoded body; each read whole twice on one connection."""


@pytest.mark.timeout(20)  # a read that never waits holds the event loop: only the alarm would end it
@pytest.mark.parametrize("framing", list(FRAMINGS))
async def test_every_framing_is_read_whole_and_ends(client: httpx.AsyncClient, framing: str) -> None:
    status_and_headers, body = FRAMINGS[framing]

    async def answer(head: list[bytes], writer: asyncio.StreamWriter) -> None:
        writer.write(status_and_headers)
        for start in range(0, len(body), 7000):  # the body in pieces, as a server flushes it
            writer.write(body[start : start + 7000])
            await writer.drain()

    expected = {
        "length": PNG * 4000,
        "chunked": PNG + PNG * 3000 + b"end",
        "chunked 500": b"Internal Server Error",
    }.get(framing, b"")
    async with serve(each_request(answer)) as port:
        for path in ("/a", "/b"):
            response = await client.post(f"http://127.0.0.1:{port}{path}", content=b"{}")
            assert response.content == expected


async def test_an_upstream_s_cookies_are_not_sent_back(client: httpx.AsyncClient) -> None:
    # One client serves every caller of the gateway (and JSON edits name the hosts it fetches from):
    # a cookie set on one request must not ride along with the next.
    cookie_headers: list[bool] = []

    async def answer(head: list[bytes], writer: asyncio.StreamWriter) -> None:
        cookie_headers.append(any(line.lower().startswith(b"cookie:") for line in head))
        writer.write(ok(PNG, b"Set-Cookie: session=abc; Path=/\r\n"))
        await writer.drain()

    async with serve(each_request(answer)) as port:
        for path in ("/a", "/b"):
            response = await client.get(f"http://127.0.0.1:{port}{path}")
            assert response.headers["set-cookie"].startswith("session=")
    assert cookie_headers == [False, False]
    assert not client.cookies


async def test_an_answer_read_and_dropped_is_freed_without_the_garbage_collector(client: httpx.AsyncClient) -> None:
    # httpx's client wraps each answer's stream in one that points back at the answer: a cycle that
    # would keep the answer's body and its request's upload for the collector. Both transports are
    # wrapped to unlink it when the answer is closed.
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(len(PNG))
        writer.write(ok(PNG * 1000))
        await writer.drain()

    async with serve(answer) as port:
        gc.disable()
        try:
            response = await client.post(f"http://127.0.0.1:{port}/a", content=PNG)
            assert response.content == PNG * 1000
            answer_ref, request_ref = weakref.ref(response), weakref.ref(response.request)
            del response
            assert answer_ref() is None and request_ref() is None
        finally:
            gc.enable()


# -- the fetch guard on each transport --------------------------------------------------------------


@pytest.fixture
def tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ssl.SSLContext, list[str]]:
    """A server TLS context for ``cdn.example.test`` from a test CA the clients trust; the SNI names seen."""
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))  # read when the client's TLS context is made
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("cdn.example.test").configure_cert(context)
    names: list[str] = []
    context.sni_callback = lambda _sock, name, _ctx: names.append(str(name))
    return context, names


@pytest.fixture
def loopback_counts_as_public(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests may reach loopback only: let ``cdn.example.test`` resolve to 127.0.0.1 and that pass the
    public-address check, so the guard pins the request as it would to a public CDN."""

    def resolver(host: str, port: int, type: int = 0) -> list[tuple[object, ...]]:
        assert host == "cdn.example.test"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    monkeypatch.setattr(providers.fetch, "is_public_address", lambda address: True)


@pytest.mark.usefixtures("loopback_counts_as_public")
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_pinned_fetch_keeps_host_and_checks_the_certificate_against_the_name(
    transport: UpstreamTransport, tls: tuple[ssl.SSLContext, list[str]]
) -> None:
    context, names = tls
    heads: list[list[bytes]] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await read_head(reader))
        writer.write(ok(PNG))
        await writer.drain()
        writer.close()

    async with serve(answer, context) as port, build_upstream_client(transport, 8) as client:
        data = await fetch_image_bytes(client, f"https://cdn.example.test:{port}/img.png?sig=1", FetchPolicy())
    assert data == PNG
    assert names == ["cdn.example.test"]  # SNI: the name, not the pinned address
    [head] = heads
    assert head[0] == b"GET /img.png?sig=1 HTTP/1.1"
    assert f"host: cdn.example.test:{port}".encode() in [line.lower() for line in head]


@pytest.mark.usefixtures("loopback_counts_as_public")
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_pinned_fetch_refuses_a_certificate_for_another_name(
    transport: UpstreamTransport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "other.example.test").configure_cert(context)  # valid for the address only
    served: list[int] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served.append(1)
        writer.close()

    async with serve(answer, context) as port, build_upstream_client(transport, 8) as client:
        with pytest.raises(UpstreamError, match="cannot download"):
            await fetch_image_bytes(client, f"https://cdn.example.test:{port}/img.png", FetchPolicy())


async def test_redirects_are_left_to_the_guard(client: httpx.AsyncClient) -> None:
    seen: list[bytes] = []

    async def elsewhere(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append((await read_head(reader))[0])
        writer.write(ok(PNG))
        await writer.drain()
        writer.close()

    async with serve(elsewhere, host="127.0.0.2") as other:

        async def redirect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_head(reader)
            location = f"http://127.0.0.2:{other}/b".encode()
            writer.write(b"HTTP/1.1 302 Found\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n" % location)
            await writer.drain()
            writer.close()

        async with serve(redirect) as port:
            # The transport hands the 302 back; the guard checks the next hop (not allowed) and stops.
            listed = FetchPolicy(allowed_hosts=frozenset({f"127.0.0.1:{port}"}))
            with pytest.raises(UpstreamError, match="plain http"):
                await fetch_image_bytes(client, f"http://127.0.0.1:{port}/a", listed)
            assert seen == []
            both = FetchPolicy(allowed_hosts=frozenset({f"127.0.0.1:{port}", f"127.0.0.2:{other}"}))
            assert await fetch_image_bytes(client, f"http://127.0.0.1:{port}/a", both) == PNG
            assert seen == [b"GET /b HTTP/1.1"]
