"""``stream=true``: an edit or a generation answered as OpenAI's image stream (server-sent events).

What the official SDKs' ``stream=True`` iterators read (the wire contract, sections 1.5 and 3.6):
frames ``event: <type>\\ndata: <json>\\n\\n``, the JSON's ``type`` naming the event. An
:class:`EventStream` sends, with status 200 and ``content-type: text/event-stream``:

- while the images are being made, a comment ``: keep-alive`` every ``PIXELGATE_STREAM_KEEPALIVE_SECONDS``,
  so that a proxy's idle timeout does not cut a stream whose image takes minutes (SSE parsers skip
  comments);
- as they arrive, the partial images an upstream streams (``partial_images`` 1-3 on a model whose
  table lists it: OpenAI's gpt-image models) as ``image_edit.partial_image`` /
  ``image_generation.partial_image`` events with ``b64_json``, ``partial_image_index``,
  ``created_at``, ``size``, ``quality``, ``background`` and ``output_format``, passed on as the
  upstream made them (no size or format emulation: they are previews);
- then one ``image_edit.completed`` / ``image_generation.completed`` event per image, in order, always
  with ``b64_json`` (OpenAI's stream carries base64 whatever ``response_format`` says), ``created_at``,
  ``size``, ``quality``, ``background``, ``output_format`` and ``usage``; plus pixelgate's ``seed``,
  ``revised_prompt`` and ``metadata`` (the SDKs keep keys they do not know);
- or, when the work fails, one ``error`` event, ``{"type": "error", "error": <the OpenAI error
  object>}``, which both SDKs raise as ``APIError``; then the stream ends. Partial images sent before
  the failure stay sent; so do those of a deployment that failed before another one served (routing
  fails over after the previews of the failed attempt reached the client; they are previews).

Errors found before the stream starts (validation, auth, model, budget, rate limits, planning) stay
ordinary JSON answers with their status: the image route makes an :class:`EventStream` only once the
request is planned and its budget held. The work is the very awaitable the JSON answer awaits (the
route's call of ``Gateway.execute``, which settles the budget and notes the ledger's outcome, given
:meth:`Previews.add` as its ``on_partial``); this module runs it in a task beside the keep-alives and
renders what it gives. A client that leaves cancels the task, and with it the upstream jobs, as on
the JSON path; so does the server at the end of its shutdown drain.

A model whose upstream streams no partial images answers ``partial_images`` with the final images
only, and says so in the warning header (the engine's warning).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson
from fastapi.responses import Response
from pydantic import JsonValue
from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope, Send

from app.context import RequestContext
from app.handlers import internal_error_response
from app.idempotency import HEADER as IDEMPOTENCY_HEADER
from core.errors import GatewayError, InvalidRequestError
from normalization.catalog import Mode
from normalization.request import ImageRequest
from normalization.response import ImagesResponse
from providers.base import PartialImage

log = logging.getLogger("pixelgate")

KEEPALIVE = b": keep-alive\n\n"
CANCEL_WAIT_SECONDS = 5.0
"""How long a stream whose client left waits for its work to cancel its upstream jobs."""
EVENT_QUALITIES = frozenset({"low", "medium", "high", "auto"})
EVENT_BACKGROUNDS = frozenset({"transparent", "opaque", "auto"})
ZERO_USAGE: dict[str, JsonValue] = {
    "total_tokens": 0,
    "input_tokens": 0,
    "output_tokens": 0,
    "input_tokens_details": {"text_tokens": 0, "image_tokens": 0},
}
"""``usage`` is required in a completed event (``ImagesUsage``); pixelgate's providers bill per image,
not per token, so every count is 0. The cost is in ``metadata.cost_usd``."""


def planned_request(request: ImageRequest, headers: Headers) -> ImageRequest:
    """What to plan for a streamed ``request``: images inline (the events carry base64). ``stream``
    and ``partial_images`` stay: the engine asks an upstream that streams partial images for them
    (and sends no ``stream`` field otherwise).

    Raises a 400 naming ``stream`` when the request carries an ``Idempotency-Key``: a kept answer is a
    JSON body and its replay would not be the stream the client asked for, while ignoring the key
    would let a retry pay for a second image. A client that wants retries to be safe sends without
    ``stream``.
    """
    if IDEMPOTENCY_HEADER in headers:
        raise InvalidRequestError(
            "stream=true cannot be combined with an Idempotency-Key header: send one or the other",
            param="stream",
            code="unsupported_parameter",
        )
    return request.model_copy(update={"response_format": "b64_json"})


class Previews:
    """The partial images of one streamed request, on their way from the upstream calls to the stream.

    :meth:`add` is the pipeline's ``on_partial``: it queues and returns at once (an upstream's stream
    is never held up by a slow client; a request streams at most 3 partials per call). The stream
    reads them in arrival order, then :data:`DONE` once the work has ended (:meth:`close`).
    """

    def __init__(self) -> None:
        self._queue: asyncio.Queue[PartialImage | _Done] = asyncio.Queue()

    def add(self, partial: PartialImage) -> None:
        self._queue.put_nowait(partial)

    def close(self) -> None:
        """The work ended: nothing follows what is queued."""
        self._queue.put_nowait(DONE)

    async def next(self) -> PartialImage | _Done:
        return await self._queue.get()


class _Done:
    """The end of a :class:`Previews` queue."""


DONE: Final = _Done()


@dataclass(frozen=True)
class EventShape:
    """What the events say beside each image: their type prefix and the request's quality and background."""

    prefix: str
    quality: str
    background: str
    output_format: str = "png"
    """What a partial image's event says when its upstream did not say its format."""

    @classmethod
    def of(cls, mode: Mode, request: ImageRequest) -> EventShape:
        """``quality``/``background`` as the request asked when OpenAI's event enums have the value, else ``auto``."""
        quality = request.quality if request.quality in EVENT_QUALITIES else "auto"
        background = request.background if request.background in EVENT_BACKGROUNDS else "auto"
        prefix = "image_edit" if mode == "edit" else "image_generation"
        return cls(
            prefix=prefix,
            quality=quality or "auto",
            background=background or "auto",
            output_format=request.output_format or "png",
        )


