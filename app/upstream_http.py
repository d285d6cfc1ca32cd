"""The one upstream HTTP client: httpx's API over aiohttp's connection pool (or httpcore's).

Every upstream request (submits, status polls, results, storage uploads, result downloads, the
guarded fetch of ``image_url`` inputs) goes through the ``httpx.AsyncClient`` built here, once per
app. A gateway in front of slow image models keeps thousands of requests waiting on that client at
once. httpcore's pool (httpx's default transport) does bookkeeping over every waiting request each
time one starts or ends, which grows quadratically with the number waiting (encode/httpcore#1035):
with 1,000 pollers one client spent 15.6 ms of CPU per request on it, against 0.5 ms over aiohttp's
pool (``python -m bench.bench_transport``). So :class:`AiohttpTransport` is the default
(``PIXELGATE_UPSTREAM_TRANSPORT=aiohttp``); ``httpcore`` keeps httpx's own transport.

The transport is ours rather than ``httpx-aiohttp``'s (0.2): that one maps a connection the server
dropped to ``ConnectTimeout``, which the adapters read as "never sent, safe to resend", lets some
aiohttp errors through unmapped, and has aiohttp warn on every body over 1 MiB. Here the adapters
see httpx's exception classes as httpcore raises them, so their retry rules (connection failures
retried, read timeouts not) and error codes do not depend on the transport. The fetch guard's
guarantees hold on both: the request goes to the pinned address with the original ``Host`` header,
the ``sni_hostname`` extension becomes aiohttp's ``server_hostname`` (SNI and certificate checked
against the name), and redirects are never followed by the transport (the guard follows them hop by
hop). One difference: aiohttp has no write timeout, so a stalled upload is bounded by the request's
deadline (``PIXELGATE_REQUEST_TIMEOUT_SECONDS``) rather than the provider's read timeout.
"""

from __future__ import annotations

import contextlib
import http.client
import http.cookiejar
import urllib.request
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Literal

import aiohttp
import httpcore
import httpx

UpstreamTransport = Literal["aiohttp", "httpcore"]

UPSTREAM_TIMEOUT = httpx.Timeout(120.0, connect=10.0)
"""Defaults only: every adapter request passes its provider's own connect/read timeouts."""

KEEPALIVE_SECONDS = 4.0
"""Idle upstream connections are closed after this, before servers with a 5 s idle timeout (uvicorn,
many proxies) close them: reusing a connection the server is closing fails the request on it."""

UPSTREAM_READ_BYTES = 1024 * 1024

# Most specific first: the first class an aiohttp error is an instance of decides.
_AIOHTTP_TO_HTTPX: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),  # no connection within the connect timeout
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),  # sock_read: the answer stalled
    (aiohttp.ClientConnectorError, httpx.ConnectError),  # refused, DNS, TLS handshake, certificate
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),  # closed before or while answering
    (aiohttp.ClientPayloadError, httpx.RemoteProtocolError),  # body cut short
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),  # not HTTP
    (aiohttp.ClientOSError, httpx.ReadError),  # reset on an open connection
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
    (aiohttp.NonHttpUrlClientError, httpx.UnsupportedProtocol),
    (aiohttp.ClientConnectionError, httpx.ReadError),
    (aiohttp.ClientError, httpx.TransportError),
)


def _httpx_error(error: aiohttp.ClientError, request: httpx.Request) -> httpx.TransportError:
    for aiohttp_class, httpx_class in _AIOHTTP_TO_HTTPX:
        if isinstance(error, aiohttp_class):
            return httpx_class(str(error) or type(error).__name__, request=request)
    return httpx.TransportError(str(error), request=request)  # pragma: no cover - the table ends with ClientError


@contextlib.contextmanager
def _mapped(request: httpx.Request) -> Iterator[None]:
    """aiohttp's errors as httpcore's would be (one place for the mapping)."""
    try:
        yield
    except aiohttp.ClientError as exc:
        raise _httpx_error(exc, request) from exc


async def _once(body: bytes) -> AsyncIterator[bytes]:
    # An iterable body: aiohttp warns about bytes over 1 MiB ("might lock the event loop"), which for
    # a 1.4 MB submit is a socket write it buffers either way. Content-Length is httpx's header.
    # The empty first chunk makes aiohttp send the headers on their own: it would otherwise join
    # them and the body into one more copy of the body (always on Python < 3.12.9, see its
    # http_writer.SKIP_WRITELINES), a 1 MiB copy per 1 MiB edit.
    yield b""
    yield body


async def _streamed(stream: httpx.AsyncByteStream) -> AsyncIterator[bytes]:
    # A body of known length given as chunks (an edit's multipart: the image is its own chunk) is
    # written chunk by chunk; ``request.aread()`` would join it into one more copy of the image.
    yield b""  # the headers on their own, as in _once
    async for chunk in stream:
        if chunk:
            yield chunk


