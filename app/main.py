"""The app factory: ``create_app(settings)`` wires settings, catalog, adapters and routes.

Everything with a lifetime (the one upstream ``httpx.AsyncClient`` of :mod:`app.upstream_http`, the
adapters built around it, the Pillow worker pool, the image store's sweeper) is created in the
lifespan and closed after it, so a test can build as many independent apps as it likes. Nothing is
a module-level singleton.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import Depends, FastAPI

from app import access_log
from app.admission import AdmissionGate, AdmissionLimits, AdmissionMiddleware
from app.api import health, images, models
from app.auth import KeyCheck
from app.body_timeout import BodyTimeoutMiddleware
from app.deps import AppState
from app.handlers import RequestIdMiddleware, install_error_handlers
from app.hosting import build_host
from app.idempotency import Idempotency
from app.inputs import UrlFetcher
from app.ratelimit import LimitsMiddleware, build_limiter
from app.settings import Settings
from app.shutdown import InFlight, ShutdownMiddleware
from app.state import build_state
from app.upstream_http import build_upstream_client
from core.errors import InvalidRequestError, UpstreamError
from core.provider_settings import ProviderSettings
from normalization.catalog import Catalog, load_builtin_catalog
from normalization.imaging import ImageWorkers
from normalization.pipeline import Gateway, GatewayConfig
from providers.fetch import FetchPolicy, fetch_image_bytes
from providers.registry import build_adapters

CANCEL_GRACE_SECONDS = 5.0
"""At shutdown, how long cancelled requests get to cancel their upstream jobs before the client closes."""
UPSTREAM_MAX_CONNECTIONS = 256
"""Upstream connections open at once; more requests wait for one (cheaply on the aiohttp pool)."""


def build_catalog(settings: Settings) -> Catalog:
    """Built-in models plus the user's YAML ``models`` (added, or overriding by id)."""
    return load_builtin_catalog().with_overrides(settings.models)


def provider_settings(settings: Settings) -> dict[str, ProviderSettings]:
    """Each provider's settings, with ``PIXELGATE_FETCH_ALLOW_HOSTS`` added to its download hosts."""
    extra = tuple(settings.fetch_allow_hosts)
    return {
        name: conf.model_copy(update={"fetch_hosts": (*conf.fetch_hosts, *extra)})
        for name, conf in settings.provider_settings().items()
    }


def create_app(settings: Settings | None = None) -> FastAPI:
    """A ready-to-serve pixelgate app. Raises ``ValueError`` for an unusable configuration."""
    settings = settings or Settings()
    catalog = build_catalog(settings)
    providers = provider_settings(settings)
    host = build_host(settings)
    admission = AdmissionGate(admission_limits(settings))
    keys = KeyCheck([key.get_secret_value() for key in settings.api_keys])
    state = build_state(settings)
    limiter = build_limiter(
        requests_per_minute=settings.rate_limit_rpm,
        burst=settings.rate_limit_burst,
        max_concurrent=settings.max_concurrent_per_key,
        keyed=keys.enabled,
        store=state.limits,
    )

    inflight = InFlight()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        redactor = access_log.install()
        client = build_upstream_client(settings.upstream_transport, UPSTREAM_MAX_CONNECTIONS)
        workers = ImageWorkers()
        host.start_sweeping()
        adapters = build_adapters(providers, client)
        gateway = Gateway(
            catalog=catalog,
            adapters=adapters,
            workers=workers,
            host=host,
            config=GatewayConfig(
                request_timeout_seconds=settings.request_timeout_seconds,
                max_fanout_per_request=settings.max_fanout_per_request,
                max_pixels=settings.max_pixels,
                max_prompt_chars=settings.max_prompt_chars,
            ),
            global_slots=asyncio.Semaphore(settings.max_fanout_global),
        )
        idempotency = Idempotency(
            state.idempotency,
            ttl_seconds=settings.idempotency_ttl_seconds,
            link_ttl_seconds=settings.image_ttl_seconds,
            keyed=keys.enabled,
        )
        app.state.pixelgate = AppState(
            settings=settings,
            catalog=catalog,
            gateway=gateway,
            fetch_input=_input_fetcher(client, settings),
            idempotency=idempotency,
            admission=admission,
        )
        try:
            yield
        finally:
            # Requests the server cancelled after the drain timeout still call upstream to cancel.
            await inflight.settle(timeout=CANCEL_GRACE_SECONDS)
            await idempotency.aclose()
            for adapter in adapters.values():
                await adapter.aclose()
            await host.aclose()
            workers.close()
            await client.aclose()
            await state.aclose()
            access_log.uninstall(redactor)

    app = FastAPI(title="pixelgate", version="0.1.0", lifespan=lifespan, docs_url="/docs", redoc_url=None)
    install_error_handlers(app)
    app.add_middleware(
        BodyTimeoutMiddleware,
        idle_seconds=settings.upload_idle_timeout_seconds,
        total_seconds=settings.upload_timeout_seconds,
    )
    app.add_middleware(LimitsMiddleware)
    app.add_middleware(AdmissionMiddleware, gate=admission, keys=keys)
    # Outside admission: a request still queued when the drain ends gets the 503 shutting_down too.
    app.add_middleware(ShutdownMiddleware, inflight=inflight)
    app.add_middleware(RequestIdMiddleware)  # outermost: every answer, 503s included, gets an id
    app.include_router(health.router)
    app.include_router(images.router, dependencies=[Depends(keys), Depends(limiter)])
    app.include_router(models.router, dependencies=[Depends(keys)])
    app.include_router(host.router())
    return app


def admission_limits(settings: Settings) -> AdmissionLimits:
    return AdmissionLimits(
        max_inflight=settings.max_inflight,
        max_queued=settings.max_queued,
        queue_timeout_seconds=settings.queue_timeout_seconds,
        retry_after_seconds=settings.overload_retry_after_seconds,
    )


def _input_fetcher(client: httpx.AsyncClient, settings: Settings) -> UrlFetcher:
    """Downloads JSON edits' ``image_url`` inputs through the one guarded fetch.

    The URL is the client's choice, so a refused or failed download is the client's 400, not a 502.
    """
    policy = FetchPolicy(
        allowed_hosts=frozenset(settings.fetch_allow_hosts),
        max_bytes=settings.max_upload_bytes,
        timeout_seconds=settings.fetch_timeout_seconds,
    )

    async def fetch(url: str) -> bytes:
        try:
            return await fetch_image_bytes(client, url, policy)
        except UpstreamError as exc:
            raise InvalidRequestError(f"could not use image_url: {exc.message}", param="images") from exc

    return fetch
