"""The job runner: one loop per process that claims queued jobs, runs them, and delivers their webhooks.

Started in the app's lifespan. Every ``poll_seconds`` (at once when this process accepted a job or
a slot came free) it:

- claims jobs while fewer than ``concurrency`` run here (:meth:`JobStore.claim`; a job another
  process left behind, its lease expired or released, is claimed like a queued one) and runs each in
  a task: the stored request is planned and executed by the same :class:`~normalization.pipeline.Gateway`
  as a synchronous call (same normalization, emulation, fan-out bounds), with its images inline, and
  the answer or the error is recorded (:mod:`app.jobs.results`), with one usage-ledger row per run
  that ends;
- renews the leases of its running jobs (every ``heartbeat_seconds``): a job cancelled elsewhere
  (``DELETE`` on another replica) is cancelled here, upstream job included; a job another process
  took over (this one stalled past its lease) is dropped here without touching the upstream job;
- starts the webhook deliveries due (:mod:`app.jobs.deliveries`, at most ``webhook_concurrency`` at once);
- deletes finished jobs past their retention (every ``sweep_seconds``).

Stopping (:meth:`JobRunner.aclose`, the lifespan's end, after the HTTP drain): no new claims (and
none already from the SIGTERM on, see :class:`~app.shutdown.StopNotice`); running jobs are
*detached*: their tasks are cancelled with the tracker's ``detaching`` set, so the adapters leave
the upstream jobs running (after recording any handle still unrecorded), and their leases are
released, so the next process to start (or another replica) takes them over at once and follows
the recorded upstream jobs instead of submitting them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from app.db import error_summary
from app.jobs.deliveries import DB_ERRORS, WebhookDeliveries
from app.jobs.models import ClaimedJob, now_ms
from app.jobs.results import JobResults, split_result
from app.jobs.store import JobStore
from app.jobs.tracking import JobTracker
from app.jobs.webhooks import WebhookSender
from app.keys.budget import Budgets
from app.principal import Principal
from app.shutdown import StopNotice
from app.usage import Ledger, LedgerEntry
from core.errors import GatewayError
from normalization.metering import Spend
from normalization.pipeline import Gateway
from normalization.plan import Plan
from normalization.response import ImagesResponse
from normalization.routing.route import Route

log = logging.getLogger("pixelgate.jobs")

DB_ERROR_LOG_SECONDS = 30.0
MAX_RUNS = 5
"""A job is run at most this many times (each restart or takeover is a run); then it fails."""


@dataclass(frozen=True)
class RunnerConfig:
    concurrency: int
    """Jobs run at once by this process."""
    lease_seconds: float
    """How long a claim holds without renewal; a dead process's jobs are taken over after it."""
    ttl_seconds: int
    """How long a finished job (and its answer) is kept."""
    webhook_retry_seconds: tuple[float, ...]
    """The waits before each retry of a webhook; after the last, it is given up."""
    poll_seconds: float = 0.5
    webhook_concurrency: int = 8
    sweep_seconds: float = 60.0
    detach_grace_seconds: float = 5.0
    """At stop, how long detached jobs get to record their upstream jobs."""

    @property
    def heartbeat_seconds(self) -> float:
        return min(1.0, self.lease_seconds / 3)


@dataclass
class _Running:
    task: asyncio.Task[None]
    tracker: JobTracker


def process_id() -> str:
    """This process's name in leases: host, pid and a random part (a restarted pid is another process)."""
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{secrets.token_hex(4)}"


def inline_images(route: Route) -> Route:
    """``route`` answering with inline images: a job stores its images and hosts them when read."""

    def inline(plan: Plan) -> Plan:
        emulation = plan.emulation.model_copy(update={"response_format": "b64_json", "url_fallback": False})
        return plan.model_copy(update={"emulation": emulation})

    options = tuple(option.model_copy(update={"plan": inline(option.plan)}) for option in route.options)
    return route.model_copy(update={"options": options})


