"""Steps an operator takes on the dashboard, and what the tests read back from it.

Steps go through the page as a user would (fill, select, click, press); readings are what the page
shows: the totals, each chart's bars and data table, the tables of keys, providers and requests.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect
from sqlalchemy import create_engine, insert

from app.db.schema import usage_ledger
from app.settings import Settings
from app.usage import LedgerEntry
from tests.conftest import make_settings
from tests.polling import wait_until

ADMIN_KEY = "admin-dashboard-key-3c1f"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def admin_settings(data_dir: Path, **overrides: object) -> Settings:
    """A gateway with the admin API, whose ledger is written within 20 ms of each request."""
    return make_settings(data_dir, **{"admin_key": ADMIN_KEY, "ledger_flush_ms": 20, **overrides})


def ledger_requests(base_url: str) -> int:
    """How many requests the usage ledger holds, as the admin API counts them."""
    answer = httpx.get(f"{base_url}/admin/usage", params={"group_by": "day"}, headers=ADMIN, timeout=10)
    answer.raise_for_status()
    return sum(int(row["requests"]) for row in answer.json()["data"])


def wait_for_ledger(base_url: str, count: int) -> None:
    wait_until(lambda: ledger_requests(base_url) == count, f"{count} requests in the ledger", timeout=15)


def open_dashboard(page: Page, key: str = ADMIN_KEY) -> None:
    """Loads /admin, enters ``key`` and waits until the page has loaded everything it shows."""
    page.goto("/admin")
    page.fill("#admin-key", key)
    page.press("#admin-key", "Enter")
    wait_until_loaded(page)
    expect(page.locator("#board")).to_be_visible()


def wait_until_loaded(page: Page) -> None:
    """The page is busy from its first byte until it has shown what it loads, and marks itself busy again
    (before its first await) on every action that loads more, so "not busy" cannot pass early."""
    expect(page.locator("#dashboard")).to_have_attribute("aria-busy", "false")


def choose(page: Page, control: str, value: str) -> None:
    """Picks ``value`` in the Period (``range``) or By (``dimension``) control and waits for the charts."""
    page.select_option(f"#{control}", value)
    wait_until_loaded(page)


def totals(page: Page) -> dict[str, str]:
    """The usage tiles: term -> value as shown."""
    terms = page.locator("#totals dt").all_inner_texts()
    values = page.locator("#totals dd").all_inner_texts()
    return dict(zip(terms, values, strict=True))


def chart_table(page: Page, chart: str) -> dict[str, dict[str, str]]:
    """A chart's data table: bucket as the API names it -> {series label (and "Total"): value as shown}."""
    table = page.locator(f"#{chart} .chart-table")
    header = [text.strip() for text in table.locator("thead th").all_text_contents()]
    rows: dict[str, dict[str, str]] = {}
    for row in table.locator("tbody tr").all():
        cells = [text.strip() for text in row.locator("td").all_text_contents()]
        rows[str(row.get_attribute("data-bucket"))] = dict(zip(header[1:], cells, strict=True))
    return rows


def chart_bars(page: Page, chart: str) -> dict[tuple[str, str], float]:
    """The bars drawn: (bucket, series label) -> value."""
    bars: list[list[str]] = page.locator(f"#{chart} svg rect").evaluate_all(
        "rects => rects.map(r => [r.dataset.bucket, r.dataset.series, r.dataset.value])"
    )
    return {(bucket, series): float(value) for bucket, series, value in bars}


def table_rows(page: Page, table: str) -> list[dict[str, str]]:
    """The rows of one of the page's tables (``requests-table``...): column label -> text; the row's
    header cell (a key's or a provider's name) under "row"."""
    rows: list[dict[str, str]] = []
    for row in page.locator(f"#{table} tbody tr").all():
        header = row.locator("th").all_inner_texts()
        cells: dict[str, str] = {"row": header[0].strip()} if header else {}
        for cell in row.locator("td").all():
            label = cell.get_attribute("data-label")
            if label:
                cells[label] = cell.inner_text().strip()
        rows.append(cells)
    return rows


