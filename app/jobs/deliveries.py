"""Webhook deliveries of finished jobs: claimed from the store when due, sent, each attempt recorded.

The job runner's loop calls :meth:`WebhookDeliveries.start_due` each round. At most ``concurrency``
deliveries run at once in this process; a delivery holds a lease on its job's webhook (another
replica does not send it meanwhile). A failed attempt is retried after the next wait of
``retry_seconds``; after the last, it is given up. At stop, deliveries in flight are cancelled and
their claims handed back (:meth:`WebhookDeliveries.stop`), to be sent by the next process.
"""

from __future__ import annotations

import asyncio
import logging

import orjson
from sqlalchemy.exc import SQLAlchemyError

from app.db import error_summary
from app.jobs.models import job_object, now_ms
from app.jobs.results import JobResults
from app.jobs.store import JobStore
from app.jobs.webhooks import WebhookSender, delivered
from core.errors import GatewayError
from providers.fetch import redact_url

log = logging.getLogger("pixelgate.jobs")

DB_ERRORS = (OSError, SQLAlchemyError)


class WebhookDeliveries:
    """This process's webhook deliveries in flight; see the module docstring."""

    def __init__(
        self,
        *,
        store: JobStore,
        results: JobResults,
        sender: WebhookSender,
        concurrency: int,
        lease_seconds: float,
        retry_seconds: tuple[float, ...],
    ) -> None:
        self._store = store
        self._results = results
        self._sender = sender
        self._concurrency = concurrency
        self._lease_ms = int(lease_seconds * 1000)
        self._retry_seconds = retry_seconds
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def start_due(self) -> None:
        """Claim the webhooks due now, as many as there is room for, and start sending them."""
        free = self._concurrency - len(self._tasks)
        for job_id in await self._store.claim_webhooks(free, now_ms=now_ms(), lease_ms=self._lease_ms):
            self._tasks[job_id] = asyncio.create_task(self._deliver(job_id), name=f"pixelgate-webhook-{job_id}")

    async def stop(self, grace_seconds: float) -> list[str]:
        """Cancel the deliveries in flight (given ``grace_seconds`` to end); returns their jobs' ids, whose
        claims the caller hands back."""
        job_ids = list(self._tasks)
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=grace_seconds)
        return job_ids

    async def _deliver(self, job_id: str) -> None:
        try:
            row = await self._store.get(job_id)
            if row is None or row.webhook_url is None:
                return
            http_status: int | None = None
            try:
                body = orjson.dumps(job_object(row, await self._results.render(row)))
                http_status = await self._sender.send(row.webhook_url, row.id, body)
                ok = delivered(http_status)
                if not ok:
                    log.warning(
                        "job %s: webhook to %s answered HTTP %d", job_id, redact_url(row.webhook_url), http_status
                    )
            except GatewayError as exc:  # refused or unreachable URL, timeout; or the result not renderable now
                ok = False
                log.warning("job %s: webhook not delivered: %s", job_id, exc.message)
            attempts = row.webhook_attempts + 1
            schedule = self._retry_seconds
            next_ms = None if ok or attempts > len(schedule) else now_ms() + int(schedule[attempts - 1] * 1000)
            await self._store.webhook_tried(job_id, http_status=http_status, next_ms=next_ms, delivered=ok)
            if not ok and next_ms is None:
                log.warning("job %s: webhook given up after %d attempts", job_id, attempts)
        except DB_ERRORS as exc:
            log.warning("job %s: webhook bookkeeping failed: %s", job_id, error_summary(exc))
        finally:
            self._tasks.pop(job_id, None)
