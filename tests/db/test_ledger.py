"""The usage ledger on each database: batched writes, nothing lost at close, totals by each group."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from app.db import Database
from app.db.schema import usage_ledger
from app.usage import GroupBy, Grouping, Ledger, LedgerConfig, LedgerEntry, UsageRow, parse_range, usage_totals
from core.errors import InvalidRequestError

DAY1 = datetime(2025, 3, 1, 10, 0, tzinfo=UTC).timestamp()
DAY2 = datetime(2025, 3, 2, 23, 59, tzinfo=UTC).timestamp()


def entry(n: int, **fields: Any) -> LedgerEntry:
    return dataclasses.replace(LedgerEntry(request_id=f"req_{n}", status=200, total_ms=10 + n), **fields)


async def rows(database: Database) -> int:
    async with database.engine.connect() as connection:
        return int((await connection.execute(select(func.count()).select_from(usage_ledger))).scalar_one())


async def eventually(condition: Callable[[], Awaitable[bool]], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, f"not true after {timeout} s: {what}"
        await asyncio.sleep(0.01)


async def test_a_full_batch_is_written_at_once_and_close_writes_the_rest(database: Database) -> None:
    ledger = Ledger(database, LedgerConfig(flush_rows=3, flush_seconds=3600))
    ledger.start()
    for n in range(3):
        ledger.record(entry(n))

    async def one_batch() -> bool:
        return ledger.written == 3

    await eventually(one_batch, "a full batch written without waiting for the hour-long interval")
    ledger.record(entry(3))
    await asyncio.sleep(0.05)
    assert ledger.pending == 1 and await rows(database) == 3  # the fourth waits for its batch or its time
    await ledger.aclose()
    assert ledger.written == 4 and await rows(database) == 4


async def test_a_partial_batch_is_written_after_the_flush_interval(database: Database) -> None:
    ledger = Ledger(database, LedgerConfig(flush_rows=1000, flush_seconds=0.05))
    ledger.start()
    ledger.record(entry(1))
    ledger.record(entry(2))

    async def written() -> bool:
        return await rows(database) == 2

    await eventually(written, "the two rows written by the timer")
    await ledger.aclose()


async def test_a_row_keeps_every_field(database: Database) -> None:
    ledger = Ledger(database)
    ledger.start()
    ledger.record(
        LedgerEntry(
            request_id="req_full",
            status=502,
            total_ms=1234,
            key_id="key_abc",
            model="flux-kontext-pro",
            deployments=("fal:fal-ai/flux-pro/kontext", "replicate:black-forest-labs/flux-kontext-pro"),
            provider=None,
            error_code="upstream_error",
            images=0,
            megapixels=0.0,
            cost_usd=0.0,
            queue_ms=5,
            upstream_ms=1100,
            replay=True,
            created=DAY1,
        )
    )
    await ledger.aclose()
    async with database.engine.connect() as connection:
        row = (await connection.execute(select(usage_ledger))).one()._mapping
    assert row["deployments"] == ["fal:fal-ai/flux-pro/kontext", "replicate:black-forest-labs/flux-kontext-pro"]
    assert (row["status"], row["error_code"], row["key_id"], row["model"]) == (
        502,
        "upstream_error",
        "key_abc",
        "flux-kontext-pro",
    )
    assert (row["queue_ms"], row["upstream_ms"], row["total_ms"]) == (5, 1100, 1234)
    assert row["replay"] is True and row["created_ms"] == int(DAY1 * 1000) and row["day"] == "2025-03-01"


async def test_rows_wait_while_the_table_is_unusable_and_are_written_once_it_is_back(database: Database) -> None:
    ledger = Ledger(database, LedgerConfig(flush_rows=1, flush_seconds=0.01))
    async with database.engine.begin() as connection:
        await connection.execute(text("ALTER TABLE usage_ledger RENAME TO usage_ledger_away"))
    ledger.start()
    try:
        ledger.record(entry(1))
        ledger.record(entry(2))
        await asyncio.sleep(0.3)  # a few failed attempts
        assert ledger.written == 0 and ledger.pending == 2
    finally:
        async with database.engine.begin() as connection:
            await connection.execute(text("ALTER TABLE usage_ledger_away RENAME TO usage_ledger"))

    async def written() -> bool:
        return ledger.written == 2

    await eventually(written, "the kept rows written after the table came back", timeout=10)
    await ledger.aclose()
    assert await rows(database) == 2


def test_a_full_buffer_drops_new_rows_and_counts_them() -> None:
    ledger = Ledger(Database.from_setting(None, Path("unused")), LedgerConfig(max_pending=2))
    for n in range(3):
        ledger.record(entry(n))
    assert ledger.pending == 2 and ledger.dropped == 1


KNOWN = [
    entry(1, key_id="key_a", model="m1", provider="fal", images=2, megapixels=2.0, cost_usd=0.05, created=DAY1),
    entry(2, key_id="key_a", model="m2", provider="replicate", images=1, megapixels=1.0, cost_usd=0.04, created=DAY1),
    entry(3, key_id="key_b", model="m1", provider="fal", images=1, megapixels=0.5, cost_usd=0.025, created=DAY2),
    entry(4, key_id="key_b", model="m1", status=502, error_code="upstream_error", created=DAY2),
    entry(5, key_id=None, model=None, status=401, error_code="invalid_api_key", created=DAY2),
]


@pytest.fixture
async def known(database: Database) -> Database:
    ledger = Ledger(database)
    ledger.start()
    for row in KNOWN:
        ledger.record(row)
    await ledger.aclose()
    return database


@pytest.mark.parametrize(
    ("group_by", "expected"),
    [
        (
            "key",
            [("key_a", 2, 0, 3, 3.0, 0.09), ("key_b", 2, 1, 1, 0.5, 0.025), (None, 1, 1, 0, 0.0, 0.0)],
        ),
        (
            "model",
            [("m1", 3, 1, 3, 2.5, 0.075), ("m2", 1, 0, 1, 1.0, 0.04), (None, 1, 1, 0, 0.0, 0.0)],
        ),
        (
            "provider",
            [("fal", 2, 0, 3, 2.5, 0.075), ("replicate", 1, 0, 1, 1.0, 0.04), (None, 2, 2, 0, 0.0, 0.0)],
        ),
        ("day", [("2025-03-01", 2, 0, 3, 3.0, 0.09), ("2025-03-02", 3, 2, 1, 0.5, 0.025)]),
    ],
)
async def test_totals_by_each_group(
    known: Database, group_by: GroupBy, expected: list[tuple[str | None, int, int, int, float, float]]
) -> None:
    grouping = Grouping.parse(group_by)
    totals = await usage_totals(known, grouping, parse_range(None, None))
    assert totals == [
        UsageRow(groups=(g,), requests=r, errors=e, images=i, megapixels=mp, cost_usd=c)
        for g, r, e, i, mp, c in expected
    ]
    assert totals[0].wire(grouping)[group_by] == expected[0][0]


async def test_totals_within_a_range(known: Database) -> None:
    async def day_requests(start: str | None, end: str | None) -> list[tuple[str | None, int]]:
        totals = await usage_totals(known, Grouping.parse("day"), parse_range(start, end))
        return [(row.groups[0], row.requests) for row in totals]

    assert await day_requests("2025-03-02", None) == [("2025-03-02", 3)]
    assert await day_requests(None, "2025-03-01") == [("2025-03-01", 2)]  # a date as end: that whole day
    assert await day_requests("2025-03-01T11:00:00Z", "2025-03-03") == [("2025-03-02", 3)]
    assert await day_requests(str(int(DAY1)), str(int(DAY1) + 1)) == [("2025-03-01", 2)]
    assert await day_requests("2025-04-01", None) == []


@pytest.mark.parametrize(
    ("start", "end", "param"),
    [("yesterday", None, "start"), (None, "2025-13-01", "end"), ("2025-03-02", "2025-03-01T00:00:00", "end")],
)
def test_a_malformed_range_is_a_400_naming_the_bound(start: str | None, end: str | None, param: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_range(start, end)
    assert caught.value.param == param