class _ResponseStream(httpx.AsyncByteStream):
    """An aiohttp answer's body as httpx's stream."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        # Each piece as the event loop received it (readchunk), not iter_any's join of every piece
        # buffered since the last read: one copy less of most of a large answer, which httpx joins
        # once. The end is aiohttp's at_eof(), not readchunk's (b"", False): a 204 (an answer that
        # cannot have a body) gets aiohttp's one shared empty reader, which says (b"", False) once
        # per process and then (b"", True) without waiting, on which iter_chunks spun.
        content = self._response.content
        with _mapped(self._request):
            while True:
                chunk, _ = await content.readchunk()
                if chunk:
                    yield chunk
                elif content.at_eof():
                    return

    async def aclose(self) -> None:
        # Back to the pool when the body was read whole, closed otherwise.
        self._response.release()


_CLOSED = httpx.ByteStream(b"")


class _UnlinkingStream(httpx.AsyncByteStream):
    """A response's stream that, once closed, unlinks the response from httpx's wrapper of it."""

    def __init__(self, inner: httpx.AsyncByteStream, owner: httpx.Response) -> None:
        self._inner = inner
        self._owner = weakref.ref(owner)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._inner.__aiter__()  # the inner stream's own iterator: no layer per chunk

    async def aclose(self) -> None:
        await self._inner.aclose()
        owner = self._owner()
        if owner is not None:
            owner.stream = _CLOSED  # never read again: httpx checks ``is_closed`` first


class _Unlinked(httpx.AsyncBaseTransport):
    """``inner``, with each answer freed as soon as its caller drops it.

    ``httpx.AsyncClient`` wraps every response's stream in one that refers back to the response (to
    time it): a reference cycle, so the response, its read body (an answer of megabytes) and its
    request (an edit's upload, views of the client's input) waited for the garbage collector instead
    of going when the caller dropped them. Closing the answer now replaces the response's stream, which
    breaks the cycle. (``pixelgate serve`` raises the collector's threshold, :mod:`app.collector`: with
    the cycle, 1 MiB edits at c=1 then cost about 3 ms more each.)
    """

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        if isinstance(response.stream, httpx.AsyncByteStream):
            response.stream = _UnlinkingStream(response.stream, response)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """httpx requests sent on one aiohttp session (created at the first request, on the running loop)."""

    def __init__(self, max_connections: int) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, keepalive_timeout=KEEPALIVE_SECONDS, ssl=httpx.create_ssl_context()
            )
            # No cookie jar: an upstream's cookies must not follow one client's request into another's
            # (httpx's own jar is :class:`_NoCookies`).
            self._session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout", {})
        data: AsyncIterator[bytes] | None
        stream = request.stream
        if (
            isinstance(stream, httpx.AsyncByteStream)
            and not isinstance(stream, httpx.ByteStream)
            and ("content-length" in request.headers)
        ):
            data = _streamed(stream)
        else:  # bytes (read already: no copy), or a chunked upload of unknown length: as before
            body = await request.aread()
            data = _once(body) if body else None
        with _mapped(request):
            response = await self._open().request(
                request.method,
                str(request.url),
                headers=list(request.headers.multi_items()),
                data=data,
                allow_redirects=False,
                auto_decompress=False,  # httpx decodes, as it does on httpcore
                timeout=aiohttp.ClientTimeout(
                    connect=timeout.get("pool"), sock_connect=timeout.get("connect"), sock_read=timeout.get("read")
                ),
                server_hostname=request.extensions.get("sni_hostname"),
            )
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_ResponseStream(response, request),
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (response.reason or "").encode("latin-1")},
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class _NoCookies(http.cookiejar.CookieJar):
    """A jar that keeps nothing: the upstream client serves every client of the gateway, so a cookie an
    upstream (or a host named by a JSON edit's ``image_url``) sets on one request must not be sent
    with the next (httpx's client keeps cookies across requests by default)."""

    def extract_cookies(self, response: http.client.HTTPResponse, request: urllib.request.Request) -> None:
        return None

    def set_cookie(self, cookie: http.cookiejar.Cookie) -> None:
        return None


def _httpcore_transport(max_connections: int) -> httpx.AsyncBaseTransport:
    read_whole_chunks()
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections // 4)
    # An explicit transport: like aiohttp's, it takes no proxy from the environment (the fetch guard
    # sends each request to the address it checked).
    return httpx.AsyncHTTPTransport(limits=limits)


_TRANSPORTS: dict[UpstreamTransport, Callable[[int], httpx.AsyncBaseTransport]] = {
    "aiohttp": AiohttpTransport,
    "httpcore": _httpcore_transport,
}


def build_upstream_client(transport: UpstreamTransport, max_connections: int) -> httpx.AsyncClient:
    """The app's upstream client over ``transport``, at most ``max_connections`` open at once.

    Never follows redirects (the guarded fetch checks each hop), keeps no cookies, frees each answer
    once closed; close it with ``aclose()``.
    """
    return httpx.AsyncClient(
        transport=_Unlinked(_TRANSPORTS[transport](max_connections)),
        cookies=_NoCookies(),
        timeout=UPSTREAM_TIMEOUT,
        follow_redirects=False,
    )


def read_whole_chunks() -> None:
    """Let httpcore take each chunk the event loop received whole (process-wide; idempotent).

    httpcore asks for at most 64 KiB per read; anyio then cuts every 256 KiB chunk that uvloop
    delivered and queues the rest again, a copy of the remainder per cut. For 2-3 MB image answers
    that multiplied the short-lived allocations: a client doing 8 such downloads at once peaked at
    214 MiB RSS, 107 MiB with whole chunks (measured), at the same CPU.
    """
    http11 = httpcore.AsyncHTTP11Connection
    http11.READ_NUM_BYTES = max(http11.READ_NUM_BYTES, UPSTREAM_READ_BYTES)
