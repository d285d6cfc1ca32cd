"""uvicorn's httptools protocol with a deadline for the request head.

uvicorn times out idle keep-alive connections but not a request whose head (request line and
headers) trickles in or stops halfway: such a connection would stay open forever, and enough of
them exhaust the server's file descriptors (slowloris). :func:`header_deadline_protocol` returns a
protocol class that closes a connection whose head has not arrived ``seconds`` after the connection
opened or the request began. The body has its own limits (:mod:`app.body_timeout`).
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class _HeadDeadlineProtocol(HttpToolsProtocol):
    head_timeout_seconds: float = 30.0
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_head_timer()  # the next request on a kept-alive connection

    def on_headers_complete(self) -> None:
        self._cancel_head_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

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


def header_deadline_protocol(seconds: float) -> type[asyncio.Protocol]:
    """An httptools protocol class (for ``uvicorn.Config(http=...)``) with a ``seconds`` head deadline."""
    return type("HeadDeadlineProtocol", (_HeadDeadlineProtocol,), {"head_timeout_seconds": seconds})
