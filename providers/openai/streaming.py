"""Reading an OpenAI image stream: partial images as they come, then the final images.

A call with ``partial_images`` above 0 is sent with ``stream: true`` and ``partial_images`` (see
:meth:`providers.openai.adapter.OpenAIAdapter.run_streaming`), and the upstream answers with
server-sent events (the wire contract, section 1.5), read here with ``httpx-sse``:

- ``image_generation.partial_image`` / ``image_edit.partial_image``: ``b64_json``,
  ``partial_image_index``, ``size``, ``output_format``... handed to ``on_partial`` at once,
  unchecked (a preview; the client decodes it or not);
- ``image_generation.completed`` / ``image_edit.completed``: one per final image, ``b64_json``;
  collected as the ``data`` of a non-streamed answer, so they are checked and capped the same way;
- ``error``: the upstream failed after its 200; mapped by
  :func:`providers.openai.errors.error_from_event`. The spec defines no image-specific error event
  (section 3.6): an event named ``error``, a ``type`` of ``error`` or any data with an ``error``
  member is one, its error object nested (``{"error": {...}}``, as the SDKs read it) or flat
  (``{"type": "error", "message", "code", "param"}``, as OpenAI's other streams send it); which
  of the two OpenAI's image streams send is unconfirmed;
- ``data: [DONE]`` ends the stream (the spec shows none; the SDKs tolerate it); events of other
  types are skipped (types added later).

A stream that ends without a completed image, or an event that is not JSON, is
``upstream_bad_response``; a connection that breaks or stalls mid-stream is mapped as a failed
request (``upstream_unreachable``, or a 504 for a read timeout).
"""

from __future__ import annotations

from contextlib import aclosing

import httpx
from httpx_sse import EventSource
from pydantic import BaseModel, ConfigDict, ValidationError

from providers.base import OnPartial, PartialImage, UpstreamCall
from providers.openai.errors import ErrorObject, bad_response, error_from_event
from providers.openai.results import ImageItem, ImagesBody

EVENT_STREAM = "text/event-stream"


class StreamEvent(BaseModel):
    """The fields of an image stream event the adapter reads; every one optional (upstreams vary)."""

    model_config = ConfigDict(extra="ignore")

    type: str | None = None
    b64_json: str | None = None
    url: str | None = None
    revised_prompt: str | None = None
    partial_image_index: int | None = None
    size: str | None = None
    output_format: str | None = None
    error: ErrorObject | str | None = None
    message: str | None = None
    code: str | int | None = None
    param: str | None = None


def is_event_stream(response: httpx.Response) -> bool:
    """Whether ``response`` is a stream of events (an upstream that ignores ``stream`` answers JSON)."""
    content_type: str = response.headers.get("content-type", "")
    return content_type.partition(";")[0].strip().lower() == EVENT_STREAM


def _error_of(event: StreamEvent) -> ErrorObject:
    if isinstance(event.error, ErrorObject):
        return event.error
    if isinstance(event.error, str):
        return ErrorObject(message=event.error)
    return ErrorObject(message=event.message, type=event.type, code=event.code, param=event.param)


async def read_stream(
    response: httpx.Response, call: UpstreamCall, on_partial: OnPartial, *, secret: str | None
) -> ImagesBody:
    """The final images of the event stream ``response``, its partial images told to ``on_partial``
    on the way. Raises the mapped error of an ``error`` event, ``upstream_bad_response`` for a stream
    without a completed image, and ``httpx.HTTPError`` as it comes (the caller maps it)."""
    completed: list[ImageItem] = []
    async with aclosing(EventSource(response).aiter_sse()) as events:
        async for sse in events:
            if sse.data == "[DONE]":
                break
            if not sse.data:
                continue
            try:
                event = StreamEvent.model_validate_json(sse.data)
            except ValidationError as exc:
                raise bad_response("image stream event") from exc
            if sse.event == "error" or event.type == "error" or event.error:
                raise error_from_event(_error_of(event), secret=secret)
            kind = event.type or sse.event
            if kind.endswith(".partial_image"):
                on_partial(_partial(event, call))
            elif kind.endswith(".completed"):
                completed.append(ImageItem(b64_json=event.b64_json, url=event.url, revised_prompt=event.revised_prompt))
    if not completed:
        raise bad_response("image stream (it ended without a completed image)")
    return ImagesBody(data=completed)


def _partial(event: StreamEvent, call: UpstreamCall) -> PartialImage:
    if event.b64_json is None:
        raise bad_response("partial image event (no b64_json)")
    return PartialImage(
        b64_json=event.b64_json,
        index=max(event.partial_image_index or 0, 0),
        call=call.index,
        size=event.size,
        output_format=event.output_format,
    )
