"""Deadlines on reading a request body, so a slow or stalled upload cannot hold a request forever.

uvicorn has no read timeout for a request body: a client that sends its headers and then trickles
(or stops sending) the body keeps the request, and every buffer it filled, alive indefinitely.
:class:`BodyDeadlineGuard` bounds the wait for each body chunk (``idle_seconds`` without a
byte) and for the whole body (``total_seconds`` from the first read). Past either, the read raises
:class:`~core.errors.RequestTimeoutError`, which the one error handler renders as a 408 in the
OpenAI shape. Once the body is complete, later ``receive`` calls (disconnect watching) are untouched.
"""

from __future__ import annotations

import asyncio
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import RequestTimeoutError


class BodyDeadlineGuard:
    def __init__(self, app: ASGIApp, *, idle_seconds: float, total_seconds: float) -> None:
        self.app = app
        self.idle_seconds = idle_seconds
        self.total_seconds = total_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_done = False
        deadline: float | None = None

        async def receive_within_deadlines() -> Message:
            nonlocal body_done, deadline
            if body_done:
                return await receive()
            now = time.monotonic()
            if deadline is None:
                deadline = now + self.total_seconds
            wait = min(self.idle_seconds, deadline - now)
            try:
                async with asyncio.timeout(max(0.0, wait)):
                    message = await receive()
            except TimeoutError:
                body_done = True  # the body is abandoned: later reads (draining, disconnect) wait normally
                which = "total" if wait < self.idle_seconds else "idle"
                raise RequestTimeoutError(
                    f"the request body arrived too slowly ({which} limit: "
                    f"{self.total_seconds if which == 'total' else self.idle_seconds:g} s)"
                ) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        await self.app(scope, receive_within_deadlines, send)
