"""The Replicate adapter: one :class:`UpstreamCall` as one prediction, to image bytes.

Steps: place the input images in ``input`` under the call's image and mask fields (``data:`` URIs up
to ``upload_threshold_bytes``, the Files API above: :mod:`.files`), create the prediction on the
route its ``upstream`` names with ``Prefer: wait`` and ``Cancel-After`` (:mod:`.predictions`), poll
it until terminal, map a failed or cancelled one (:mod:`.errors`), download its outputs
(:mod:`.results`), delete the uploaded inputs.

Cancellation: on ``asyncio.CancelledError`` (client gone, the request deadline, a sibling call
failing) or a failure while the prediction still runs, the prediction is cancelled upstream
(shielded, bounded by ``cancel_timeout_seconds``) before the exception propagates. A cancellation
during the create itself lets the create finish (shielded, at most ``wait_seconds`` plus
``cancel_timeout_seconds`` more: a waited create answers only then) so that the prediction it made
is known and cancelled too.

Failure modes are those of :mod:`.errors`; without a token the call fails with
``ProviderNotConfiguredError`` before any request. Retries follow :mod:`.retry`, with
``backoff_base_seconds``/``backoff_cap_seconds``, the poll timings and the ``Cancel-After`` floor as
plain attributes so tests can shrink them. Results are read within the app's caps from https on public addresses (where
``replicate.delivery`` is), the API root's host, or the provider's ``fetch_hosts``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Awaitable

import httpx
from pydantic import JsonValue

from core.errors import GatewayError, ProviderNotConfiguredError
from providers.base import AdapterContext, ImageAdapter, ProviderResult, UpstreamCall, UpstreamTracker
from providers.replicate.errors import error_from_ended, error_from_failed
from providers.replicate.files import InputFiles, UploadedFile
from providers.replicate.predictions import MIN_CANCEL_AFTER_SECONDS, Prediction, Predictions
from providers.replicate.results import collect_images
from providers.replicate.retry import CREATE_RETRY, POLL_RETRY, UPLOAD_RETRY
from providers.replicate.settings import ReplicateSettings
from providers.replicate.transport import ReplicateHttp
from providers.toolkit.results import ResultReader
from providers.toolkit.retry import RetryPolicy


class ReplicateAdapter(ImageAdapter):
    """Replicate's prediction protocol behind :class:`ImageAdapter`, one per configured Replicate provider."""

    backoff_base_seconds: float = 0.5
    backoff_cap_seconds: float = 8.0
    poll_initial_seconds: float = 0.1
    poll_max_seconds: float = 1.0
    cancel_timeout_seconds: float = 2.0
    min_cancel_after_seconds: int = MIN_CANCEL_AFTER_SECONDS

    def __init__(self, settings: ReplicateSettings, context: AdapterContext) -> None:
        self._settings = settings
        self._client = context.client
        self.base_url = settings.base_url.rstrip("/")
        self.wait_seconds = settings.wait_seconds
        self.timeout = httpx.Timeout(settings.read_timeout_seconds, connect=settings.connect_timeout_seconds)
        deadline = context.call_deadline_seconds
        self.cancel_after_seconds = None if deadline is None else math.ceil(deadline)
        self.results = ResultReader.for_provider(
            context.client, settings, context.limits, own_urls=(self.base_url,), who="Replicate"
        )

    def _retry(self, policy: RetryPolicy) -> RetryPolicy:
        return dataclasses.replace(
            policy,
            max_attempts=self._settings.max_retries + 1,
            base_seconds=self.backoff_base_seconds,
            cap_seconds=self.backoff_cap_seconds,
        )

    async def run(self, call: UpstreamCall) -> ProviderResult:
        """Run ``call`` as one prediction; see the module docstring for the steps and failure modes."""
        return await self._run(call, None)

    async def run_tracked(self, call: UpstreamCall, tracker: UpstreamTracker) -> ProviderResult:
        """:meth:`run`, telling ``tracker`` when the prediction is done, before its outputs are downloaded
        (a prediction is not resumed after a restart: it is made again)."""
        return await self._run(call, tracker)

    async def _run(self, call: UpstreamCall, tracker: UpstreamTracker | None) -> ProviderResult:
        token = self._settings.key
        if token is None:
            raise ProviderNotConfiguredError("the replicate provider has no API token (set REPLICATE_API_TOKEN)")
        http = ReplicateHttp(client=self._client, token=token, base_url=self.base_url, timeout=self.timeout)
        predictions = Predictions(
            http=http,
            create_retry=self._retry(CREATE_RETRY),
            poll_retry=self._retry(POLL_RETRY),
            wait_seconds=self.wait_seconds,
            cancel_after_seconds=self.cancel_after_seconds,
            min_cancel_after_seconds=self.min_cancel_after_seconds,
            poll_initial_seconds=self.poll_initial_seconds,
            poll_max_seconds=self.poll_max_seconds,
        )
        files = InputFiles(
            http=http, retry=self._retry(UPLOAD_RETRY), threshold_bytes=self._settings.upload_threshold_bytes
        )
        uploaded: list[UploadedFile] = []
        try:
            model_input = await self._input(files, call, uploaded)
            prediction = await self._create(predictions, call.upstream, model_input)
            try:
                final = await predictions.wait(prediction)
            except (asyncio.CancelledError, GatewayError):
                await self._release(predictions.cancel(prediction))
                raise
        finally:
            if uploaded:
                await self._release(*(files.delete(stored) for stored in uploaded))
        if final.status == "failed":
            raise error_from_failed(final.error_text, token)
        if final.status != "succeeded":
            raise error_from_ended(final.status, had_deadline=final.deadline is not None)
        if tracker is not None:
            await tracker.finished(call)  # the outputs wait at Replicate until the gateway has room for them
        images = await collect_images(self.results, final, result_field=call.result_field)
        return ProviderResult(images=images, upstream_request_id=final.id)

    async def _input(self, files: InputFiles, call: UpstreamCall, uploaded: list[UploadedFile]) -> dict[str, JsonValue]:
        """``call.payload`` plus the images (and mask) as URLs under the call's fields."""
        model_input: dict[str, JsonValue] = dict(call.payload)
        if call.images:
            if call.image_field is None:
                raise GatewayError(f"model '{call.model_id}' sends images but its catalog entry names no image field")
            urls = [await files.reference(image, f"image-{i}", uploaded) for i, image in enumerate(call.images)]
            model_input[call.image_field] = urls[0] if call.image_kind == "single" else list(urls)
        if call.mask is not None and call.mask_field is not None:
            model_input[call.mask_field] = await files.reference(call.mask, "mask", uploaded)
        return model_input

    async def _create(self, predictions: Predictions, upstream: str, model_input: dict[str, JsonValue]) -> Prediction:
        """Create; cancelled meanwhile, wait (bounded) for the prediction's id and cancel it too."""
        task = asyncio.create_task(predictions.create(upstream, model_input))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            # Replicate may have made the prediction already; a waited create names it only when it
            # answers. Without its id it would run, and bill, unseen until its Cancel-After.
            await asyncio.wait({task}, timeout=self.wait_seconds + self.cancel_timeout_seconds)
            if task.done() and not task.cancelled() and task.exception() is None:
                await self._release(predictions.cancel(task.result()))
            else:
                task.cancel()
            raise

    async def _release(self, *jobs: Awaitable[None]) -> None:
        """Run best-effort clean-up (cancel, delete) to the end although this task is being cancelled.

        Shielded, and bounded by ``cancel_timeout_seconds``: a Replicate that does not answer cannot
        hold the request (or a shutting-down server) for longer.
        """

        async def bounded() -> None:
            try:
                async with asyncio.timeout(self.cancel_timeout_seconds):
                    await asyncio.gather(*jobs)
            except TimeoutError:
                return

        task = asyncio.create_task(bounded())
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            await asyncio.wait([task], timeout=self.cancel_timeout_seconds)
            raise
