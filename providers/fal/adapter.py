"""The fal.ai adapter: one :class:`UpstreamCall` through fal's queue to image bytes.

Steps: place the input images in the payload (data URIs up to ``upload_threshold_bytes``,
fal storage above), submit, poll, read the result, download the images. On
``asyncio.CancelledError`` (client gone, the pipeline's deadline, a sibling call failing) or a
failure while the job is still running, the job is cancelled upstream (shielded, bounded by
``cancel_timeout_seconds``) before the exception propagates. A cancellation that arrives while
the submit itself is in flight lets the submit finish (shielded, at most ``cancel_timeout_seconds``
more) so that the job it created is known and cancelled too.

Failure modes are those of :mod:`providers.fal.errors`; without an API key the call fails with
``ProviderNotConfiguredError`` before any request. Retries follow :data:`providers.fal.retry.FAL_RETRY`
with ``backoff_base_seconds``/``backoff_cap_seconds``, plain attributes so tests can shrink them.
Results are read within the app's caps (:class:`ResultLimits`), from fal's own hosts, its CDN
over https, or the provider's ``fetch_hosts``.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses

import httpx
from pydantic import JsonValue

from core.errors import GatewayError, ProviderNotConfiguredError
from core.images import InputImage
from providers.base import AdapterContext, ImageAdapter, ProviderResult, UpstreamCall
from providers.fal.queue import FalQueue, QueueHandle
from providers.fal.results import collect_images
from providers.fal.retry import FAL_RETRY
from providers.fal.settings import FalSettings
from providers.fal.storage import upload_image
from providers.fal.transport import FalHttp
from providers.toolkit.results import ResultReader


class FalAdapter(ImageAdapter):
    """fal's queue protocol behind :class:`ImageAdapter`, one per configured fal provider."""

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
        # The payload (an edit's inputs as data URIs) is not kept past the submit.
        handle = await self._submit(queue, call.upstream, await self._payload(http, call))
        try:
            completed = await queue.wait(handle, call.upstream)
        except (asyncio.CancelledError, GatewayError):
            await self._cancel(queue, handle)
            raise
        body = await queue.result(handle, call.upstream, completed)
        images = await collect_images(self.results, body, result_field=call.result_field)
        return ProviderResult(images=images, upstream_request_id=handle.request_id)

    async def _submit(self, queue: FalQueue, endpoint_id: str, payload: dict[str, JsonValue]) -> QueueHandle:
        """Submit; cancelled meanwhile, wait (bounded) for the job's id and cancel that job too."""
        task = asyncio.create_task(queue.submit(endpoint_id, payload))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            # fal may have queued the job already: without its id, it would run (and bill) unseen.
            await asyncio.wait({task}, timeout=self.cancel_timeout_seconds)
            if task.done() and not task.cancelled() and task.exception() is None:
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
        task = asyncio.create_task(bounded())
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            await asyncio.wait([task], timeout=self.cancel_timeout_seconds)
            raise

    async def _payload(self, http: FalHttp, call: UpstreamCall) -> dict[str, JsonValue]:
        """``call.payload`` plus the images as URLs under ``image_field`` and ``mask_field``."""
        payload: dict[str, JsonValue] = dict(call.payload)
        if call.images:
            if call.image_field is None:
                raise GatewayError(f"model '{call.model_id}' sends images but its catalog entry names no image field")
            urls = [await self._image_url(http, image, f"image-{i}") for i, image in enumerate(call.images)]
            payload[call.image_field] = urls[0] if call.image_kind == "single" else list(urls)
        if call.mask is not None and call.mask_field is not None:
            payload[call.mask_field] = await self._image_url(http, call.mask, "mask")
        return payload

    async def _image_url(self, http: FalHttp, image: InputImage, name: str) -> str:
        if len(image.data) <= self._settings.upload_threshold_bytes:
            return f"data:{image.media_type};base64,{base64.b64encode(image.data).decode('ascii')}"
        return await upload_image(http, self.storage_url, image, f"{name}.{image.extension}")