class EventStream(Response):
    """A ``stream=true`` answer: keep-alives and partial images while ``work`` runs, then its images as
    events (see the module).

    ``work`` starts at once, in its own task, so that whatever happens to this response (even never
    being sent) the work ends and settles what it holds. ``previews``: where ``work`` puts the
    partial images it is told (None: it streams none).
    """

    def __init__(
        self,
        work: Coroutine[Any, Any, ImagesResponse],
        shape: EventShape,
        *,
        context: RequestContext,
        keepalive_seconds: float,
        headers: Mapping[str, str],
        previews: Previews | None = None,
    ) -> None:
        stream_headers = {**headers, "cache-control": "no-cache", "x-accel-buffering": "no"}
        super().__init__(None, 200, stream_headers, "text/event-stream")
        del self.headers["content-length"]  # the length is unknown: the server sends the body chunked
        self._previews = previews or Previews()
        self._job: asyncio.Task[ImagesResponse] = asyncio.ensure_future(work)
        self._job.add_done_callback(_retrieve)
        # Queued after every partial the work added (they were added while it ran).
        self._job.add_done_callback(lambda _: self._previews.close())
        self._shape = shape
        self._context = context
        self._keepalive = keepalive_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        job = self._job
        gone = asyncio.ensure_future(_disconnected(receive))
        waiting: asyncio.Future[PartialImage | _Done] | None = None
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            while True:
                waiting = asyncio.ensure_future(self._previews.next())
                await asyncio.wait({waiting, gone}, timeout=self._keepalive, return_when=asyncio.FIRST_COMPLETED)
                if not waiting.done():
                    waiting.cancel()  # an item it had not taken yet stays queued for the next wait
                    if gone.done():
                        return  # the finally cancels the work, as a JSON request's disconnect does
                    await send({"type": "http.response.body", "body": KEEPALIVE, "more_body": True})
                    continue
                item = waiting.result()
                if isinstance(item, _Done):
                    break
                if gone.done():
                    return
                await send({"type": "http.response.body", "body": partial_frame(item, self._shape), "more_body": True})
            self._context.slot.close()  # the images are made: sending them to a slow reader needs no slot
            for chunk in self._frames(job):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            gone.cancel()
            if waiting is not None:
                waiting.cancel()
            if not job.done():
                job.cancel()
                # Let the work cancel its upstream jobs (fal's cancel call) before the request ends.
                await asyncio.wait({job}, timeout=CANCEL_WAIT_SECONDS)

    def _frames(self, job: asyncio.Task[ImagesResponse]) -> list[bytes | memoryview]:
        """The finished work as frames: its completed events, or one error event (noted for the ledger)."""
        try:
            return completed_frames(job.result(), self._shape)
        except GatewayError as exc:
            body: dict[str, object] = {**exc.to_body()}
            self._context.outcome.stream_error = (exc.status_code, exc.code)
        except Exception:
            log.exception("unhandled error in a streamed request")
            # The same OpenAI-shaped 500 body a JSON answer gets, nothing internal revealed.
            body = orjson.loads(bytes(internal_error_response().body))
            self._context.outcome.stream_error = (500, None)
        return [_frame("error", {"type": "error", **body})]


