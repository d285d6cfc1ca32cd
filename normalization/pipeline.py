"""The request pipeline: plan, call the upstream, emulate, answer.

:class:`Gateway` is built once per app. ``plan`` resolves the model and runs the rule engine for
each of its deployments (pure: a :class:`~normalization.routing.route.Route`); ``execute`` runs the
route, stage by stage, in this order (each stage after routing is a module of
:mod:`normalization.emulation`):

1. routing and count fan-out (:mod:`~normalization.routing.router`,
   :mod:`~normalization.emulation.fanout`): the primary plan's upstream calls, concurrently, bounded
   per request and globally, each failing over to the next deployment on its own, all or error;
   then exactly ``n`` images collected;
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
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from core.errors import (
    GatewayError,
    InvalidRequestError,
    UpstreamTimeoutError,
)
from core.image_workers import ImageWorkers
from normalization.catalog import Catalog, Mode, ModelEntry
from normalization.emulation.fanout import FanOut
from normalization.emulation.output_format import OutputSpec, render
from normalization.emulation.response_format import deliver
from normalization.engine import DEFAULT_MAX_PROMPT_CHARS, PlanSettings, plan_request
from normalization.hosting import ImageHost
from normalization.input_spill import InputSpill
from normalization.metering import CallObserver, NoObserver, ProviderHealth, Spend
from normalization.plan import Plan, ResponseFormat
from normalization.pricing import usd
from normalization.request import EditInputs, ImageRequest
from normalization.response import Attempt, ImagesResponse, ResponseMetadata
from normalization.routing.admission_hooks import UNBOUNDED, RequestAdmission
from normalization.routing.breaker import BreakerStore, MemoryBreakers, ObservedBreakers
from normalization.routing.route import Route, plan_route, resolve_model
from normalization.routing.router import Router, Served
from providers.base import ImageAdapter, OnPartial, UpstreamTracker

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
    spill_dir: Path | None = None
    """Where a waiting request's input images go once their upstream jobs have them
    (:mod:`normalization.input_spill`); ``None`` keeps them in memory."""

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
        breakers: BreakerStore | None = None,
    ) -> None:
        self.catalog = catalog
        self._observer = observer or NoObserver()
        self.breakers = ObservedBreakers(breakers or MemoryBreakers(), providers=adapters)
        self.health: ProviderHealth = self.breakers
        """Each provider's circuit-breaker state, for the metrics."""
        self._workers = workers
        self._host = host
        self._config = config
        self.plan_settings = config.plan_settings()
        fanout = FanOut(config.max_fanout_per_request, global_slots)
        self._router = Router(adapters, self.breakers, fanout, self._observer, InputSpill(config.spill_dir))

    def plan(
        self,
        request: ImageRequest,
        mode: Mode,
        inputs: EditInputs | None,
        *,
        strict: bool,
        url_fallback: bool = False,
    ) -> Route:
        """Resolve the model (``provider/model`` forces one deployment) and translate the request for
        each deployment that serves ``mode``. Raises 400/404 errors; makes no call."""
        if not request.model:
            raise InvalidRequestError(
                "'model' is required: GET /v1/models lists the models of this gateway",
                param="model",
                code="missing_required_parameter",
            )
        model, forced = resolve_model(self.catalog, request.model)
        if mode == "edit" and (inputs is None or not inputs.images):
            raise InvalidRequestError("'image' is required for edits", param="image", code="missing_required_parameter")

        def plan_for(part: ImageRequest, deployment: ModelEntry) -> Plan:
            return plan_request(
                part, deployment, mode, inputs, strict=strict, url_fallback=url_fallback, settings=self.plan_settings
            )

        return plan_route(model, mode, request, plan_for, forced=forced)

    async def execute(
        self,
        route: Route,
        *,
        base_url: str,
        while_upstream: UpstreamWait | None = None,
        admission: RequestAdmission = UNBOUNDED,
        spend: Spend | None = None,
        attempts: list[Attempt] | None = None,
        tracker: UpstreamTracker | None = None,
        on_partial: OnPartial | None = None,
    ) -> ImagesResponse:
        """Run ``route`` within the request deadline. Raises GatewayError subclasses only.

        ``while_upstream()`` is entered around the upstream calls, e.g. to hand the request's
        admission slot on while the provider works; ``admission`` (the request's) is told when its
        inputs are with an upstream and asked for room before a resend or a finished job's results
        (see :meth:`normalization.routing.router.Router.run`). ``spend``
        receives each completed call's cost as it completes, also when the request fails afterwards
        (the caller charges it either way);
        ``attempts`` each upstream attempt as it ends (the ledger keeps the deployments tried).
        ``tracker`` (async jobs) records each call's upstream job and offers the ones recorded
        before a restart (see :mod:`providers.base`). ``on_partial`` (a streamed request) is told each
        partial image an upstream streams, as it arrives; they are passed on untouched (no size or
        format emulation: they are previews), and a failed attempt's partials may precede a later
        deployment's images (see :mod:`normalization.routing.router`).
        """
        spend = spend if spend is not None else Spend()
        attempts = attempts if attempts is not None else []
        try:
            # The deadline is the upstream's, and covers every attempt on every deployment; results
            # that are in are not lost to the wait for a slot.
            async with while_upstream() if while_upstream else contextlib.nullcontext():
                async with asyncio.timeout(self._config.request_timeout_seconds):
                    served = await self._router.run(
                        route,
                        spend=spend,
                        attempts=attempts,
                        tracker=tracker,
                        on_partial=on_partial,
                        admission=admission,
                    )
            return await self._emulate(route, served, base_url, spend, attempts)
        except TimeoutError as exc:
            raise UpstreamTimeoutError(
                f"the upstream did not answer within {self._config.request_timeout_seconds:g} s"
            ) from exc
        except GatewayError as exc:
            if exc.param is not None and isinstance(exc, InvalidRequestError):
                exc.param = route.primary.client_param(exc.param)
            raise

    async def _emulate(
        self, route: Route, served: Served, base_url: str, spend: Spend, attempts: list[Attempt]
    ) -> ImagesResponse:
        """The emulation stage after the upstream calls, in order: count, size and format, delivery.

        Legs served by different deployments are made alike: the plan of the deployment that served
        the first leg decides the answer's format and what it reports; an exact size any serving
        deployment had to emulate is applied to every image (a no-op on images already that size).
        """
        used = [route.options[index].plan for index in dict.fromkeys(leg.option for leg in served.legs)]
        plan = used[0]
        emulation = plan.emulation
        target = next((p.emulation.target for p in used if p.emulation.target is not None), None)
        images = served.images()
        spec = OutputSpec(format=emulation.output_format, compression=emulation.output_compression, target=target)
        started = time.monotonic()
        encoded = await render(self._workers, images, spec, max_pixels=self._config.max_pixels)
        self._observer.converted(time.monotonic() - started)
        delivered = await deliver(self._host, images, encoded, emulation, base_url)
        first = encoded[0]
        metadata = ResponseMetadata(
            model=route.model.id,
            provider=",".join(dict.fromkeys(p.entry.provider for p in used)),
            upstream_model=",".join(dict.fromkeys(p.entry.upstream for p in used)),
            parameters=dict(plan.parameters),
            warnings=[warning.message for warning in (*plan.warnings, *delivered.warnings)],
            upstream_calls=sum(len(route.options[leg.option].legs[i]) for i, leg in enumerate(served.legs)),
            resized=any(out.resized for out in encoded),
            converted=any(out.reencoded for out in encoded),
            nsfw=[image.nsfw for image in images],
            cost_usd=usd(spend.total),
            attempts=list(attempts),
        )
        return ImagesResponse(
            created=int(time.time()),
            data=list(delivered.data),
            output_format=emulation.output_format,
            size=f"{first.width}x{first.height}",
            metadata=metadata,
        )