def request_ids(page: Page) -> list[str]:
    """The request ids of the recent requests table, top to bottom."""
    return [str(row.get_attribute("data-request-id")) for row in page.locator("#requests-body tr").all()]


@dataclass(frozen=True)
class SeededModel:
    id: str
    provider: str
    price_usd: float
    weight: int
    """At most this many requests a day."""


HISTORY_MODELS = (
    SeededModel("hidream-e1-1", "fal", 0.03, 14),
    SeededModel("flux-pro-kontext", "fal", 0.04, 10),
    SeededModel("nano-banana-edit", "fal", 0.04, 8),
    SeededModel("gpt-image-1", "openai", 0.05, 6),
    SeededModel("seedream-v4-edit", "fal", 0.03, 5),
    SeededModel("qwen-image-edit", "fal", 0.02, 3),
    SeededModel("sandbox-edit", "sandbox", 0.0, 2),
    SeededModel("dall-e-3", "openai", 0.04, 1),
)
"""Whole cents: every sum the page makes is a whole number of cents, whatever order it adds in."""
LAST_HOUR = (  # model, status, error code: the traffic of the last hour, oldest first
    *[("hidream-e1-1", 200, None)] * 6,
    ("hidream-e1-1", 502, "upstream_error"),
    *[("flux-pro-kontext", 200, None)] * 3,
    ("flux-pro-kontext", 504, "upstream_timeout"),
    ("gpt-image-1", 200, None),
    ("nano-banana-edit", 400, "invalid_value"),
    ("sandbox-edit", 200, None),
)


def seeded_history(key_ids: list[str], now: float) -> list[LedgerEntry]:
    """A month of requests over ``HISTORY_MODELS`` (a deterministic amount per day and model, spread
    over ``key_ids``) and, today, ``LAST_HOUR``; oldest first, as a ledger writes them."""
    rng = random.Random(16)
    today = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    entries: list[LedgerEntry] = []

    def add(model: SeededModel, created: float, status: int = 200, error_code: str | None = None) -> None:
        served = status < 400
        entries.append(
            LedgerEntry(
                request_id=f"req_seed_{len(entries):05d}",
                status=status,
                total_ms=rng.randint(900, 9000),
                key_id=key_ids[len(entries) % len(key_ids)],
                model=model.id,
                deployments=(f"{model.provider}:{model.id}",),
                provider=model.provider if served else None,
                error_code=error_code,
                images=1 if served else 0,
                megapixels=1.0 if served else 0.0,
                cost_usd=model.price_usd if served else 0.0,
                upstream_ms=rng.randint(800, 8000),
                queue_ms=0,
                created=created,
            )
        )

    for days_ago in range(29, 0, -1):
        weekday_boost = 2 if (days_ago % 7) in (1, 2) else 1
        for model in HISTORY_MODELS:
            for n in range(rng.randint(0, model.weight) * weekday_boost):
                add(model, today - days_ago * 86400 + 3600 + n * 600)
    by_id = {model.id: model for model in HISTORY_MODELS}
    for index, (model_id, status, code) in enumerate(LAST_HOUR):
        add(by_id[model_id], now - 60 * (len(LAST_HOUR) - index), status, code)
    return entries


def seed_ledger(database_url: str, entries: list[LedgerEntry]) -> None:
    """Writes ``entries`` straight into the ledger of the database at ``database_url`` (SQLite)."""
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(insert(usage_ledger), [entry.row() for entry in entries])
    finally:
        engine.dispose()


def usd(amount: float) -> str:
    """Dollars as the page writes them: cents from $1 on (and for nothing), else two to four decimals."""
    if amount >= 1 or round(amount, 9) == 0:
        return f"${amount:.2f}"
    text = f"{amount:.4f}"
    return "$" + (text[:-2] if text.endswith("00") else text[:-1] if text.endswith("0") else text)
