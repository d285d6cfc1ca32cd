"""fal's queue protocol: submit a job, wait for it, read its result, cancel it.

Submit goes to ``{base_url}/{endpoint_id}``. Status, result and cancel go to the
``status_url``/``response_url``/``cancel_url`` fal returns, never rebuilt: fal drops the endpoint's
sub-path from them (``fal-ai/flux-pro/kontext`` -> ``fal-ai/flux-pro/requests/<id>``). Those URLs
carry the API key, so they must share ``base_url``'s origin; anything else is refused as a bad
response rather than followed.

The status answers HTTP 202 while IN_QUEUE/IN_PROGRESS and 200 once COMPLETED; a COMPLETED
status with ``error``/``error_type`` is a failure (there is no FAILED state). Polling starts after
tens of milliseconds and backs off to at most ``poll_max_seconds``, so a fast job gains little
latency and a slow one costs few requests.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

import httpx
from pydantic import BaseModel, ConfigDict, JsonValue

from providers.fal.errors import bad_response, error_from_job, parse_model, parse_object
from providers.fal.submit_body import encode_json
from providers.fal.transport import FalHttp
from providers.toolkit.chunked_body import ChunkedBody


class QueueHandle(BaseModel):
    """What a submit returns that the rest of the job needs."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    request_id: str
    status_url: str
    response_url: str
    cancel_url: str


class QueueStatus(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    status: Literal["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]
    queue_position: int | None = None
    error: str | None = None
    error_type: str | None = None

    @property
    def failed(self) -> bool:
        return self.status == "COMPLETED" and (self.error is not None or self.error_type is not None)


@dataclass
class FalQueue:
    """One fal account's queue. Every method raises ``core.errors`` (see :mod:`providers.fal.errors`)."""

    http: FalHttp
    base_url: str
    poll_initial_seconds: float = 0.02
    poll_max_seconds: float = 1.0

    def owns(self, handle: QueueHandle) -> bool:
        """Whether every URL of ``handle`` is on ``base_url``'s origin (they carry the API key)."""
        return all(self._same_origin(u) for u in (handle.status_url, handle.response_url, handle.cancel_url))

    def _same_origin(self, url: str) -> bool:
        try:
            target, base = httpx.URL(url), httpx.URL(self.base_url)
        except httpx.InvalidURL:
            return False
        return (target.scheme, target.host, target.port) == (base.scheme, base.host, base.port)

    async def submit(self, endpoint_id: str, payload: dict[str, JsonValue] | ChunkedBody) -> QueueHandle:
        """Queue ``payload`` (or its JSON, already encoded) for ``endpoint_id``; the handle to follow the job."""
        url = f"{self.base_url.rstrip('/')}/{endpoint_id.strip('/')}"
        body = payload if isinstance(payload, ChunkedBody) else ChunkedBody([encode_json(payload)])
        response = await self.http.send(
            "POST", url, phase="submit", endpoint_id=endpoint_id, content=body, content_type="application/json"
        )
        handle = parse_model(response, QueueHandle, "submit response")
        if not self.owns(handle):
            raise bad_response("submit response (job URLs on another host)")
        return handle

    async def status(self, handle: QueueHandle, endpoint_id: str) -> QueueStatus:
        response = await self.http.send("GET", handle.status_url, phase="status", endpoint_id=endpoint_id)
        return parse_model(response, QueueStatus, "status response")

    async def wait(self, handle: QueueHandle, endpoint_id: str) -> QueueStatus:
        """Poll until COMPLETED; returns that status (which may carry an error).

        Polls are due at fixed offsets from the call (0.02, 0.06, 0.14, 0.30, 0.62 s ... with the
        defaults), not after each answer: under load a status round trip takes longer, and adding
        it to every later delay would detect a job's completion later the busier the gateway is
        (a fan-out of eight calls detected a 500 ms job about 100 ms later than a single call).
        """
        loop = asyncio.get_running_loop()
        due = loop.time()
        delay = self.poll_initial_seconds
        while True:
            # A poll overdue after a stall goes out at once, and the schedule restarts from it
            # rather than catching up with a burst.
            due = max(due + delay, loop.time())
            await asyncio.sleep(due - loop.time())
            current = await self.status(handle, endpoint_id)
            if current.status == "COMPLETED":
                return current
            delay = min(self.poll_max_seconds, delay * 2)

    async def result(self, handle: QueueHandle, endpoint_id: str, completed: QueueStatus) -> dict[str, JsonValue]:
        """The job's output object. For a failed job, the error fal gives for it is raised.

        fal answers a failed job's result GET with the job's error status and body (a 422 with
        the validation detail, say), which says more than the status' ``error`` string; the
        status is the fallback when that GET succeeds anyway.
        """
        response = await self.http.send("GET", handle.response_url, phase="result", endpoint_id=endpoint_id)
        if completed.failed:
            raise error_from_job(completed.error, completed.error_type, self.http.api_key)
        return parse_object(response, "result")

    async def cancel(self, handle: QueueHandle) -> None:
        """Ask fal to drop the job: best effort, one try, never raises (except cancellation)."""
        try:
            await self.http.client.put(handle.cancel_url, headers=self.http.auth_headers, timeout=self.http.timeout)
        except httpx.HTTPError:
            return
