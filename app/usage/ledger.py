"""The usage ledger: one row per image request, written off the request path in batches.

:meth:`Ledger.record` only appends to a bounded in-memory buffer (no I/O, no await). A background
task writes the buffer in one multi-row INSERT as soon as ``flush_rows`` rows are waiting, or
``flush_seconds`` after the first of them arrived, whichever comes first. While the database is
away the rows wait and the write is retried with backoff; a buffer full of ``max_pending`` rows
drops new ones (counted in :attr:`Ledger.dropped` and logged), since holding the request would
be worse. :meth:`Ledger.aclose` (the lifespan's shutdown, after the requests in flight ended)
writes everything still buffered: a SIGTERM loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.exc import SQLAlchemyError

from app.db import Database, error_summary
from app.db.schema import usage_ledger
from app.keys.models import usd_to_micros

log = logging.getLogger("pixelgate.ledger")

RETRY_MAX_SECONDS = 5.0
CLOSE_TIMEOUT_SECONDS = 15.0
"""At shutdown, how long the last writes may take before the rows left are given up (and logged)."""
MAX_ROWS_PER_INSERT = 1000


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One request as the ledger keeps it. Never a secret: ``key_id`` is the key's id, not the key."""

    request_id: str
    status: int
    total_ms: int
    key_id: str | None = None
    model: str | None = None
    deployments: tuple[str, ...] = ()
    """Each deployment tried, in order, as ``provider:upstream``."""
    provider: str | None = None
    """The provider that served (None when none did)."""
    error_code: str | None = None
    images: int = 0
    megapixels: float = 0.0
    cost_usd: float = 0.0
    queue_ms: int | None = None
    upstream_ms: int | None = None
    replay: bool = False
    """An ``Idempotency-Key`` replay: answered from the first request's result, no upstream call."""
    created: float = field(default_factory=time.time)
    """Unix seconds."""

    def row(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "key_id": self.key_id,
            "model": self.model,
            "deployments": list(self.deployments),
            "provider": self.provider,
            "status": self.status,
            "error_code": self.error_code,
            "images": self.images,
            "megapixels": self.megapixels,
            "cost_micros": usd_to_micros(self.cost_usd),
            "queue_ms": self.queue_ms,
            "upstream_ms": self.upstream_ms,
            "total_ms": self.total_ms,
            "replay": self.replay,
            "created_ms": int(self.created * 1000),
            "day": datetime.fromtimestamp(self.created, UTC).date().isoformat(),
        }


@dataclass(frozen=True)
class LedgerConfig:
    flush_rows: int = 500
    flush_seconds: float = 0.2
    max_pending: int = 100_000


class Ledger:
    """Batches :class:`LedgerEntry` rows into ``database``; see the module docstring.

    Single event loop: :meth:`record` must be called from the loop :meth:`start` ran on.
    """

    def __init__(self, database: Database, config: LedgerConfig | None = None) -> None:
        self._database = database
        self.config = config or LedgerConfig()
        self._pending: list[LedgerEntry] = []
        self._nonempty = asyncio.Event()
        self._due = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._writing = 0
        self.written = 0
        self.dropped = 0

    @property
    def pending(self) -> int:
        """Rows recorded and not written yet (a batch being written included)."""
        return len(self._pending) + self._writing

    def record(self, entry: LedgerEntry) -> None:
        """Queue ``entry`` for writing; returns at once."""
        if self.pending >= self.config.max_pending:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error("usage ledger: %d rows dropped, the database is not keeping up", self.dropped)
            return
        self._pending.append(entry)
        if len(self._pending) == 1:
            self._nonempty.set()
        if len(self._pending) >= self.config.flush_rows:
            self._due.set()

    def start(self) -> None:
        """Start the writer (the lifespan's start, once the database is open)."""
        self._task = asyncio.create_task(self._run(), name="pixelgate-ledger")

    async def aclose(self) -> None:
        """Write what is buffered and stop; rows recorded later are dropped."""
        self._closing = True
        self._nonempty.set()
        self._due.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self._task, CLOSE_TIMEOUT_SECONDS)
        except TimeoutError:
            log.error("usage ledger: %d rows not written at shutdown (database unavailable)", self.pending)

    async def _run(self) -> None:
        failures = 0
        while True:
            await self._nonempty.wait()
            if not self._closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._due.wait(), self.config.flush_seconds)
            self._nonempty.clear()
            self._due.clear()
            try:
                await self._write_pending()
                failures = 0
            except (OSError, SQLAlchemyError) as exc:
                failures += 1
                log.warning("usage ledger: write failed (%s); %d rows kept", error_summary(exc), self.pending)
                await asyncio.sleep(min(RETRY_MAX_SECONDS, 0.1 * 2**failures))
            if self._closing and not self._pending:
                return

    async def _write_pending(self) -> None:
        batch, self._pending = self._pending, []
        self._writing += len(batch)
        written = 0
        try:
            async with self._database.engine.begin() as connection:
                for start in range(0, len(batch), MAX_ROWS_PER_INSERT):
                    rows = [entry.row() for entry in batch[start : start + MAX_ROWS_PER_INSERT]]
                    await connection.execute(insert(usage_ledger), rows)
            written = len(batch)
        finally:
            self._writing -= len(batch)
            # Not written (failed, or cancelled mid-write): back at the head, before newer rows.
            if written < len(batch):
                self._pending[:0] = batch
                self._nonempty.set()
        self.written += written
