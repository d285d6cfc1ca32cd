"""The fal.ai adapter: one :class:`UpstreamCall` through fal's queue to image bytes.

Steps: place the input images in the payload (data URIs up to ``upload_threshold_bytes``,
fal storage above), submit, follow the job's status stream until it completes (polling instead
with ``status_stream: false``, or once a stream fails: :mod:`providers.fal.status_stream`), read the
result, download the images. On
``asyncio.CancelledError`` (client gone, the pipeline's deadline, a sibling call failing) or a
failure while the job is still running, the job is cancelled upstream (shielded, bounded by
``cancel_timeout_seconds``) before the exception propagates. A cancellation that arrives while
the submit itself is in flight lets the submit finish (shielded, at most ``cancel_timeout_seconds``
more) so that the job it created is known and cancelled too.

Tracked (:meth:`FalAdapter.run_tracked`, async jobs): the job's request id and URLs are reported
as soon as the submit returns; a call with a recorded job follows that job instead of submitting; and a
cancellation while the tracker is detaching (the process stopping) leaves the fal job running for
the next process to follow.

Failure modes are those of :mod:`providers.fal.errors`; without an API key the call fails with
``ProviderNotConfiguredError`` before any request. Retries follow :data:`providers.fal.retry.FAL_RETRY`
with ``backoff_base_seconds``/``backoff_cap_seconds``, plain attributes so tests can shrink them.
Results are read within the app's caps (:class:`ResultLimits`), from fal's own hosts, its CDN
over https, or the provider's ``fetch_hosts``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Coroutine
from typing import Any

import httpx
from pydantic import JsonValue, ValidationError

from core.errors import GatewayError, ProviderNotConfiguredError
from core.images import InputImage
from providers.base import (
    AdapterContext,
    ImageAdapter,
    ProviderResult,
    UpstreamCall,
    UpstreamHandle,
    UpstreamTracker,
)
from providers.fal.queue import FalQueue, QueueHandle
from providers.fal.results import collect_images
from providers.fal.retry import FAL_RETRY
from providers.fal.settings import FalSettings
from providers.fal.status_stream import wait_for_completion
from providers.fal.storage import upload_image
from providers.fal.submit_body import SubmitBody
from providers.fal.transport import FalHttp
from providers.toolkit.chunked_body import ChunkedBody
from providers.toolkit.results import ResultReader

log = logging.getLogger("pixelgate.fal")


class FalAdapter(ImageAdapter):
    """fal's queue protocol behind :class:`ImageAdapter`, one per configured fal provider."""

    reports_acceptance = True
    backoff_base_seconds: float = 0.2
    backoff_cap_seconds: float = 5.0
    poll_initial_seconds: float = 0.02
    poll_max_seconds: float = 1.0
    cancel_timeout_seconds: float = 2.0

    def __init__(self, settings: FalSettings, context: AdapterContext) -> None:
        self._settings = settings
        self._client = context.client
        self.base_url = settings.base_url.rstrip("/")
        self.storage_url = settings.storage_url.rstrip("/")
        self.timeout = httpx.Timeout(
            settings.read_timeout_seconds,
            connect=settings.connect_timeout_seconds,
        )
        self.results = ResultReader.for_provider(
            context.client, settings, context.limits, own_urls=(self.base_url, self.storage_url), who="fal"
        )

    def _http(self, api_key: str) -> FalHttp:
        retry = dataclasses.replace(
            FAL_RETRY,
            max_attempts=self._settings.max_retries + 1,
            base_seconds=self.backoff_base_seconds,
            cap_seconds=self.backoff_cap_seconds,
        )
        return FalHttp(client=self._client, api_key=api_key, timeout=self.timeout, retry=retry)

    async def run(self, call: UpstreamCall) -> ProviderResult:
        """Run ``call`` on fal; see the module docstring for the steps and failure modes."""
        return await self._run(call, None)

    async def run_tracked(self, call: UpstreamCall, tracker: UpstreamTracker) -> ProviderResult:
        """:meth:`run`, reporting the queue job to ``tracker`` once fal accepted it, and following the
        job ``tracker`` recorded before a restart instead of submitting again."""
        return await self._run(call, tracker)

    async def _run(self, call: UpstreamCall, tracker: UpstreamTracker | None) -> ProviderResult:
        api_key = self._settings.key
        if api_key is None:
            raise ProviderNotConfiguredError("the fal provider has no API key (set FAL_KEY)")
        http = self._http(api_key)
        queue = FalQueue(
            http=http,
            base_url=self.base_url,
            poll_initial_seconds=self.poll_initial_seconds,
            poll_max_seconds=self.poll_max_seconds,
        )
        handle = _recorded(queue, tracker.previous(call)) if tracker is not None else None
        fresh = handle is None
        if handle is None:
            # The payload (an edit's inputs as data URIs) is not kept past the submit.
            handle = await self._submit(queue, call, await self._body(http, call), tracker)
        try:
            if fresh and tracker is not None:
                await _shielded(tracker.started(call, _upstream_handle(handle)), self.cancel_timeout_seconds)
            completed = await wait_for_completion(queue, handle, call.upstream, stream=self._settings.status_stream)
        except asyncio.CancelledError:
            if tracker is None or not tracker.detaching:
                await self._cancel(queue, handle)
            raise
        except GatewayError:
            await self._cancel(queue, handle)
            raise
        if tracker is not None:
            await tracker.finished(call)  # the result waits at fal until the gateway has room for it
        body = await queue.result(handle, call.upstream, completed)
        images = await collect_images(self.results, body, result_field=call.result_field)
        return ProviderResult(images=images, upstream_request_id=handle.request_id)

    async def _submit(
        self, queue: FalQueue, call: UpstreamCall, body: ChunkedBody, tracker: UpstreamTracker | None
    ) -> QueueHandle:
        """Submit; cancelled meanwhile, wait (bounded) for the job's id, then cancel that job too, or,
        when the request is detaching, record it so that the next process follows it."""
        task = asyncio.create_task(queue.submit(call.upstream, body))
        # Its retries are inside the task: once it ends, the inputs' base64 can go.
        task.add_done_callback(lambda _: body.release())
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            # fal may have queued the job already: without its id, it would run (and bill) unseen.
            await asyncio.wait({task}, timeout=self.cancel_timeout_seconds)
            if task.done() and not task.cancelled() and task.exception() is None:
                if tracker is not None and tracker.detaching:
                    await _shielded(tracker.started(call, _upstream_handle(task.result())), self.cancel_timeout_seconds)
                else:
                    await self._cancel(queue, task.result())
            else:
                task.cancel()
            raise

    async def _cancel(self, queue: FalQueue, handle: QueueHandle) -> None:
        async def bounded() -> None:
            try:
                async with asyncio.timeout(self.cancel_timeout_seconds):
                    await queue.cancel(handle)
            except TimeoutError:
                return

        # Shielded: the cancel must go out although this task is being cancelled.
        await _shielded(bounded(), self.cancel_timeout_seconds)

    async def _body(self, http: FalHttp, call: UpstreamCall) -> ChunkedBody:
        """The submit's JSON: ``call.payload`` plus the images as URLs under ``image_field`` and
        ``mask_field`` (inline ones spliced in by :class:`SubmitBody`, encoded once)."""
        payload: dict[str, JsonValue] = dict(call.payload)
        body = SubmitBody()
        if call.images:
            if call.image_field is None:
                raise GatewayError(f"model '{call.model_id}' sends images but its catalog entry names no image field")
            urls = [await self._image_url(http, body, image, f"image-{i}") for i, image in enumerate(call.images)]
            payload[call.image_field] = urls[0] if call.image_kind == "single" else list(urls)
        if call.mask is not None and call.mask_field is not None:
            payload[call.mask_field] = await self._image_url(http, body, call.mask, "mask")
        return body.encode(payload)

    async def _image_url(self, http: FalHttp, body: SubmitBody, image: InputImage, name: str) -> str:
        # held.size, not len(image.data): data reads a spilled image back from disk.
        if image.held.size <= self._settings.upload_threshold_bytes:
            return body.inline(image)
        return await upload_image(http, self.storage_url, image, f"{name}.{image.extension}")


