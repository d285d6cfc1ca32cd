"""Graceful shutdown: what happens to requests still running when the server stops.

On SIGTERM uvicorn closes the listening socket (new connections are refused), lets the requests in
flight finish for ``PIXELGATE_DRAIN_TIMEOUT_SECONDS`` (its ``timeout_graceful_shutdown``, set by
``pixelgate serve``), then cancels the rest and runs the lifespan's shutdown. This module makes
the cancelled ones end properly:

- a request cancelled before its answer started gets a 503 in the OpenAI shape (code
  ``shutting_down``, ``retry-after: 1``), not uvicorn's plain-text 500, so the SDKs retry it
  elsewhere;
- its upstream work is cancelled with it (``_until_disconnect`` waits for the work's own cleanup,
  e.g. fal's cancel call);
- the lifespan waits (bounded) for those requests to finish before it closes the HTTP client the
  cleanup still needs (:meth:`InFlight.settle`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.handlers import error_response
from core.errors import ServiceUnavailableError


class StopNotice:
    """Set when the server is told to stop (SIGTERM, Ctrl-C), before the drain begins.

    uvicorn runs the lifespan's shutdown only after the drain; what starts work on its own (the
    async-job runner claiming jobs) reads :attr:`stopping` to start nothing new meanwhile.
    ``pixelgate serve`` sets it from its signal handler (:func:`app.cli.main`); a plain bool, so
    setting it from a signal handler is safe.
    """

    def __init__(self) -> None:
        self.stopping = False

    def notify(self) -> None:
        self.stopping = True


class InFlight:
    """The requests being served right now (their tasks)."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()

    async def settle(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the requests still running to end (after a cancel)."""
        pending = {task for task in self.tasks if not task.done()}
        if pending:
            await asyncio.wait(pending, timeout=timeout)


class ShutdownGuard:
    """Records each request in :class:`InFlight`; answers 503 for one the server cancels unanswered."""

    def __init__(self, app: ASGIApp, inflight: InFlight) -> None:
        self.app = app
        self.inflight = inflight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        task = asyncio.current_task()
        assert task is not None
        self.inflight.tasks.add(task)
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except asyncio.CancelledError:
            # Only the server cancels a request task (a client that leaves is an http.disconnect
            # message), and it does so when the drain timeout is over.
            if started:
                raise
            task.uncancel()
            await error_response(
                ServiceUnavailableError(
                    "the gateway is shutting down and could not finish this request; retry it",
                    code="shutting_down",
                    headers={"retry-after": "1", "connection": "close"},
                )
            )(scope, receive, send)
        finally:
            self.inflight.tasks.discard(task)