class JobRunner:
    """See the module docstring. One per process, made and closed by the app's lifespan."""

    def __init__(
        self,
        *,
        store: JobStore,
        gateway: Gateway,
        results: JobResults,
        sender: WebhookSender,
        ledger: Ledger,
        config: RunnerConfig,
        notice: StopNotice,
        budgets: Budgets,
        principal_of: Callable[[str], Awaitable[Principal]],
    ) -> None:
        self._budgets = budgets
        self._principal_of = principal_of
        self._store = store
        self._gateway = gateway
        self._ledger = ledger
        self.config = config
        self._notice = notice
        self.owner = process_id()
        self._running: dict[str, _Running] = {}
        self._deliveries = WebhookDeliveries(
            store=store,
            results=results,
            sender=sender,
            concurrency=config.webhook_concurrency,
            lease_seconds=config.lease_seconds,
            retry_seconds=config.webhook_retry_seconds,
        )
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._stopped = False

    @property
    def running(self) -> int:
        return len(self._running)

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._loop(), name="pixelgate-job-runner")

    def wake(self) -> None:
        """Look for work now (a job was just accepted here, or a slot came free)."""
        self._wake.set()

    def cancel_local(self, job_id: str) -> None:
        """The job was cancelled: if it runs here, stop it now (its upstream job is cancelled too)."""
        running = self._running.get(job_id)
        if running is not None:
            running.task.cancel()

    # -- the loop --------------------------------------------------------------------------------

    async def _loop(self) -> None:
        next_heartbeat = next_sweep = quiet_until = 0.0
        while not self._stopped:
            self._wake.clear()
            now = time.monotonic()
            try:
                if not self._notice.stopping:
                    await self._claim()
                if now >= next_heartbeat:
                    next_heartbeat = now + self.config.heartbeat_seconds
                    await self._heartbeat()
                await self._deliveries.start_due()
                if now >= next_sweep:
                    next_sweep = now + self.config.sweep_seconds
                    swept = await self._store.sweep(now_ms=now_ms())
                    if swept:
                        log.info("deleted %d finished jobs past their retention", swept)
            except DB_ERRORS as exc:
                if now >= quiet_until:  # once per interval while the database is away, not every poll
                    quiet_until = now + DB_ERROR_LOG_SECONDS
                    log.warning("job runner: database error, retrying: %s", error_summary(exc))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.poll_seconds):
                    await self._wake.wait()

    async def _claim(self) -> None:
        free = self.config.concurrency - len(self._running)
        lease_ms = int(self.config.lease_seconds * 1000)
        for job in await self._store.claim(self.owner, free, now_ms=now_ms(), lease_ms=lease_ms):
            tracker = JobTracker(self._store, self.owner, job.id, job.handles)
            if job.runs > MAX_RUNS:
                # Taken over again and again: whatever stops its processes would stop the next one too.
                interrupted = GatewayError(f"the job was interrupted {job.runs - 1} times and is given up")
                await self._failed(job, interrupted, time.monotonic())
                continue
            if job.runs > 1:
                log.info("job %s: taken over (run %d, %d upstream jobs to follow)", job.id, job.runs, len(job.handles))
            task = asyncio.create_task(self._run(job, tracker), name=f"pixelgate-{job.id}")
            self._running[job.id] = _Running(task, tracker)

    async def _heartbeat(self) -> None:
        ids = [job_id for job_id, running in self._running.items() if not running.task.done()]
        if not ids:
            return
        lease_ms = int(self.config.lease_seconds * 1000)
        held = await self._store.renew(self.owner, ids, now_ms=now_ms(), lease_ms=lease_ms)
        lost = [job_id for job_id in ids if job_id not in held]
        if not lost:
            return
        statuses = await self._store.statuses(lost)
        for job_id in lost:
            running = self._running.get(job_id)
            status = statuses.get(job_id)
            if running is None or running.task.done() or status in ("completed", "failed"):
                continue  # its run is recording its own end
            if status == "in_progress":  # another process holds it now and follows its upstream jobs
                log.warning("job %s: lease lost to another process; leaving it to that one", job_id)
                running.tracker.detaching = True
            running.task.cancel()

    # -- one job ---------------------------------------------------------------------------------

    async def _run(self, job: ClaimedJob, tracker: JobTracker) -> None:
        started = time.monotonic()
        try:
            response, cost = await self._execute(job, tracker)
        except asyncio.CancelledError:
            raise
        except GatewayError as exc:
            await self._failed(job, exc, started)
        except Exception:
            log.exception("job %s: unexpected error", job.id)
            await self._failed(job, GatewayError("the gateway failed while running this job"), started)
        else:
            await self._completed(job, response, cost, started)
        finally:
            self._running.pop(job.id, None)
            self._wake.set()

    async def _execute(self, job: ClaimedJob, tracker: JobTracker) -> tuple[ImagesResponse, Decimal]:
        """The job's answer and what its upstream calls cost. As on the synchronous path, the estimate
        is held on the key's budget (a job that no longer fits fails with 429 ``insufficient_quota``)
        and settled with the actual cost however the run ends."""
        request = job.request
        route = self._gateway.plan(
            request.image_request(),
            request.mode,
            request.edit_inputs(job.inputs),
            strict=request.strict,
            url_fallback=False,
        )
        hold = await self._budgets.hold(await self._principal_of(job.key_id), route.estimate())
        spend = Spend()
        try:
            response = await self._gateway.execute(
                inline_images(route), base_url=request.base_url, tracker=tracker, spend=spend
            )
        finally:
            self._budgets.settle(hold, spend.total)
        return response, spend.total

    async def _completed(self, job: ClaimedJob, response: ImagesResponse, cost: Decimal, started: float) -> None:
        body, images = split_result(response)
        ttl_ms = self.config.ttl_seconds * 1000
        try:
            kept = await self._store.complete(
                self.owner, job.id, result=body, images=images, now_ms=now_ms(), ttl_ms=ttl_ms
            )
        except DB_ERRORS as exc:
            # The lease runs out and the job is run again, following its recorded upstream jobs.
            log.warning("job %s: could not record its answer: %s", job.id, error_summary(exc))
            return
        if not kept:
            log.info("job %s: finished after it was cancelled or taken over; answer dropped", job.id)
            return
        meta = response.metadata
        width, _, height = response.size.partition("x")
        pixels = int(width) * int(height) if width.isdigit() and height.isdigit() else 0
        self._record(
            job,
            started,
            status=200,
            provider=meta.provider,
            deployments=(f"{meta.provider}:{meta.upstream_model}",),
            images=len(response.data),
            megapixels=len(response.data) * pixels / 1e6,
            cost_usd=float(cost),
        )

    async def _failed(self, job: ClaimedJob, exc: GatewayError, started: float) -> None:
        ttl_ms = self.config.ttl_seconds * 1000
        try:
            kept = await self._store.fail(
                self.owner,
                job.id,
                status=exc.status_code,
                error=exc.to_body()["error"],
                now_ms=now_ms(),
                ttl_ms=ttl_ms,
            )
        except DB_ERRORS as db_exc:
            log.warning("job %s: could not record its failure: %s", job.id, error_summary(db_exc))
            return
        if kept:
            self._record(job, started, status=exc.status_code, error_code=exc.code)

    def _record(
        self,
        job: ClaimedJob,
        started: float,
        *,
        status: int,
        error_code: str | None = None,
        provider: str | None = None,
        deployments: tuple[str, ...] = (),
        images: int = 0,
        megapixels: float = 0.0,
        cost_usd: float = 0.0,
    ) -> None:
        """One usage-ledger row for the run that ended the job (its request id is the job id)."""
        self._ledger.record(
            LedgerEntry(
                request_id=job.id,
                status=status,
                total_ms=max(0, now_ms() - job.created_ms),
                key_id=job.key_id,
                model=job.model,
                deployments=deployments,
                provider=provider,
                error_code=error_code,
                images=images,
                megapixels=megapixels,
                cost_usd=cost_usd,
                upstream_ms=round((time.monotonic() - started) * 1000),
            )
        )

    # -- stopping --------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop: no more claims, detach the running jobs and release them (see the module docstring)."""
        if self._stopped:
            return
        self._stopped = True
        if self._loop_task is not None:
            # Let the loop end its round: cancelling it inside a query would leave a connection half-used.
            self._wake.set()
            await _settle([self._loop_task], self.config.detach_grace_seconds)
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        running = list(self._running.items())
        for _, job in running:
            job.tracker.detaching = True
            job.task.cancel()
        await _settle([job.task for _, job in running], self.config.detach_grace_seconds)
        deliveries = await self._deliveries.stop(self.config.detach_grace_seconds)
        try:
            await self._store.release(self.owner, [job_id for job_id, _ in running])
            await self._store.unclaim_webhooks(deliveries, now_ms=now_ms())
        except DB_ERRORS as exc:
            log.warning(
                "job runner: could not release its jobs (they are taken over when their leases end): %s",
                error_summary(exc),
            )
        if running:
            log.info("detached %d running jobs; the next process follows their upstream jobs", len(running))


async def _settle(tasks: Sequence[asyncio.Task[None]], timeout: float) -> None:
    if tasks:
        await asyncio.wait(tasks, timeout=timeout)