async def _shielded(work: Coroutine[Any, Any, None], grace_seconds: float) -> None:
    """Run ``work`` to its end although this task may be cancelled meanwhile (then waiting for it at
    most ``grace_seconds`` more before the cancellation goes on)."""
    task = asyncio.create_task(work)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task], timeout=grace_seconds)
        raise


def _upstream_handle(handle: QueueHandle) -> UpstreamHandle:
    """The queue job as the tracker stores it: fal's request id and the URLs that follow it."""
    state = {"status_url": handle.status_url, "response_url": handle.response_url, "cancel_url": handle.cancel_url}
    return UpstreamHandle(request_id=handle.request_id, state=state)


def _recorded(queue: FalQueue, recorded: UpstreamHandle | None) -> QueueHandle | None:
    """The queue job recorded before a restart, if it can be followed on this provider's base URL.

    Its URLs carry the API key, so a job recorded under another base URL (the setting changed in
    between) is not followed: the call is submitted again (and logged).
    """
    if recorded is None:
        return None
    try:
        handle = QueueHandle(request_id=recorded.request_id, **recorded.state)
    except ValidationError:
        log.warning("a recorded fal job lacks its URLs; submitting the call again")
        return None
    if not queue.owns(handle):
        log.warning("a recorded fal job is on another host than the configured base URL; submitting the call again")
        return None
    return handle
