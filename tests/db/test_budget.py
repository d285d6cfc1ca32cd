"""Budgets on each database: holds that cannot overspend under concurrency, charges, expired holds."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from app.db import Database
from app.db.schema import api_keys, budget_holds
from app.keys import KeyStore, NewKey
from app.keys.budget import Budgets, Hold
from app.principal import Principal
from core.errors import QuotaExceededError

PRICE = Decimal("0.01")


async def key_with_budget(database: Database, budget: float | None) -> Principal:
    created = await KeyStore(database).create(NewKey(name="budget", budget_usd=budget))
    return Principal(key_id=created.id, name=created.name, budget_usd=None if budget is None else Decimal(str(budget)))


async def money(database: Database, key_id: str) -> tuple[int, int, int]:
    """(spent, held, live hold rows) of ``key_id``, in micro-USD."""
    async with database.engine.connect() as connection:
        row = (
            await connection.execute(
                select(api_keys.c.spent_micros, api_keys.c.held_micros).where(api_keys.c.id == key_id)
            )
        ).one()
        holds = (await connection.execute(select(budget_holds).where(budget_holds.c.key_id == key_id))).all()
    return int(row[0]), int(row[1]), len(holds)


async def settled(budgets: Budgets) -> None:
    deadline = time.monotonic() + 10
    while budgets.settling:
        assert time.monotonic() < deadline, "settlements did not finish"
        await asyncio.sleep(0.01)


async def test_concurrent_holds_never_take_more_than_the_budget(database: Database) -> None:
    """30 requests at once against a budget worth 5: exactly 5 holds, 25 refusals, nothing overheld."""
    principal = await key_with_budget(database, 0.05)
    budgets = Budgets(database, hold_seconds=60)

    async def attempt() -> Hold | None:
        try:
            return await budgets.hold(principal, PRICE)
        except QuotaExceededError as refused:
            assert refused.status_code == 429 and refused.code == "insufficient_quota"
            assert refused.error_type == "insufficient_quota" and not refused.should_retry
            return None

    holds = await asyncio.gather(*(attempt() for _ in range(30)))
    taken = [hold for hold in holds if hold is not None]
    assert len(taken) == 5 and budgets.refused == 25
    assert await money(database, principal.key_id) == (0, 50_000, 5)
    for hold in taken:
        budgets.settle(hold, PRICE)
    await settled(budgets)
    assert await money(database, principal.key_id) == (50_000, 0, 0)
    with pytest.raises(QuotaExceededError):
        await budgets.hold(principal, PRICE)


async def test_a_hold_is_released_with_what_the_request_actually_cost(database: Database) -> None:
    principal = await key_with_budget(database, 1.0)
    budgets = Budgets(database, hold_seconds=60)
    hold = await budgets.hold(principal, Decimal("0.3"))
    assert hold is not None and hold.micros == 300_000
    assert await money(database, principal.key_id) == (0, 300_000, 1)
    budgets.settle(hold, Decimal("0.1"))  # the upstream made fewer or smaller images
    await settled(budgets)
    assert await money(database, principal.key_id) == (100_000, 0, 0)
    failed = await budgets.hold(principal, Decimal("0.9"))
    budgets.settle(failed, Decimal(0))  # a request that failed upstream costs nothing
    await settled(budgets)
    assert await money(database, principal.key_id) == (100_000, 0, 0)
    assert (await KeyStore(database).get(principal.key_id)).spent_usd == 0.1


async def test_keys_without_a_budget_are_charged_and_others_are_not_counted(database: Database) -> None:
    budgets = Budgets(database, hold_seconds=60)
    unlimited = await key_with_budget(database, None)
    hold = await budgets.hold(unlimited, Decimal("5"))
    assert hold == Hold(unlimited.key_id, None, 0)
    budgets.settle(hold, Decimal("0.25"))
    await settled(budgets)
    assert await money(database, unlimited.key_id) == (250_000, 0, 0)
    assert await budgets.hold(Principal(key_id="key:0123abcd"), Decimal("5")) is None  # a configured key
    assert await budgets.hold(Principal(key_id="addr:127.0.0.1"), Decimal("5")) is None  # an open gateway
    assert await budgets.hold(None, Decimal("5")) is None


async def test_an_expired_hold_is_released_by_the_sweep_and_its_late_charge_still_lands(database: Database) -> None:
    principal = await key_with_budget(database, 0.02)
    budgets = Budgets(database, hold_seconds=60)
    stale = await budgets.hold(principal, PRICE)  # as if its process died
    live = await budgets.hold(principal, PRICE)
    assert stale is not None and live is not None
    with pytest.raises(QuotaExceededError):
        await budgets.hold(principal, PRICE)
    async with database.engine.begin() as connection:
        await connection.execute(
            update(budget_holds)
            .where(budget_holds.c.id == stale.hold_id)
            .values(expires_ms=int(time.time() * 1000) - 1)
        )
    assert await budgets.sweep() == 1
    assert await money(database, principal.key_id) == (0, 10_000, 1)
    again = await budgets.hold(principal, PRICE)  # the released amount is usable again
    assert again is not None
    budgets.settle(stale, PRICE)  # the request outlived its hold: charged, nothing released twice
    await settled(budgets)
    assert await money(database, principal.key_id) == (10_000, 20_000, 2)
    assert await budgets.sweep() == 0
