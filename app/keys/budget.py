"""Managed keys' budgets: held before the upstream call, charged after it, never overspent.

A request of a key with a ``budget_usd`` first **holds** its estimate: one conditional UPDATE adds it
to the key's ``held_micros`` only where ``spent_micros + held_micros + estimate <= budget_micros``,
and inserts a ``budget_holds`` row, in one transaction. The database evaluates the condition
against the row as it is when the UPDATE gets it (PostgreSQL re-checks it after a concurrent
update commits; SQLite runs one writer at a time), so requests racing for the last dollars cannot
all pass: whatever the concurrency, ``spent + held`` stays within the budget. A request whose
estimate does not fit gets 429 ``insufficient_quota``.

When the request ends (answered, failed, or cancelled) it is **settled**: the hold row is deleted,
its amount released from ``held_micros`` and the actual cost added to ``spent_micros``, again in one
transaction. The answer does not wait for it: settling runs in the background (retried while the
database is away, finished at shutdown), and until it lands the hold still counts. A key without
a budget is only charged (every managed key shows what it spent).

A process that dies between the two leaves its holds behind; each hold expires (the request
deadline plus a margin) and a sweep, every replica every minute, releases expired holds. What such
a request cost is then not charged: the price of never overspending is a possible undercharge after
a crash. The actual cost may exceed the estimate (a result larger than the size assumed): spending
can then pass the budget by that difference, never by a request that was not held.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import delete, insert, update
from sqlalchemy.exc import SQLAlchemyError

from app.db import Database, error_summary, unavailable_as_503
from app.db.schema import api_keys, budget_holds
from app.keys.secrets import is_key_id
from app.principal import Principal
from core.errors import QuotaExceededError
from normalization.pricing import micros

log = logging.getLogger("pixelgate.budget")

SWEEP_SECONDS = 60.0
HOLD_MARGIN_SECONDS = 600.0
"""How much longer than the request deadline a hold lives: the emulation and delivery after the
upstream calls, and a slow database, come on top of the deadline."""
SETTLE_ATTEMPTS = 8
CLOSE_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Hold:
    """A request's hold on its key's budget (``micros`` 0: nothing held, the key is only charged)."""

    key_id: str
    hold_id: str | None
    micros: int


def quota_error() -> QuotaExceededError:
    return QuotaExceededError(
        "You exceeded your current quota: this API key's budget cannot cover the request. "
        "Ask the gateway's operator for a larger budget.",
    )


class Budgets:
    """Holds and charges managed keys' spending in ``database`` (see the module docstring).

    ``refused`` counts the requests refused for their budget (a metric).
    """

    def __init__(self, database: Database, *, hold_seconds: float) -> None:
        self._database = database
        self._hold_ms = int((hold_seconds + HOLD_MARGIN_SECONDS) * 1000)
        self._settling: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self.refused = 0
        self.settle_failures = 0

    @staticmethod
    def charges(principal: Principal | None) -> bool:
        """Whether requests of ``principal`` are charged: a managed key (configured keys and open
        callers have no spending to track)."""
        return principal is not None and is_key_id(principal.key_id)

    async def hold(self, principal: Principal | None, estimate: Decimal) -> Hold | None:
        """Hold ``estimate`` of the principal's budget; None when nothing is charged to it.

        Raises 429 ``insufficient_quota`` when the budget cannot cover it, 503
        ``database_unavailable`` when the database cannot answer.
        """
        if principal is None or not self.charges(principal):
            return None
        amount = micros(estimate)
        if principal.budget_usd is None or amount <= 0:
            return Hold(principal.key_id, None, 0)
        hold_id = "hold_" + secrets.token_hex(12)
        now = int(time.time() * 1000)
        column = api_keys.c
        with unavailable_as_503():
            async with self._database.engine.begin() as connection:
                taken = await connection.execute(
                    update(api_keys)
                    .where(
                        column.id == principal.key_id,
                        column.budget_micros.is_not(None),
                        column.spent_micros + column.held_micros + amount <= column.budget_micros,
                    )
                    .values(held_micros=column.held_micros + amount)
                )
                if taken.rowcount == 1:
                    await connection.execute(
                        insert(budget_holds).values(
                            id=hold_id,
                            key_id=principal.key_id,
                            micros=amount,
                            created_ms=now,
                            expires_ms=now + self._hold_ms,
                        )
                    )
        if taken.rowcount != 1:
            self.refused += 1
            raise quota_error()
        return Hold(principal.key_id, hold_id, amount)

    def settle(self, hold: Hold | None, actual: Decimal) -> None:
        """Release ``hold`` and charge ``actual`` to its key, in the background; returns at once."""
        if hold is None or (hold.hold_id is None and micros(actual) <= 0):
            return
        task = asyncio.create_task(self._settle(hold, micros(actual)), name="pixelgate-budget-settle")
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _settle(self, hold: Hold, spent: int) -> None:
        for attempt in range(SETTLE_ATTEMPTS):
            try:
                await self._write_settlement(hold, spent)
                return
            except (OSError, SQLAlchemyError) as exc:
                log.warning("budget: charging key %s failed (%s); retrying", hold.key_id, error_summary(exc))
                await asyncio.sleep(min(5.0, 0.1 * 2**attempt))
        self.settle_failures += 1
        log.error("budget: could not charge key %s %d micro-USD; its hold expires by itself", hold.key_id, spent)

    async def _write_settlement(self, hold: Hold, spent: int) -> None:
        column = api_keys.c
        async with self._database.engine.begin() as connection:
            released = 0
            if hold.hold_id is not None:
                row = (
                    await connection.execute(
                        delete(budget_holds).where(budget_holds.c.id == hold.hold_id).returning(budget_holds.c.micros)
                    )
                ).first()
                # Gone: the sweep released it already (the request outlived its hold).
                released = 0 if row is None else int(row[0])
            if released or spent:
                await connection.execute(
                    update(api_keys)
                    .where(column.id == hold.key_id)
                    .values(held_micros=column.held_micros - released, spent_micros=column.spent_micros + spent)
                )

    async def sweep(self) -> int:
        """Release every expired hold (left by a process that died); returns how many."""
        now = int(time.time() * 1000)
        async with self._database.engine.begin() as connection:
            rows = (
                await connection.execute(
                    delete(budget_holds)
                    .where(budget_holds.c.expires_ms <= now)
                    .returning(budget_holds.c.key_id, budget_holds.c.micros)
                )
            ).all()
            by_key: dict[str, int] = defaultdict(int)
            for key_id, amount in rows:
                by_key[key_id] += int(amount)
            for key_id, amount in sorted(by_key.items()):
                await connection.execute(
                    update(api_keys).where(api_keys.c.id == key_id).values(held_micros=api_keys.c.held_micros - amount)
                )
        if rows:
            log.warning("budget: released %d expired hold(s) of %d key(s)", len(rows), len(by_key))
        return len(rows)

    def start(self) -> None:
        """Start the periodic sweep (the lifespan's start, once the database is open)."""
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="pixelgate-budget-sweep")

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except (OSError, SQLAlchemyError) as exc:
                log.warning("budget: sweeping expired holds failed (%s)", error_summary(exc))
            await asyncio.sleep(SWEEP_SECONDS)

    async def aclose(self) -> None:
        """Stop sweeping; finish the settlements still running (after the last request ended)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._settling:
            _, pending = await asyncio.wait(set(self._settling), timeout=CLOSE_TIMEOUT_SECONDS)
            for task in pending:
                task.cancel()
            if pending:
                log.error("budget: %d charge(s) not written at shutdown (database unavailable)", len(pending))

    @property
    def settling(self) -> int:
        """Settlements not written yet."""
        return len(self._settling)
