"""Async jobs in the database: create, read, cancel, and the claims by which processes share the work.

Every process of a deployment runs jobs from the one ``jobs`` table. A process *claims* a job by
setting ``lease_owner`` to its own id and ``lease_until_ms`` into the future, in one statement that
only matches a job nobody holds (queued, or in progress under an expired lease): on PostgreSQL the
candidate rows are picked with ``FOR UPDATE SKIP LOCKED``, so processes claiming at once skip each
other's rows instead of waiting; on SQLite the statement runs under the database's one write lock.
A claim is renewed while the job runs (:meth:`JobStore.renew`); a process that dies stops renewing,
its leases expire and another process takes its jobs over. Every write a runner makes afterwards is
conditional on still holding the lease and the job still being in progress, so a job cancelled or
taken over meanwhile is never overwritten by a late answer.

Webhook deliveries are claimed the same way, through ``webhook_next_ms``: a delivery is due when
that time has come, and claiming it moves the time one lease ahead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import Row, Select, and_, case, delete, func, insert, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from app.db import Database
from app.db.schema import jobs
from app.jobs import blobs
from app.jobs.models import (
    FINISHED,
    UNFINISHED,
    ClaimedJob,
    JobRequest,
    JobRow,
    RecordedHandle,
    ResultLinks,
)

_HANDLES = TypeAdapter(list[RecordedHandle])
_ROW_COLUMNS = (
    jobs.c.id,
    jobs.c.key_id,
    jobs.c.model,
    jobs.c.status,
    jobs.c.request,
    jobs.c.created_ms,
    jobs.c.started_ms,
    jobs.c.finished_ms,
    jobs.c.expires_ms,
    jobs.c.result,
    jobs.c.result_links,
    jobs.c.error,
    jobs.c.webhook_url,
    jobs.c.webhook_status,
    jobs.c.webhook_attempts,
)


def _job_row(row: Row[Any, *tuple[Any, ...]]) -> JobRow:
    links = row.result_links
    return JobRow(
        id=row.id,
        key_id=row.key_id,
        model=row.model,
        status=row.status,
        request=JobRequest.model_validate(row.request),
        created_ms=row.created_ms,
        started_ms=row.started_ms,
        finished_ms=row.finished_ms,
        expires_ms=row.expires_ms,
        result=row.result,
        result_links=ResultLinks.model_validate(links) if links is not None else None,
        error=row.error,
        webhook_url=row.webhook_url,
        webhook_status=row.webhook_status,
        webhook_attempts=row.webhook_attempts,
    )


def _finished(now_ms: int, ttl_ms: int) -> dict[str, Any]:
    """What every finished job records: when, until when it is kept, its inputs and lease let go, and
    its webhook due."""
    return {
        "finished_ms": now_ms,
        "expires_ms": now_ms + ttl_ms,
        "inputs": None,
        "lease_owner": None,
        "lease_until_ms": None,
        **_webhook_due(now_ms),
    }


def _webhook_due(now_ms: int) -> dict[str, Any]:
    """The columns that queue a finished job's webhook (when it has a URL) for delivery now."""
    has_url = jobs.c.webhook_url.is_not(None)
    return {
        "webhook_status": case((has_url, "pending"), else_=None),
        "webhook_next_ms": case((has_url, now_ms), else_=None),
    }


