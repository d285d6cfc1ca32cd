"""Following a fal queue job through its status stream instead of polling its status.

The protocol (fal reference, section 2.2): ``GET {status_url}/stream?logs=0`` answers server-sent
events, one per status change until COMPLETED, each event's data a status object as the status
endpoint returns it (``IN_QUEUE``/``IN_PROGRESS``/``COMPLETED``, the last one with ``error`` and
``error_type`` when the job failed). One request per job, and the gateway hears of a completion
when fal does instead of at its next poll.

Not confirmed by the reference, so not relied on:

- the event names (fal-js's ``FalStream`` parses every event's ``data`` as JSON and ignores names;
  so does :func:`event_data`), keep-alive comments (skipped if sent), and the status code (any 2xx
  answered as ``text/event-stream`` is followed);
- whether fal sends the current status as the stream opens, and whether it closes the stream after
  COMPLETED (this module stops reading at the first COMPLETED either way);
- how long fal keeps a stream open without an event: the provider's read timeout bounds the wait
  between events, after which the job is polled.

fal-js itself calls status streaming experimental and polls by default, so :func:`follow_status`
never raises for the stream's own failures: a stream that is refused (404, 405, any non-2xx, not an
event stream), cut, ended or stalled before COMPLETED, or that carries something other than a status
object just ends without a COMPLETED status, and the caller polls the same job (no second submit).
A job fal does not know, or a key it refuses, then fails through the poll's own error mapping.
Cancellation propagates and closes the stream's connection.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing

import httpx
from pydantic import ValidationError

from providers.fal.queue import FalQueue, QueueHandle, QueueStatus
from providers.fal.transport import FalHttp

log = logging.getLogger("pixelgate.fal")

EVENT_STREAM = "text/event-stream"


def stream_url(status_url: str) -> str:
    """``{status_url}/stream`` (fal's status URL plus ``/stream``, its query kept) with ``logs=0``."""
    url = httpx.URL(status_url)
    return str(url.copy_with(path=url.path.rstrip("/") + "/stream").copy_merge_params({"logs": "0"}))


async def event_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """The ``data`` of each server-sent event in ``lines`` (its ``data:`` lines joined by newlines).

    Comments (``:`` lines, keep-alives) and the ``event``/``id``/``retry`` fields are skipped. An
    event is dispatched at the blank line that ends it; one still open when the stream ends is
    dispatched too (the SSE spec drops it, but a server that closes right after its last ``data:``
    line would otherwise lose the COMPLETED status it just sent).
    """
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if name == "data":
            data.append(value.removeprefix(" "))
    if data:
        yield "\n".join(data)


async def follow_status(http: FalHttp, status_url: str) -> AsyncGenerator[QueueStatus]:
    """Each status the stream of the job at ``status_url`` carries, ending after the first COMPLETED.

    Ends early (without COMPLETED) when the stream is unavailable or breaks; see the module docstring.
    Close it (``contextlib.aclosing``) if you stop iterating before it ends.
    """
    url = stream_url(status_url)
    headers = {**http.auth_headers, "Accept": EVENT_STREAM}
    try:
        async with http.client.stream("GET", url, headers=headers, timeout=http.timeout) as response:
            content_type = response.headers.get("content-type", "")
            if not response.is_success or not content_type.startswith(EVENT_STREAM):
                log.info("fal status stream refused (HTTP %s, %r); polling", response.status_code, content_type)
                return
            async for data in event_data(response.aiter_lines()):
                status = QueueStatus.model_validate_json(data)
                yield status
                if status.status == "COMPLETED":
                    return
            log.info("fal status stream ended before COMPLETED; polling")
    except httpx.HTTPError as exc:
        log.info("fal status stream failed (%s); polling", type(exc).__name__)
    except ValidationError:
        log.info("fal status stream carried something other than a status object; polling")


async def wait_for_completion(queue: FalQueue, handle: QueueHandle, endpoint_id: str, *, stream: bool) -> QueueStatus:
    """The job's COMPLETED status (which may carry an error): from its status stream when ``stream``,
    else, or once the stream ended without it, by polling (:meth:`FalQueue.wait`)."""
    if stream:
        async with aclosing(follow_status(queue.http, handle.status_url)) as updates:
            async for current in updates:
                if current.status == "COMPLETED":
                    return current
    return await queue.wait(handle, endpoint_id)
