"""A month of history on the dashboard: a ledger with known requests over 30 days (written straight into
the database) is drawn day by day, by model (the busiest six, then "Other"), by key with the keys'
names, with the spend of each day; the recent requests page back through it; the providers' last hour.
These are also the screenshots of the README."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from playwright.sync_api import expect

from app.auth import key_id_for
from app.usage import LedgerEntry
from tests.browser.conftest import PHONE, OpenPage, save_screenshot
from tests.browser.dashboard import (
    ADMIN,
    HISTORY_MODELS,
    admin_settings,
    chart_table,
    choose,
    open_dashboard,
    request_ids,
    seed_ledger,
    seeded_history,
    table_rows,
    totals,
    usd,
)
from tests.conftest import TEST_KEY
from tests.live import LiveGateway

SHOWN = 6
"""Series drawn on their own; the rest are "Other"."""


@dataclass(frozen=True)
class History:
    gateway: LiveGateway
    entries: list[LedgerEntry]
    names: dict[str, str]
    """key id -> the name the page gives it."""


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    data = tmp_path_factory.mktemp("data")
    with LiveGateway(admin_settings(data)) as live:
        names = {}
        for name in ("web-app", "batch-jobs"):
            made = httpx.post(f"{live.base_url}/admin/keys", json={"name": name}, headers=ADMIN, timeout=10)
            names[made.json()["id"]] = name
        configured = key_id_for(TEST_KEY)
        names[configured] = f"configured key {configured[4:12]}"
        entries = seeded_history(list(names), time.time())
        seed_ledger(f"sqlite:///{data / 'pixelgate.db'}", entries)
        yield History(live, entries, names)


def ranked_models(entries: list[LedgerEntry]) -> list[str]:
    requests = Counter(entry.model for entry in entries)
    return [str(model) for model, _ in requests.most_common()]


def test_a_month_drawn_day_by_day_by_model_with_the_busiest_apart(watched_page: OpenPage, history: History) -> None:
    entries = history.entries
    ranked = ranked_models(entries)
    counts = Counter(entry.model for entry in entries)
    assert counts[ranked[SHOWN - 1]] > counts[ranked[SHOWN]], "the seeded history ranks the models unambiguously"
    shown, other = ranked[:SHOWN], set(ranked[SHOWN:])
    assert len(other) == len(HISTORY_MODELS) - SHOWN

    spend: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for entry in entries:
        day = entry.row()["day"]
        spend[day]["Other (2)" if entry.model in other else str(entry.model)] += entry.cost_usd
    expected = {
        day: {
            **{label: usd(by_label.get(label, 0.0)) for label in [*shown, "Other (2)"]},
            "Total": usd(sum(by_label.values())),
        }
        for day, by_label in spend.items()
        if sum(by_label.values()) > 0
    }

    with watched_page(history.gateway.base_url) as (page, _):
        open_dashboard(page)
        assert totals(page) == {
            "Requests": f"{len(entries):,}",
            "Errors": str(sum(entry.status >= 400 for entry in entries)),
            "Images": f"{sum(entry.images for entry in entries):,}",
            "Spend": usd(sum(entry.cost_usd for entry in entries)),
        }
        legend = page.locator("#requests-chart .legend-label").all_inner_texts()
        assert legend == [*shown, "Other (2)"]
        assert chart_table(page, "spend-chart") == expected
        drawn = float(page.locator("#spend-chart").get_attribute("data-total") or "nan")
        assert drawn == pytest.approx(sum(entry.cost_usd for entry in entries))
        save_screenshot(page, "dashboard")

        # By key: each managed key by its name, the configured key by its id's start.
        choose(page, "dimension", "key")
        labels = page.locator("#requests-chart .legend-label").all_inner_texts()
        assert sorted(labels) == sorted(history.names.values())
        per_key = Counter(history.names[str(entry.key_id)] for entry in entries)
        values = page.locator("#requests-chart .legend-value").all_inner_texts()
        assert dict(zip(labels, values, strict=True)) == {name: f"{n:,}" for name, n in per_key.items()}

        # The last 7 days: only those days' rows.
        choose(page, "range", "7d")
        days = sorted({entry.row()["day"] for entry in entries})[-7:]
        assert set(chart_table(page, "requests-chart")) <= set(days)


def test_the_recent_requests_page_back_and_the_providers_last_hour(watched_page: OpenPage, history: History) -> None:
    newest_first = [entry.request_id for entry in reversed(history.entries)]
    with watched_page(history.gateway.base_url) as (page, _):
        open_dashboard(page)
        assert request_ids(page) == newest_first[:25]
        first = table_rows(page, "requests-table")[0]
        assert (first["Model"], first["Provider"], first["Cost"]) == ("sandbox-edit", "sandbox", "$0.00")
        page.click("#requests-more")
        expect(page.locator("#requests-body tr")).to_have_count(50)
        assert request_ids(page) == newest_first[:50]

        # The last hour: fal failed twice in twelve (a refused value is the client's error), openai served.
        providers = {row["row"].split("\n")[0]: row for row in table_rows(page, "providers-table")}
        fal, openai = providers["fal"], providers["openai"]
        assert (fal["Requests"], fal["Errors"], fal["Error rate"], fal["State"]) == ("12", "2", "17%", "degraded")
        assert fal["Last error"].startswith("upstream_timeout ")
        assert (openai["Requests"], openai["Errors"], openai["State"]) == ("1", "0", "healthy")


def test_the_month_at_phone_width(watched_page: OpenPage, history: History) -> None:
    with watched_page(history.gateway.base_url, viewport=PHONE) as (page, _):
        open_dashboard(page)
        # One column, nothing wider than the screen: the tables' rows become blocks of label and value.
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        box = page.locator("#spend-chart svg").bounding_box()
        assert box is not None and box["width"] <= PHONE["width"]
        cell = page.locator("#requests-body td").first
        assert cell.evaluate("el => getComputedStyle(el).display") == "block"
        assert cell.evaluate("el => getComputedStyle(el, '::before').content") == '"Time"'
        page.locator("#usage-heading").evaluate("el => el.scrollIntoView()")
        save_screenshot(page, "dashboard-phone", full_page=False)  # a screenful: the page is long