class JobStore:
    """The ``jobs`` table; see the module docstring. Methods raise the driver's errors (the callers map them)."""

    def __init__(self, database: Database) -> None:
        self._database = database

    # -- the API's side --------------------------------------------------------------------------

    async def create(
        self,
        *,
        job_id: str,
        key_id: str,
        model: str,
        request: JobRequest,
        inputs: Sequence[bytes],
        webhook_url: str | None,
        now_ms: int,
    ) -> JobRow:
        values = {
            "id": job_id,
            "key_id": key_id,
            "mode": request.mode,
            "model": model,
            "status": "queued",
            "request": request.model_dump(mode="json"),
            "inputs": blobs.pack(inputs) if inputs else None,
            "webhook_url": webhook_url,
            "created_ms": now_ms,
        }
        async with self._database.engine.begin() as connection:
            await connection.execute(insert(jobs).values(**values))
        return JobRow(
            id=job_id,
            key_id=key_id,
            model=model,
            status="queued",
            request=request,
            created_ms=now_ms,
            webhook_url=webhook_url,
        )

    async def unfinished(self, key_id: str) -> int:
        """How many of ``key_id``'s jobs are queued or running."""
        query = select(func.count()).select_from(jobs).where(jobs.c.key_id == key_id, jobs.c.status.in_(UNFINISHED))
        async with self._database.engine.connect() as connection:
            return int((await connection.execute(query)).scalar_one())

    async def get(self, job_id: str, key_id: str | None = None) -> JobRow | None:
        """The job (without image bytes); None when there is none, or it belongs to another key."""
        query = select(*_ROW_COLUMNS).where(jobs.c.id == job_id)
        if key_id is not None:
            query = query.where(jobs.c.key_id == key_id)
        async with self._database.engine.connect() as connection:
            row = (await connection.execute(query)).first()
        return _job_row(row) if row is not None else None

    async def result_images(self, job_id: str) -> list[bytes] | None:
        query = select(jobs.c.result_images).where(jobs.c.id == job_id)
        async with self._database.engine.connect() as connection:
            blob = (await connection.execute(query)).scalar_one_or_none()
        return blobs.unpack(blob) if blob is not None else None

    async def save_links(self, job_id: str, links: ResultLinks) -> None:
        async with self._database.engine.begin() as connection:
            await connection.execute(
                update(jobs).where(jobs.c.id == job_id).values(result_links=links.model_dump(mode="json"))
            )

    async def cancel(self, job_id: str, key_id: str, *, now_ms: int, ttl_ms: int) -> bool:
        """Cancel the job if it is still queued or running; True when this call cancelled it."""
        statement = (
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.key_id == key_id, jobs.c.status.in_(UNFINISHED))
            .values(
                status="cancelled",
                finished_ms=now_ms,
                expires_ms=now_ms + ttl_ms,
                inputs=None,
                lease_owner=None,
                lease_until_ms=None,
                **_webhook_due(now_ms),
            )
        )
        async with self._database.engine.begin() as connection:
            return (await connection.execute(statement)).rowcount == 1

    # -- the runners' side -----------------------------------------------------------------------

    def _picked(self, candidates: Select[tuple[str]]) -> ColumnElement[bool]:
        """The rows ``candidates`` selects, as the condition of one UPDATE that claims them.

        PostgreSQL: locked with ``FOR UPDATE SKIP LOCKED`` in a materialized CTE, so the selection is
        made exactly once (a ``LIMIT`` subquery under ``IN`` may be run again by the planner and
        match more rows than the limit). SQLite: a plain subquery, the statement holding the write lock.
        """
        if self._database.dialect == "postgresql":
            picked = candidates.with_for_update(skip_locked=True).cte("picked").prefix_with("MATERIALIZED")
            return jobs.c.id == picked.c.id
        return jobs.c.id.in_(candidates.scalar_subquery())

    def _claimable(self, now_ms: int) -> ColumnElement[bool]:
        expired = and_(jobs.c.status == "in_progress", jobs.c.lease_until_ms < now_ms)
        return or_(jobs.c.status == "queued", expired)

    async def claim(self, owner: str, limit: int, *, now_ms: int, lease_ms: int) -> list[ClaimedJob]:
        """Take up to ``limit`` jobs nobody holds, oldest first, leased to ``owner`` until ``now + lease``."""
        if limit <= 0:
            return []
        async with self._database.engine.connect() as connection:
            # A read first: an idle gateway then never takes SQLite's write lock to find nothing.
            probe = select(jobs.c.id).where(self._claimable(now_ms)).limit(1)
            if (await connection.execute(probe)).first() is None:
                return []
        candidates = select(jobs.c.id).where(self._claimable(now_ms)).order_by(jobs.c.created_ms).limit(limit)
        statement = (
            update(jobs)
            .where(self._picked(candidates), self._claimable(now_ms))
            .values(
                status="in_progress",
                lease_owner=owner,
                lease_until_ms=now_ms + lease_ms,
                runs=jobs.c.runs + 1,
                started_ms=func.coalesce(jobs.c.started_ms, now_ms),
            )
            .returning(
                jobs.c.id,
                jobs.c.key_id,
                jobs.c.model,
                jobs.c.request,
                jobs.c.inputs,
                jobs.c.progress,
                jobs.c.created_ms,
                jobs.c.runs,
            )
        )
        async with self._database.engine.begin() as connection:
            rows = (await connection.execute(statement)).all()
        return [
            ClaimedJob(
                id=row.id,
                key_id=row.key_id,
                model=row.model,
                request=JobRequest.model_validate(row.request),
                inputs=blobs.unpack(row.inputs) if row.inputs is not None else [],
                handles=tuple(_HANDLES.validate_python(row.progress or [])),
                created_ms=row.created_ms,
                runs=row.runs,
            )
            for row in sorted(rows, key=lambda r: r.created_ms)
        ]

    def _held_by(self, owner: str, job_id: str) -> ColumnElement[bool]:
        return and_(jobs.c.id == job_id, jobs.c.lease_owner == owner, jobs.c.status == "in_progress")

    async def renew(self, owner: str, job_ids: Sequence[str], *, now_ms: int, lease_ms: int) -> set[str]:
        """Extend ``owner``'s leases on ``job_ids``; the ids it still holds (the others were cancelled,
        finished or taken over)."""
        if not job_ids:
            return set()
        held = and_(jobs.c.id.in_(list(job_ids)), jobs.c.lease_owner == owner, jobs.c.status == "in_progress")
        statement = update(jobs).where(held).values(lease_until_ms=now_ms + lease_ms).returning(jobs.c.id)
        async with self._database.engine.begin() as connection:
            return {row.id for row in (await connection.execute(statement)).all()}

    async def statuses(self, job_ids: Sequence[str]) -> dict[str, str]:
        query = select(jobs.c.id, jobs.c.status).where(jobs.c.id.in_(list(job_ids)))
        async with self._database.engine.connect() as connection:
            return {row.id: row.status for row in (await connection.execute(query)).all()}

    async def save_progress(self, owner: str, job_id: str, handles: Sequence[RecordedHandle]) -> None:
        value = [handle.model_dump(mode="json") for handle in handles]
        async with self._database.engine.begin() as connection:
            await connection.execute(update(jobs).where(self._held_by(owner, job_id)).values(progress=value))

    async def complete(
        self,
        owner: str,
        job_id: str,
        *,
        result: dict[str, Any],
        images: Sequence[bytes],
        now_ms: int,
        ttl_ms: int,
    ) -> bool:
        """Record the answer; False when ``owner`` no longer held the job (cancelled, taken over)."""
        values = {"status": "completed", "result": result, "result_images": blobs.pack(images)}
        return await self._update_held(owner, job_id, {**values, **_finished(now_ms, ttl_ms)})

    async def fail(
        self, owner: str, job_id: str, *, status: int, error: dict[str, Any], now_ms: int, ttl_ms: int
    ) -> bool:
        """Record the failure (the OpenAI error object); False when ``owner`` no longer held the job."""
        values = {"status": "failed", "error": error, "error_status": status}
        return await self._update_held(owner, job_id, {**values, **_finished(now_ms, ttl_ms)})

    async def _update_held(self, owner: str, job_id: str, values: dict[str, Any]) -> bool:
        statement = update(jobs).where(self._held_by(owner, job_id)).values(values)
        async with self._database.engine.begin() as connection:
            return (await connection.execute(statement)).rowcount == 1

    async def release(self, owner: str, job_ids: Sequence[str]) -> None:
        """Give up ``owner``'s leases at once (the process is stopping): the next process takes the jobs
        over without waiting for the leases to expire. The jobs stay in progress, with their upstream
        jobs recorded."""
        if not job_ids:
            return
        held = and_(jobs.c.id.in_(list(job_ids)), jobs.c.lease_owner == owner, jobs.c.status == "in_progress")
        async with self._database.engine.begin() as connection:
            await connection.execute(update(jobs).where(held).values(lease_owner=None, lease_until_ms=0))

    # -- webhooks --------------------------------------------------------------------------------

    async def claim_webhooks(self, limit: int, *, now_ms: int, lease_ms: int) -> list[str]:
        """Take up to ``limit`` due webhook deliveries (their next try moved one lease ahead)."""
        if limit <= 0:
            return []
        due = and_(jobs.c.webhook_status == "pending", jobs.c.webhook_next_ms <= now_ms)
        async with self._database.engine.connect() as connection:
            if (await connection.execute(select(jobs.c.id).where(due).limit(1))).first() is None:
                return []
        candidates = select(jobs.c.id).where(due).order_by(jobs.c.webhook_next_ms).limit(limit)
        statement = (
            update(jobs)
            .where(self._picked(candidates), due)
            .values(webhook_next_ms=now_ms + lease_ms)
            .returning(jobs.c.id)
        )
        async with self._database.engine.begin() as connection:
            return [row.id for row in (await connection.execute(statement)).all()]

    async def webhook_tried(
        self, job_id: str, *, http_status: int | None, next_ms: int | None, delivered: bool
    ) -> None:
        """Record one delivery attempt: delivered, to be retried at ``next_ms``, or (``next_ms`` None) given up."""
        status = "delivered" if delivered else ("pending" if next_ms is not None else "failed")
        values = {
            "webhook_status": status,
            "webhook_attempts": jobs.c.webhook_attempts + 1,
            "webhook_next_ms": None if delivered else next_ms,
            "webhook_last_status": http_status,
        }
        async with self._database.engine.begin() as connection:
            await connection.execute(update(jobs).where(jobs.c.id == job_id).values(values))

    async def unclaim_webhooks(self, job_ids: Sequence[str], *, now_ms: int) -> None:
        """Deliveries this process claimed but will not make (it is stopping): due again now."""
        if not job_ids:
            return
        pending = and_(jobs.c.id.in_(list(job_ids)), jobs.c.webhook_status == "pending")
        async with self._database.engine.begin() as connection:
            await connection.execute(update(jobs).where(pending).values(webhook_next_ms=now_ms))

    async def sweep(self, *, now_ms: int) -> int:
        """Delete finished jobs past their retention; how many."""
        expired = and_(jobs.c.status.in_(FINISHED), jobs.c.expires_ms <= now_ms)
        async with self._database.engine.begin() as connection:
            return (await connection.execute(delete(jobs).where(expired))).rowcount
