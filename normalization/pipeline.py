"""The request pipeline: plan, call the upstream, emulate, answer.

:class:`Gateway` is built once per app. ``plan`` resolves the model and runs the rule engine (pure);
``execute`` runs the plan, stage by stage, in this order (each stage is a module of
:mod:`normalization.emulation`):

1. count fan-out (:mod:`~normalization.emulation.fanout`): the plan's upstream calls, concurrently,
   bounded per request and globally, all or error; then exactly ``n`` images collected;
2. exact size and 3. output format and compression (:mod:`~normalization.emulation.exact_size`,
   :mod:`~normalization.emulation.output_format`): each image decoded once in the shared Pillow
   pool, fitted to the exact size, re-encoded (or passed through untouched when already right);
4. response format and hosting (:mod:`~normalization.emulation.response_format`): inline base64,
   or stored behind a signed link (:mod:`normalization.hosting`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager

from pydantic import BaseModel, ConfigDict

from core.errors import (
    GatewayError,
    InvalidRequestError,
    ModelNotFoundError,
    UpstreamTimeoutError,
)
from core.image_workers import ImageWorkers
from normalization.catalog import Catalog, Mode
from normalization.emulation.fanout import FanOut, collect
from normalization.emulation.output_format import OutputSpec, render
from normalization.emulation.response_format import deliver
from normalization.engine import DEFAULT_MAX_PROMPT_CHARS, PlanSettings, plan_request
from normalization.hosting import ImageHost
from normalization.metering import AllClosed, CallObserver, MeteredAdapter, NoObserver, ProviderHealth, Spend
from normalization.plan import Plan, ResponseFormat
from normalization.pricing import usd
from normalization.request import EditInputs, ImageRequest
from normalization.response import ImagesResponse, ResponseMetadata
from providers.base import ImageAdapter, ProviderResult, UpstreamTracker, adapter_for

UpstreamWait = Callable[[], AbstractAsyncContextManager[None]]
"""Entered around a request's upstream calls (see :meth:`Gateway.execute`)."""


class GatewayConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    request_timeout_seconds: float
    max_fanout_per_request: int
    max_pixels: int
    max_request_pixels: int = 256_000_000
    max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS
    default_response_format: ResponseFormat = "url"

    def plan_settings(self) -> PlanSettings:
        return PlanSettings(
            max_prompt_chars=self.max_prompt_chars,
            max_pixels=self.max_pixels,
            max_request_pixels=self.max_request_pixels,
            default_response_format=self.default_response_format,
        )


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
        observer: CallObserver | None = None,
    ) -> None:
        self.catalog = catalog
        self._observer = observer or NoObserver()
        self.health: ProviderHealth = AllClosed(adapters)
        """Each provider's circuit-breaker state, for the metrics (no breaker yet: always closed)."""
        self._adapters = adapters
        self._workers = workers
        self._host = host
        self._config = config
        self.plan_settings = config.plan_settings()
        self._fanout = FanOut(config.max_fanout_per_request, global_slots)

    def plan(
        self,
        request: ImageRequest,
        mode: Mode,
        inputs: EditInputs | None,
        *,
        strict: bool,
        url_fallback: bool = False,
    ) -> Plan:
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
        return plan_request(
            request, entry, mode, inputs, strict=strict, url_fallback=url_fallback, settings=self.plan_settings
        )

    async def execute(
        self,
        plan: Plan,
        *,
        base_url: str,
        while_upstream: UpstreamWait | None = None,
        spend: Spend | None = None,
        tracker: UpstreamTracker | None = None,
    ) -> ImagesResponse:
        """Run ``plan`` within the request deadline. Raises GatewayError subclasses only.

        ``while_upstream()`` is entered around the upstream calls, e.g. to hand the request's
        admission slot on while the provider works. ``spend`` receives each completed call's cost as
        it completes, also when the request fails afterwards (the caller charges it either way).
        ``tracker`` (async jobs) records each call's
        upstream job and offers the ones recorded before a restart (see :mod:`providers.base`).
        """
        spend = spend if spend is not None else Spend()
        adapter = MeteredAdapter(
            adapter_for(self._adapters, plan.entry.provider),
            price=plan.entry.price,
            spend=spend,
            observer=self._observer,
        )
        try:
            # The deadline is the upstream's: results that are in are not lost to the wait for a slot.
            async with while_upstream() if while_upstream else contextlib.nullcontext():
                async with asyncio.timeout(self._config.request_timeout_seconds):
                    results = await self._fanout.run(adapter, plan.calls, tracker)
            return await self._emulate(plan, results, base_url, spend)
        except TimeoutError as exc:
            raise UpstreamTimeoutError(
                f"the upstream did not answer within {self._config.request_timeout_seconds:g} s"
            ) from exc
        except GatewayError as exc:
            if exc.param is not None and isinstance(exc, InvalidRequestError):
                exc.param = plan.client_param(exc.param)
            raise

    async def _emulate(self, plan: Plan, results: list[ProviderResult], base_url: str, spend: Spend) -> ImagesResponse:
        """The emulation stage after the upstream calls, in order: count, size and format, delivery."""
        emulation = plan.emulation
        images = collect(plan.calls, results)
        spec = OutputSpec(
            format=emulation.output_format, compression=emulation.output_compression, target=emulation.target
        )
        started = time.monotonic()
        encoded = await render(self._workers, images, spec, max_pixels=self._config.max_pixels)
        self._observer.converted(time.monotonic() - started)
        delivered = await deliver(self._host, images, encoded, emulation, base_url)
        first = encoded[0]
        metadata = ResponseMetadata(
            model=plan.entry.id,
            provider=plan.entry.provider,
            upstream_model=plan.entry.upstream,
            parameters=dict(plan.parameters),
            warnings=[warning.message for warning in (*plan.warnings, *delivered.warnings)],
            upstream_calls=len(plan.calls),
            resized=any(out.resized for out in encoded),
            converted=any(out.reencoded for out in encoded),
            nsfw=[image.nsfw for image in images],
            cost_usd=usd(spend.total),
        )
        return ImagesResponse(
            created=int(time.time()),
            data=list(delivered.data),
            output_format=emulation.output_format,
            size=f"{first.width}x{first.height}",
            metadata=metadata,
        )