def completed_frames(result: ImagesResponse, shape: EventShape) -> list[bytes | memoryview]:
    """One completed event per image, as chunks to send in order; each image's base64 is its own chunk,
    made once and never copied into a larger one (see :meth:`ImagesResponse.wire_chunks`)."""
    event = f"{shape.prefix}.completed"
    metadata = result.metadata.model_dump(mode="json")
    chunks: list[bytes | memoryview] = []
    for image in result.data:
        b64 = image.base64()
        if b64 is None:  # planned_request asked for b64_json: a hosted image here is a bug
            raise RuntimeError("a streamed answer holds an image without its bytes")
        head: dict[str, JsonValue] = {
            "type": event,
            "created_at": result.created,
            "size": result.size,
            "quality": shape.quality,
            "background": shape.background,
            "output_format": result.output_format,
            "usage": ZERO_USAGE,
        }
        if image.seed is not None:
            head["seed"] = image.seed
        if image.revised_prompt is not None:
            head["revised_prompt"] = image.revised_prompt
        head["metadata"] = metadata
        chunks += [
            b"event: " + event.encode() + b"\ndata: " + orjson.dumps(head)[:-1] + b',"b64_json":"',
            b64,  # base64 needs no JSON escaping
            b'"}\n\n',
        ]
    return chunks


def partial_frame(partial: PartialImage, shape: EventShape) -> bytes:
    """One ``*.partial_image`` event (the wire contract, section 1.5). The upstream's base64 is
    serialized as JSON, not spliced in: it is passed on unchecked."""
    event = f"{shape.prefix}.partial_image"
    data: dict[str, JsonValue] = {
        "type": event,
        "b64_json": partial.b64_json,
        "partial_image_index": partial.index,
        "created_at": int(time.time()),
        "size": partial.size or "auto",
        "quality": shape.quality,
        "background": shape.background,
        "output_format": partial.output_format or shape.output_format,
    }
    return _frame(event, data)


def _frame(event: str, data: Mapping[str, object]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _retrieve(job: asyncio.Task[ImagesResponse]) -> None:
    """Mark a failure as seen: a stream whose client left renders none (asyncio would log it as lost)."""
    if not job.cancelled():
        job.exception()


async def _disconnected(receive: Receive) -> None:
    """Returns when the client has gone (the body was read before the stream started)."""
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return
