"""uvicorn's httptools protocol with bounds on the request head and on what is read after an answer.

Three things uvicorn (with httptools) leaves unbounded, bounded here, at the protocol where the
bytes arrive:

- **The head's size.** httptools accumulates a header value, or the request target, however long
  it grows, and hands it over only when it is complete: a client streaming one header for 30 s had
  145 MiB accepted while ``/healthz`` stalled. :class:`HeadLimits` bounds the request line, each
  header line, the number of headers and the whole head; a request over any of them is answered
  431 in the OpenAI error shape (code ``request_header_too_large``) and its connection is closed.
  (uvicorn's h11 protocol has a 16 KiB bound of its own; httptools has none.)
- **The head's time.** A head that trickles in or stops halfway would hold its connection forever
  (slowloris): the head must arrive within ``head_timeout_seconds`` of the connection opening or
  of the request beginning, or the connection is closed. The body has its own deadlines
  (:mod:`app.body_timeout`).
- **The body read after an early answer.** The gateway answers a request it refuses (413 for an
  oversized upload, 503 when overloaded, 401...) as soon as it knows, without reading the rest of
  the body. The SDKs send their whole body before reading the answer, so the rest is read and
  discarded, up to :data:`DRAIN_BYTES` within :data:`DRAIN_SECONDS`, and then the connection can
  carry the next request. Past either bound the connection is closed. (uvicorn already discards
  such bytes, but with no bound: each arriving chunk even cancels its keep-alive timer.)

Closing a connection while the client still sends makes the kernel reset it, and a reset can
destroy the answer before the client reads it; so a refused head is answered, the sending side of
the connection shut (the client reads the answer and the end), and what still arrives discarded
within the same bounds before the close.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from app.context import REQUEST_ID_HEADER
from core.errors import GatewayError, InvalidRequestError, RequestHeaderTooLargeError

DRAIN_BYTES = 64 * 1024 * 1024
DRAIN_SECONDS = 5.0


@dataclass(frozen=True)
class HeadLimits:
    """Bounds on a request head, in bytes (``max_fields``: a count). The defaults are those of common
    servers (8 KiB lines as nginx and Apache; 100 headers as Apache), well above what the SDKs send."""

    max_line_bytes: int = 8 * 1024
    """The request target (path and query)."""
    max_field_bytes: int = 8 * 1024
    """One header: name and value."""
    max_head_bytes: int = 64 * 1024
    """The whole head, from the request line to the blank line."""
    max_fields: int = 100


class _HeadRefused(Exception):
    """Raised inside a parser callback to stop the parse; httptools wraps it in a callback error."""


class _GuardedProtocol(HttpToolsProtocol):
    head_timeout_seconds: float = 30.0
    head_limits: HeadLimits = HeadLimits()
    drain_bytes: int = DRAIN_BYTES
    drain_seconds: float = DRAIN_SECONDS

    _head_timer: asyncio.TimerHandle | None = None
    _in_head = True
    """Bytes arriving now belong to a request head (until its headers are complete)."""
    _head_bytes = 0
    _line_bytes = 0
    _fields = 0
    _refusal: GatewayError | None = None
    _draining = False
    _drained = 0
    _drain_timer: asyncio.TimerHandle | None = None

    # -- connection ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        self._stop_draining()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refusal is not None:  # answered: only discarding until the close
            self._discard(len(data))
            return
        if not self._in_head:
            self._feed(data)
            return
        # Feed at most what the head may still grow by: a head not complete by then is too large,
        # and httptools never gets to buffer more of it.
        allowance = self.head_limits.max_head_bytes - self._head_bytes
        head, rest = data[:allowance], data[allowance:]
        self._head_bytes += len(head)
        if head:
            self._feed(head)
        if not rest or self._refusal is not None or self.transport.is_closing():
            return
        if self.transport.get_protocol() is not self:  # upgraded to a WebSocket: the rest is not ours
            return
        if self._in_head:
            limit = self.head_limits.max_head_bytes
            self._refuse(RequestHeaderTooLargeError(f"the request head is larger than {limit} bytes"))
            return
        self._feed(rest)

    def _feed(self, data: bytes) -> None:
        """uvicorn's ``data_received``, answering what the parser refuses in the OpenAI error shape."""
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserError:
            # Either one of our callbacks stopped the parse (the refusal is set), or the bytes are not HTTP.
            if self._refusal is None:
                self._refusal = InvalidRequestError("the request is not valid HTTP/1.1", code="invalid_http_request")
            self._answer_refusal()

    # -- parser callbacks ----------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_head_timer()  # the next request on a kept-alive connection
        self._unset_keepalive_if_required()  # a keep-alive timer armed after a drain: the head deadline rules now

    def on_url(self, url: bytes) -> None:
        self._line_bytes += len(url)
        if self._line_bytes > self.head_limits.max_line_bytes:
            self._stop_parse(
                RequestHeaderTooLargeError(f"the request line is longer than {self.head_limits.max_line_bytes} bytes")
            )
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields += 1
        if self._fields > self.head_limits.max_fields:
            self._stop_parse(RequestHeaderTooLargeError(f"more than {self.head_limits.max_fields} request headers"))
        if len(name) + len(value) > self.head_limits.max_field_bytes:
            shown = name[:64].decode("latin-1")
            self._stop_parse(
                RequestHeaderTooLargeError(
                    f"the request header '{shown}' is longer than {self.head_limits.max_field_bytes} bytes"
                )
            )
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._cancel_head_timer()
        self._in_head = False
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._draining:
            self._discard(len(body))
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._enter_head()
        if self._draining:
            # The rest of the body is read: the connection can carry the next request. uvicorn
            # armed its keep-alive timer when the answer completed, and the arriving body cancelled it.
            self._stop_draining()
            self._unset_keepalive_if_required()
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    def on_response_complete(self) -> None:
        super().on_response_complete()
        cycle = self.cycle  # with pipelining, possibly a later request's, still unanswered: not drained
        if cycle is not None and cycle.response_complete and cycle.more_body and not self.transport.is_closing():
            # Answered before the body was read to its end (a 413, a 503...): discard the rest.
            self._draining = True
            self._drained = 0
            self._drain_timer = self.loop.call_later(self.drain_seconds, self._close)

    # -- internals -----------------------------------------------------------------------------

    def _enter_head(self) -> None:
        self._in_head = True
        self._head_bytes = self._line_bytes = self._fields = 0

    def _stop_parse(self, refusal: GatewayError) -> None:
        self._refusal = refusal
        raise _HeadRefused

    def _refuse(self, refusal: GatewayError) -> None:
        self._refusal = refusal
        self._answer_refusal()

    def _answer_refusal(self) -> None:
        """Answer the refused request, then discard what still arrives (bounded) before closing."""
        refusal = self._refusal
        assert refusal is not None
        self._cancel_head_timer()
        self.logger.warning("refused a request: %s", refusal.message)
        if self.cycle is not None and not self.cycle.response_complete:
            # A request on this connection is still being served (the bytes broke HTTP in its body,
            # or a pipelined head came in): an answer now would interleave with its response.
            self.transport.close()
            return
        body = orjson.dumps(refusal.to_body())
        headers = {
            **refusal.response_headers(),
            "content-type": "application/json",
            "content-length": str(len(body)),
            "connection": "close",
            REQUEST_ID_HEADER: "req_" + secrets.token_hex(12),
        }
        head = [STATUS_LINE[refusal.status_code]]
        encoded = [(name.encode(), value.encode()) for name, value in headers.items()]
        for name, value in [*self.server_state.default_headers, *encoded]:
            head.extend([name, b": ", value, b"\r\n"])
        self.transport.write(b"".join([*head, b"\r\n", body]))
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the client reads the answer, then the end of the stream
        self._drained = 0
        self._drain_timer = self.loop.call_later(self.drain_seconds, self._close)

    def _discard(self, size: int) -> None:
        self._drained += size
        if self._drained > self.drain_bytes:
            self._close()

    def _close(self) -> None:
        self._stop_draining()
        if not self.transport.is_closing():
            self.transport.close()

    def _stop_draining(self) -> None:
        self._draining = False
        if self._drain_timer is not None:
            self._drain_timer.cancel()
            self._drain_timer = None

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout_seconds, self._head_expired)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_expired(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def guarded_protocol(
    head_timeout_seconds: float,
    head_limits: HeadLimits | None = None,
    *,
    drain_bytes: int = DRAIN_BYTES,
    drain_seconds: float = DRAIN_SECONDS,
) -> type[asyncio.Protocol]:
    """An httptools protocol class for ``uvicorn.Config(http=...)`` with the bounds of the module docstring."""
    attributes = {
        "head_timeout_seconds": head_timeout_seconds,
        "head_limits": head_limits or HeadLimits(),
        "drain_bytes": drain_bytes,
        "drain_seconds": drain_seconds,
    }
    return type("GuardedHttpProtocol", (_GuardedProtocol,), attributes)
