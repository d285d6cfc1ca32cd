"""The app factory: ``create_app(settings)`` wires settings, catalog, adapters and routes.

Everything with a lifetime (the one upstream ``httpx.AsyncClient`` of :mod:`app.upstream_http`, the
adapters built around it, the Pillow worker pool, the image store's sweeper) is created in the
lifespan and closed after it, so a test can build as many independent apps as it likes. Nothing is
a module-level singleton.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import Depends, FastAPI

from app import access_log
from app.admin.guard import AdminGuard
from app.admin.providers import provider_infos
from app.admin.routes import admin_router
from app.admission import AdmissionGate, AdmissionLimits
from app.api import health, images, models, pages
from app.api import jobs as jobs_api
from app.api.docs import install_docs
from app.auth import EnvKeyResolver, FirstMatch, require_principal
from app.db import Database
from app.deps import AppState
from app.guards import BodyDeadlines, GuardStack, request_guards
from app.handlers import install_error_handlers
from app.hosting import build_host, hosted_router
from app.idempotency import LEASE_SECONDS, Idempotency
from app.inputs import UrlFetcher
from app.jobs.results import JobResults
from app.jobs.runner import JobRunner, RunnerConfig
from app.jobs.service import JobLimits, Jobs
from app.jobs.store import JobStore
from app.jobs.webhooks import WebhookSender, WebhookSigner, load_or_create_secret
from app.keys import KeyStore
from app.keys.budget import Budgets
from app.keys.resolver import ManagedKeyResolver
from app.logs import RequestLog
from app.metrics import Metrics, metrics_router
from app.ratelimit import limit_config
from app.settings import Settings
from app.shutdown import InFlight, StopNotice
from app.startup import check_data_dir, log_configuration, log_operations
from app.state import build_state
from app.upstream_http import build_upstream_client
from app.usage import Ledger, LedgerConfig
from core.errors import ConfigError, InvalidRequestError, UpstreamError
from core.image_workers import ImageWorkers
from core.provider_settings import ProviderSettings
from normalization.catalog import Catalog, load_builtin_catalog
from normalization.input_spill import sweep as sweep_inputs
from normalization.pipeline import Gateway, GatewayConfig
from providers.base import AdapterContext, ResultLimits
from providers.fetch import BeforeBody, FetchPolicy, fetch_image_bytes
from providers.registry import build_adapters

CANCEL_GRACE_SECONDS = 5.0
"""At shutdown, how long cancelled requests get to cancel their upstream jobs before the client closes."""
UPSTREAM_SHORT_CONNECTIONS = 256
"""Upstream connections for short requests (submits, polls, results, downloads) besides one per job.

A job followed through a status stream (fal) holds a connection for its whole run, and up to
``max_fanout_global`` jobs run at once; with a pool of 256 in all, the 257th of 1,000 waiting jobs
would wait for a stream to end, and every result read behind it. So the pool is one connection per
upstream job plus these; more requests wait for one (cheaply on the aiohttp pool).
"""


def build_catalog(settings: Settings) -> Catalog:
    """Built-in models plus the user's YAML ``models`` (added, or overriding by id)."""
    return load_builtin_catalog().with_overrides(settings.models)


def provider_settings(settings: Settings) -> dict[str, ProviderSettings]:
    """Each provider's settings, with ``PIXELGATE_FETCH_ALLOW_HOSTS`` added to its download hosts."""
    extra = tuple(settings.fetch_allow_hosts)
    return {
        name: conf.model_copy(update={"fetch_hosts": (*conf.fetch_hosts, *extra)})
        for name, conf in settings.providers.items()
    }


