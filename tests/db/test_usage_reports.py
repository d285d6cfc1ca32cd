"""What the dashboard reads from the ledger, on each database: time series (a time bucket and one
other field), the recent requests a page at a time, and each provider's recent record."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from app.db import Database
from app.keys import KeyStore, NewKey
from app.usage import Grouping, Ledger, LedgerEntry, parse_range, usage_totals
from app.usage.health import Attempt, attempts, provider_activity
from app.usage.requests import MAX_PAGE, recent_requests
from core.errors import InvalidRequestError

H10 = datetime(2025, 3, 1, 10, 15, tzinfo=UTC).timestamp()
H11 = datetime(2025, 3, 1, 11, 59, 59, tzinfo=UTC).timestamp()
NEXT_DAY = datetime(2025, 3, 2, 0, 30, tzinfo=UTC).timestamp()


def entry(n: int, **fields: Any) -> LedgerEntry:
    return dataclasses.replace(LedgerEntry(request_id=f"req_{n}", status=200, total_ms=100 + n), **fields)


def served(n: int, provider: str, created: float, **fields: Any) -> LedgerEntry:
    return entry(
        n, provider=provider, deployments=(f"{provider}:up",), images=1, megapixels=1.0, created=created, **fields
    )


async def write(database: Database, entries: list[LedgerEntry]) -> None:
    ledger = Ledger(database)
    ledger.start()
    for item in entries:
        ledger.record(item)
    await ledger.aclose()


SERIES = [
    served(1, "fal", H10, model="m1", cost_usd=0.05),
    served(2, "fal", H10 + 60, model="m2", cost_usd=0.01),
    served(3, "replicate", H11, model="m1", cost_usd=0.02),
    entry(4, model="m1", status=502, error_code="upstream_error", deployments=("fal:up",), created=H11),
    served(5, "fal", NEXT_DAY, model="m1", cost_usd=0.04),
]


@pytest.fixture
async def series(database: Database) -> Database:
    await write(database, SERIES)
    return database


async def totals(database: Database, group_by: str, start: str | None = None) -> list[dict[str, Any]]:
    grouping = Grouping.parse(group_by)
    return [row.wire(grouping) for row in await usage_totals(database, grouping, parse_range(start, None))]


async def test_a_series_by_day_and_model(series: Database) -> None:
    rows = await totals(series, "day,model")
    assert [(row["day"], row["model"], row["requests"], row["errors"], row["cost_usd"]) for row in rows] == [
        ("2025-03-01", "m1", 3, 1, 0.07),
        ("2025-03-01", "m2", 1, 0, 0.01),
        ("2025-03-02", "m1", 1, 0, 0.04),
    ]
    # The other order groups the same way, each row naming both fields.
    by_model = await totals(series, "model,day")
    assert [(row["model"], row["day"], row["requests"]) for row in by_model] == [
        ("m1", "2025-03-01", 3),
        ("m1", "2025-03-02", 1),
        ("m2", "2025-03-01", 1),
    ]


async def test_hour_buckets_start_on_the_hour_in_utc(series: Database) -> None:
    rows = await totals(series, "hour,provider")
    assert [(row["hour"], row["provider"], row["requests"], row["images"]) for row in rows] == [
        ("2025-03-01T10:00:00Z", "fal", 2, 2),
        ("2025-03-01T11:00:00Z", "replicate", 1, 1),
        ("2025-03-01T11:00:00Z", None, 1, 0),  # the failed request: no provider served it
        ("2025-03-02T00:00:00Z", "fal", 1, 1),
    ]
    hours = await totals(series, "hour", start="2025-03-01T11:00:00Z")
    assert [(row["hour"], row["requests"]) for row in hours] == [
        ("2025-03-01T11:00:00Z", 2),
        ("2025-03-02T00:00:00Z", 1),
    ]


@pytest.mark.parametrize("group_by", ["team", "", "day,hour", "model,key", "day,model,key", "day,day", "day,"])
def test_a_grouping_that_is_not_one_field_or_a_time_bucket_and_one_more_is_refused(group_by: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        Grouping.parse(group_by)
    assert caught.value.param == "group_by"


async def test_recent_requests_come_newest_first_a_page_at_a_time(database: Database) -> None:
    key = await KeyStore(database).create(NewKey(name="team-a"))
    await write(database, [entry(n, key_id=key.id if n % 2 else "key:env", created=H10 + n) for n in range(1, 8)])
    first = await recent_requests(database, limit=3)
    assert [row.request_id for row in first.rows] == ["req_7", "req_6", "req_5"] and first.has_more
    assert (first.rows[0].key_id, first.rows[0].key_name) == (key.id, "team-a")
    assert (first.rows[1].key_id, first.rows[1].key_name) == ("key:env", None)
    assert first.rows[0].created == pytest.approx(H10 + 7) and first.rows[0].total_ms == 107
    second = await recent_requests(database, limit=3, before=first.rows[-1].id)
    assert [row.request_id for row in second.rows] == ["req_4", "req_3", "req_2"] and second.has_more
    last = await recent_requests(database, limit=3, before=second.rows[-1].id)
    assert [row.request_id for row in last.rows] == ["req_1"] and not last.has_more
    assert len((await recent_requests(database, limit=MAX_PAGE + 50)).rows) == 7
    # Nothing of a key but its id and name.
    assert all(key.key not in str(row.model_dump()) for row in first.rows)


@pytest.mark.parametrize(
    ("deployments", "served_by", "status", "expected"),
    [
        (("fal:a",), "fal", 200, [("fal", False, True)]),
        (("fal:a",), None, 502, [("fal", True, True)]),
        (("fal:a",), None, 504, [("fal", True, True)]),
        (("fal:a",), None, 429, [("fal", True, True)]),
        (("fal:a",), None, 400, [("fal", False, True)]),  # the client's fault, reported by the provider
        (("fal:a", "replicate:b"), "replicate", 200, [("fal", True, False), ("replicate", False, True)]),
        (("fal:a", "replicate:b"), None, 400, [("fal", True, False), ("replicate", False, True)]),
        (("fal:a", "fal:b"), None, 503, [("fal", True, True)]),  # each provider once
        ((), None, 401, []),  # refused before any provider
    ],
)
def test_what_a_request_says_about_each_provider_it_tried(
    deployments: tuple[str, ...], served_by: str | None, status: int, expected: list[tuple[str, bool, bool]]
) -> None:
    assert attempts(deployments, served_by, status) == [Attempt(p, failed, final) for p, failed, final in expected]


async def test_provider_activity_over_the_recent_rows(database: Database) -> None:
    await write(
        database,
        [
            *SERIES,
            entry(6, status=400, error_code="invalid_value", deployments=("replicate:up",), created=H11 + 1),
            entry(7, provider="replicate", deployments=("fal:up", "replicate:up"), images=1, created=H11 + 2),
            entry(8, status=401, error_code="invalid_api_key", created=H11 + 3),
        ],
    )
    everything = await provider_activity(database, since_ms=0, max_rows=100)
    assert set(everything) == {"fal", "replicate"}
    fal, replicate = everything["fal"], everything["replicate"]
    assert (fal.requests, fal.errors, fal.error_rate) == (5, 2, 0.4)
    assert fal.last_error_code == "failed_over" and fal.last_error_at == pytest.approx(H11 + 2)
    assert fal.last_request_at == pytest.approx(NEXT_DAY)
    assert (replicate.requests, replicate.errors, replicate.error_rate, replicate.last_error_code) == (3, 0, 0.0, None)
    # Only the rows from the start of the window, and only the most recent of them up to the bound.
    recent = await provider_activity(database, since_ms=int(H11 * 1000), max_rows=100)
    assert (recent["fal"].requests, recent["fal"].errors, recent["fal"].last_error_code) == (3, 2, "failed_over")
    bounded = await provider_activity(database, since_ms=0, max_rows=2)
    assert (bounded["fal"].requests, bounded["replicate"].requests) == (1, 1)  # rows 8 (none) and 7
