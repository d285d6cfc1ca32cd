"""The fake fal's status stream: ``GET .../requests/{id}/status/stream`` as server-sent events.

The shape follows the fal reference (section 2.2) and fal-js's ``FalStream`` reader: an HTTP 200
``text/event-stream`` whose events are ``data: <status object>`` (no event name; fal-js ignores
names), one per status change, the current status first, closed after COMPLETED. The reference does
not confirm the first event, the close after COMPLETED, event names or keep-alive comments; the fake
picks the reading above and sends ``: keep-alive`` comments only when ``fake.stream_keepalive_seconds``
is set.

Failure modes, per job through its scenario: ``stream_drop`` (the connection is cut after the first
event, mid-stream), ``stream_end`` (the stream ends cleanly after the first event, before COMPLETED),
``stream_404`` (the stream endpoint answers 404, the status endpoint works), each with the job's
latency as ARG (``[fake:stream_drop:60]``); ``fake.status_stream = False`` answers every stream
request 405.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

from starlette.types import Receive, Scope, Send

if TYPE_CHECKING:
    from tests.fakes.fake_fal import FakeFal, _Job


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class StatusStream:
    """One job's status stream (an ASGI response), from the moment it is opened to COMPLETED."""

    def __init__(self, fake: FakeFal, job: _Job) -> None:
        self.fake = fake
        self.job = job

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fake, job = self.fake, self.job
        headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-fal-request-id", job.request_id.encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        gone = asyncio.create_task(_disconnected(receive))
        fake.open_streams += 1
        try:
            sent = None
            while not gone.done():
                body = fake.status_body(job)
                if body["status"] != sent:
                    sent = body["status"]
                    event = f"data: {json.dumps(body)}\n\n".encode()
                    await send({"type": "http.response.body", "body": event, "more_body": True})
                    if sent == "COMPLETED" or job.scenario == "stream_end":
                        break
                    if job.scenario == "stream_drop":
                        raise ConnectionResetError("fake fal: status stream cut on purpose")
                elif fake.stream_keepalive_seconds is not None:
                    await send({"type": "http.response.body", "body": b": keep-alive\n\n", "more_body": True})
                await self._next_change(gone)
            if not gone.done():
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            gone.cancel()
            fake.open_streams -= 1

    async def _next_change(self, gone: asyncio.Task[None]) -> None:
        """Until the job's state may have changed (its next step, a finish or cancel), a keep-alive
        is due, or the client left."""
        job = self.job
        job.changed.clear()
        timeouts = [t for t in (self.fake.next_change_in(job), self.fake.stream_keepalive_seconds) if t is not None]
        changed = asyncio.create_task(job.changed.wait())
        timeout = min(timeouts, default=None)
        try:
            await asyncio.wait({changed, gone}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            changed.cancel()