def create_app(settings: Settings | None = None) -> FastAPI:
    """A ready-to-serve pixelgate app; without ``settings``, :meth:`Settings.load` reads them.

    Raises :class:`core.errors.ConfigError` (one line naming the setting) for an unusable
    configuration: a mistake in the settings, an unwritable data dir, an unknown state URL scheme.
    """
    settings = settings or Settings.load()
    check_data_dir(settings.data_dir)
    catalog = build_catalog(settings)
    providers = provider_settings(settings)
    host = build_host(settings)
    admission = AdmissionGate(admission_limits(settings))
    state = build_state(settings)
    inflight = InFlight()
    # No I/O yet: the engine is created (and the schema migrated) when the lifespan starts.
    database = Database.from_setting(settings.database_url, settings.data_dir)
    key_store = KeyStore(database, cache_seconds=settings.key_cache_seconds)
    ledger = Ledger(database, ledger_config(settings))
    budgets = Budgets(database, hold_seconds=settings.request_timeout_seconds)
    metrics = Metrics(admission=admission, ledger=ledger, budgets=budgets)
    managed_keys = ManagedKeyResolver(key_store)
    job_store = JobStore(database)
    webhook_signer = WebhookSigner(webhook_key(settings))
    stop_notice = StopNotice()

    async def open_access() -> bool:
        """No key of any kind: no configured key, no admin key (whoever holds one manages keys), and
        no usable managed key. The database is asked at most once per key-cache period."""
        return not settings.api_keys and settings.admin_key is None and not await managed_keys.any_usable()

    guards = request_guards(
        inflight=inflight,
        keys=FirstMatch([EnvKeyResolver([key.get_secret_value() for key in settings.api_keys]), managed_keys]),
        open_access=open_access,
        limits=limit_config(
            requests_per_minute=settings.rate_limit_rpm,
            burst=settings.rate_limit_burst,
            max_concurrent=settings.max_concurrent_per_key,
        ),
        limit_store=state.limits,
        admission=admission,
        ledger=ledger,
        body=BodyDeadlines(
            idle_seconds=settings.upload_idle_timeout_seconds, total_seconds=settings.upload_timeout_seconds
        ),
        observers=(metrics, RequestLog()),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        await database.open()
        ledger.start()
        budgets.start()
        log_configuration(providers, catalog, api_keys=len(settings.api_keys))
        log_operations(settings, database.describe())
        redactor = access_log.install()
        client = build_upstream_client(
            settings.upstream_transport, settings.max_fanout_global + UPSTREAM_SHORT_CONNECTIONS
        )
        workers = ImageWorkers()
        await host.open()
        host.start_sweeping()
        limits = ResultLimits(max_pixels=settings.max_pixels, max_bytes=settings.max_result_bytes)
        context = AdapterContext(
            client=client,
            image_workers=workers,
            limits=limits,
            call_deadline_seconds=settings.request_timeout_seconds,
        )
        adapters = build_adapters(providers, context)
        # Waiting edits' inputs (normalization.input_spill), in a folder of this process's own: replicas
        # may share the data dir. A restarted container (same host name and pid) removes its leftovers.
        spill_dir = settings.data_dir / "inputs" / f"{socket.gethostname()}-{os.getpid()}"
        await asyncio.to_thread(sweep_inputs, spill_dir)
        gateway = Gateway(
            catalog=catalog,
            adapters=adapters,
            workers=workers,
            host=host,
            config=GatewayConfig(
                request_timeout_seconds=settings.request_timeout_seconds,
                max_fanout_per_request=settings.max_fanout_per_request,
                max_pixels=settings.max_pixels,
                max_request_pixels=settings.max_pixels_per_request,
                max_prompt_chars=settings.max_prompt_chars,
                default_response_format=settings.default_response_format,
                spill_dir=spill_dir,
            ),
            global_slots=asyncio.Semaphore(settings.max_fanout_global),
            observer=metrics,
            breakers=state.breakers,
        )
        metrics.watch_health(gateway.health)
        job_results = JobResults(
            job_store, host, link_ttl_seconds=settings.image_ttl_seconds, public_url=settings.public_url
        )
        webhooks = WebhookSender(client, webhook_signer, frozenset(settings.fetch_allow_hosts))
        job_runner = JobRunner(
            store=job_store,
            gateway=gateway,
            results=job_results,
            sender=webhooks,
            ledger=ledger,
            config=runner_config(settings),
            notice=stop_notice,
            budgets=budgets,
            principal_of=managed_keys.principal_of,
        )
        jobs = Jobs(
            store=job_store,
            runner=job_runner,
            results=job_results,
            limits=JobLimits(
                max_unfinished_per_key=settings.max_concurrent_per_key,
                max_input_bytes=settings.job_max_input_bytes,
                ttl_seconds=settings.job_ttl_seconds,
            ),
            webhook_policy=webhooks.policy,
        )
        idempotency = Idempotency(
            state.idempotency,
            ttl_seconds=settings.idempotency_ttl_seconds,
            link_ttl_seconds=settings.image_ttl_seconds,
            leases=state.leases,
            # A duplicate waits for another replica at most as long as that replica's request may run.
            wait_seconds=settings.request_timeout_seconds + LEASE_SECONDS,
        )
        app.state.pixelgate = AppState(
            settings=settings,
            catalog=catalog,
            gateway=gateway,
            host=host,
            fetch_input=_input_fetcher(client, settings),
            idempotency=idempotency,
            admission=admission,
            budgets=budgets,
            jobs=jobs,
        )
        job_runner.start()
        try:
            yield
        finally:
            # First: detached jobs still record their upstream jobs, through the client and the database.
            await job_runner.aclose()
            # Requests the server cancelled after the drain timeout still call upstream to cancel.
            await inflight.settle(timeout=CANCEL_GRACE_SECONDS)
            await ledger.aclose()  # after the last request recorded its row
            await budgets.aclose()  # and settled its budget hold
            await database.aclose()
            await idempotency.aclose()
            for adapter in adapters.values():
                await adapter.aclose()
            await host.aclose()
            workers.close()
            with contextlib.suppress(OSError):  # emptied by every request's end; left alone otherwise
                spill_dir.rmdir()
            await client.aclose()
            await state.aclose()
            access_log.uninstall(redactor)

    app = FastAPI(title="pixelgate", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.stop_notice = stop_notice  # `pixelgate serve` sets it on SIGTERM (app/cli.py)
    install_error_handlers(app)
    install_docs(app)
    app.add_middleware(GuardStack, guards=guards)  # the order and its reasons: app/guards.py
    app.include_router(health.router)
    app.include_router(images.router, dependencies=[Depends(require_principal)])
    app.include_router(jobs_api.router, dependencies=[Depends(require_principal)])
    app.include_router(models.router, dependencies=[Depends(require_principal)])
    app.include_router(hosted_router(host))
    app.include_router(
        admin_router(
            AdminGuard(settings.admin_key), key_store, database, provider_infos(providers, catalog), state.breakers
        )
    )
    app.include_router(metrics_router(metrics, settings.admin_key))
    app.include_router(pages.router(settings))
    return app


def webhook_key(settings: Settings) -> bytes:
    """The webhook signing key (configured, or generated once in the data dir); :class:`ConfigError` if unusable."""
    configured = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    try:
        return load_or_create_secret(settings.data_dir, configured)
    except ValueError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from None


def runner_config(settings: Settings) -> RunnerConfig:
    return RunnerConfig(
        concurrency=settings.job_concurrency,
        lease_seconds=settings.job_lease_seconds,
        ttl_seconds=settings.job_ttl_seconds,
        webhook_retry_seconds=tuple(settings.webhook_retry_seconds),
    )


def stop_notice_of(app: FastAPI) -> StopNotice:
    """The app's :class:`StopNotice` (set by whoever runs the server when it is told to stop)."""
    notice = app.state.stop_notice
    if not isinstance(notice, StopNotice):
        raise RuntimeError("not an app made by create_app")
    return notice


def ledger_config(settings: Settings) -> LedgerConfig:
    return LedgerConfig(
        flush_rows=settings.ledger_flush_rows,
        flush_seconds=settings.ledger_flush_ms / 1000,
        max_pending=settings.ledger_max_pending,
    )


def admission_limits(settings: Settings) -> AdmissionLimits:
    return AdmissionLimits(
        max_inflight=settings.max_inflight,
        max_queued=settings.max_queued,
        queue_timeout_seconds=settings.queue_timeout_seconds,
        retry_after_seconds=settings.overload_retry_after_seconds,
        max_intake_bytes=settings.max_intake_bytes,
        body_caps=images.body_caps(settings),
        undeclared_intake_bytes=settings.max_upload_bytes,
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

    async def fetch(url: str, before_body: BeforeBody) -> bytes:
        try:
            return await fetch_image_bytes(client, url, policy, before_body)
        except UpstreamError as exc:
            raise InvalidRequestError(f"could not use image_url: {exc.message}", param="images") from exc

    return fetch
