"""The dashboard's pure JavaScript, run in the page's own Chromium: money and durations as written, the
period's buckets at the edges of a day, the grouping of series into "Other", the chart's round steps."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page

from tests.browser.conftest import OpenPage
from tests.browser.dashboard import admin_settings, usd
from tests.live import LiveGateway


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    with LiveGateway(admin_settings(tmp_path_factory.mktemp("data"))) as live:
        yield live


@pytest.fixture
def page(watched_page: OpenPage, gateway: LiveGateway) -> Iterator[Page]:
    with watched_page(gateway.base_url) as (page, _):
        page.goto("/admin")
        yield page


def run(page: Page, module: str, expression: str, arg: object = None) -> Any:
    """``expression`` evaluated with the module's exports as ``m`` and ``arg`` as ``arg``."""
    return page.evaluate(f"(arg) => import('/static/js/{module}').then((m) => {expression})", arg)


MONEY = [
    (0, "$0.00"),
    (0.03, "$0.03"),
    (0.039, "$0.039"),
    (0.0035, "$0.0035"),
    (0.96, "$0.96"),
    (0.1, "$0.10"),
    (1234.5, "$1234.50"),
]


def test_money_is_written_to_the_cent_or_to_the_tenth_of_a_cent(page: Page) -> None:
    amounts = [amount for amount, _ in MONEY]
    assert run(page, "format.js", "arg.map(m.formatUsd)", amounts) == [shown for _, shown in MONEY]
    assert [usd(amount) for amount in amounts] == [shown for _, shown in MONEY]  # the tests' reading agrees


def test_durations_and_times(page: Page) -> None:
    assert run(page, "format.js", "[m.formatDuration(850), m.formatDuration(2440), m.formatDuration(null)]") == [
        "850 ms",
        "2.4 s",
        "—",
    ]
    assert run(page, "format.js", "m.formatTime(1741871109.5)") == "2025-03-13 13:05:09"
    assert run(
        page, "format.js", "[m.formatAgo(1000, 1030), m.formatAgo(1000, 1000 + 7200), m.formatAgo(0, 86400 * 2)]"
    ) == [
        "just now",
        "2 h ago",
        "2 days ago",
    ]


def test_a_period_ends_with_the_bucket_now_is_in(page: Page) -> None:
    just_after_midnight = "new Date(Date.UTC(2025, 2, 1, 0, 0, 5))"
    days = run(page, "usage.js", f"m.periodOf('7d', {just_after_midnight})")
    assert days["bucket"] == "day" and days["start"] == "2025-02-23"
    assert [bucket["key"] for bucket in days["buckets"]][-2:] == ["2025-02-28", "2025-03-01"]
    assert days["buckets"][-1]["label"] == "Mar 1"
    hours = run(page, "usage.js", f"m.periodOf('24h', {just_after_midnight})")
    assert len(hours["buckets"]) == 24 and hours["buckets"][-1]["key"] == "2025-03-01T00:00:00Z"
    assert hours["buckets"][0]["key"] == "2025-02-28T01:00:00Z"
    assert hours["start"] == str(1740704400)  # 2025-02-28T01:00:00Z, Unix seconds for the API
    assert run(page, "usage.js", f"m.usagePath(m.periodOf('24h', {just_after_midnight}), 'key')") == (
        "admin/usage?group_by=hour%2Ckey&start=1740704400"
    )


def test_series_past_the_seventh_are_one_other(page: Page) -> None:
    rows = [
        {"day": "2025-03-01", "model": f"m{n}", "requests": 10 - n, "errors": 0, "images": 1, "cost_usd": 0.5}
        for n in range(9)
    ]
    rows.append({"day": "2025-03-01", "model": None, "requests": 1, "errors": 1, "images": 0, "cost_usd": 0})
    tabulated = """(() => {
        const t = m.tabulate(arg, { bucket: "day" }, "model", (value) => value || "(none)");
        const day = "2025-03-01";
        return { series: t.series, other: t.cell(day, m.OTHER), first: t.cell(day, "m0"), totals: t.totals };
    })()"""
    result = run(page, "usage.js", tabulated, rows)
    assert [item["label"] for item in result["series"]] == ["m0", "m1", "m2", "m3", "m4", "m5", "Other (4)"]
    assert result["series"][-1]["index"] == "other"
    assert result["other"] == {"requests": 4 + 3 + 2 + 1, "cost_usd": 1.5}  # m6, m7, m8 and the row without a model
    assert result["first"] == {"requests": 10, "cost_usd": 0.5}
    assert result["totals"]["requests"] == sum(10 - n for n in range(9)) + 1 and result["totals"]["errors"] == 1


def test_the_charts_gridlines_fall_on_round_numbers(page: Page) -> None:
    steps = [(0, 1), (3, 1), (5, 2), (11, 5), (70, 20), (0.42, 0.2), (1009, 500)]
    found = run(page, "chart.js", "arg.map((max) => m.niceStep(max))", [maximum for maximum, _ in steps])
    assert found == pytest.approx([step for _, step in steps])
