"""The request pipeline: plan, call the upstream (fanned out), emulate, answer.

:class:`Gateway` is built once per app. ``plan`` resolves the model and runs the rule engine (pure);
``execute`` runs the plan's upstream calls concurrently (bounded per request and globally, all or
error: the first failure cancels the rest), then emulates ``n``, exact size, ``output_format`` /
``output_compression`` (in the Pillow worker pool) and ``response_format`` (inline base64 or a
signed link to the image store).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from core.errors import (
    GatewayError,
    InvalidRequestError,
    ModelNotFoundError,
    UpstreamError,
    UpstreamTimeoutError,
)
from normalization.catalog import Catalog, Mode
from normalization.engine import Plan, plan_request
from normalization.imaging import EncodedImage, ImageWorkers, OutputSpec
from normalization.request import EditInputs, ImageRequest
from normalization.response import ImageData, ImagesResponse, ResponseMetadata
from providers.base import GeneratedImage, ImageAdapter, ProviderResult, UpstreamCall, adapter_for

UpstreamWait = Callable[[], AbstractAsyncContextManager[None]]
"""Entered around a request's upstream calls (see :meth:`Gateway.execute`)."""


class ImageHost(Protocol):
    """Stores a result image and returns a link to it (``response_format=url``)."""

    async def publish(self, image: EncodedImage, base_url: str) -> str: ...


class GatewayConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    request_timeout_seconds: float
    max_fanout_per_request: int
    max_pixels: int
    max_prompt_chars: int


class Gateway:
    """Serves edits and generations for every catalog model through the configured adapters."""

    def __init__(
        self,
        catalog: Catalog,
        adapters: Mapping[str, ImageAdapter],
        workers: ImageWorkers,
        host: ImageHost,
        config: GatewayConfig,
        global_slots: asyncio.Semaphore,
    ) -> None:
        self.catalog = catalog
        self._adapters = adapters
        self._workers = workers
        self._host = host
        self._config = config
        self._global_slots = global_slots

    def plan(self, request: ImageRequest, mode: Mode, inputs: EditInputs | None, *, strict: bool) -> Plan:
        """Resolve the model and translate the request. Raises 400/404 errors; makes no call."""
        if not request.model:
            raise InvalidRequestError(
                "'model' is required: GET /v1/models lists the models of this gateway",
                param="model",
                code="missing_required_parameter",
            )
        entry = self.catalog.get(request.model)
        if entry is None:
            raise ModelNotFoundError(
                f"The model '{request.model}' does not exist on this gateway; GET /v1/models lists them.",
                param="model",
            )
        if mode == "edit" and (inputs is None or not inputs.images):
            raise InvalidRequestError("'image' is required for edits", param="image", code="missing_required_parameter")
        return plan_request(request, entry, mode, inputs, strict=strict, max_prompt_chars=self._config.max_prompt_chars)

    async def execute(self, plan: Plan, *, base_url: str, while_upstream: UpstreamWait | None = None) -> ImagesResponse:
        """Run ``plan`` within the request deadline. Raises GatewayError subclasses only.

        ``while_upstream()`` is entered around the upstream calls, e.g. to hand the request's
        admission slot on while the provider works.
        """
        adapter = adapter_for(self._adapters, plan.entry.provider)
        try:
            # The deadline is the upstream's: results that are in are not lost to the wait for a slot.
            async with while_upstream() if while_upstream else contextlib.nullcontext():
                async with asyncio.timeout(self._config.request_timeout_seconds):
                    results = await self._fan_out(adapter, plan)
            return await self._emulate(plan, results, base_url)
        except TimeoutError as exc:
            raise UpstreamTimeoutError(
                f"the upstream did not answer within {self._config.request_timeout_seconds:g} s"
            ) from exc
        except GatewayError as exc:
            if exc.param is not None and isinstance(exc, InvalidRequestError):
                exc.param = plan.client_param(exc.param)
            raise

    async def _fan_out(self, adapter: ImageAdapter, plan: Plan) -> list[ProviderResult]:
        per_request = asyncio.Semaphore(self._config.max_fanout_per_request)

        async def one(call: UpstreamCall) -> ProviderResult:
            async with per_request, self._global_slots:
                return await adapter.run(call)

        tasks = [asyncio.create_task(one(call)) for call in plan.calls]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            # All or error: a failed (or cancelled) call cancels its siblings and their upstream jobs.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def _emulate(self, plan: Plan, results: list[ProviderResult], base_url: str) -> ImagesResponse:
        emulation = plan.emulation
        images = _collect(plan, results)
        spec = OutputSpec(
            format=emulation.output_format, compression=emulation.output_compression, target=emulation.target
        )
        encoded = await asyncio.gather(
            *(self._workers.convert(image.data, spec, self._config.max_pixels) for image in images)
        )
        data = await asyncio.gather(
            *(
                self._deliver(image, out, emulation.response_format, base_url)
                for image, out in zip(images, encoded, strict=True)
            )
        )
        first = encoded[0]
        metadata = ResponseMetadata(
            model=plan.entry.id,
            provider=plan.entry.provider,
            upstream_model=plan.entry.upstream,
            parameters=dict(plan.parameters),
            warnings=list(plan.warnings),
            upstream_calls=len(plan.calls),
            resized=any(out.resized for out in encoded),
            converted=any(out.reencoded for out in encoded),
            nsfw=[image.nsfw for image in images],
        )
        return ImagesResponse(
            created=int(time.time()),
            data=list(data),
            output_format=emulation.output_format,
            size=f"{first.width}x{first.height}",
            metadata=metadata,
        )

    async def _deliver(
        self, source: GeneratedImage, out: EncodedImage, response_format: str, base_url: str
    ) -> ImageData:
        if response_format == "b64_json":
            return ImageData(
                image=out.data,  # base64-encoded when the body is written, straight into it
                revised_prompt=source.revised_prompt,
                seed=source.seed,
            )
        url = await self._host.publish(out, base_url)
        return ImageData(url=url, revised_prompt=source.revised_prompt, seed=source.seed)


def _collect(plan: Plan, results: list[ProviderResult]) -> list[GeneratedImage]:
    """The images in call order, exactly ``n`` of them; fewer than asked for is an upstream failure."""
    images: list[GeneratedImage] = []
    for call, result in zip(plan.calls, results, strict=True):
        if len(result.images) < call.expected_images:
            got, wanted = len(result.images), call.expected_images
            raise UpstreamError(f"the upstream returned {got} image(s) where {wanted} were asked for")
        images.extend(result.images[: call.expected_images])
    return images
