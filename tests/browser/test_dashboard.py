"""The dashboard in Chromium after known traffic: the totals, both charts (bars and data tables), the
recent requests and the providers show exactly the requests the openai SDK made; the layout at desktop
and phone widths; a wrong admin key shows the API's own error.

What the page shows is checked against the requests made and against the admin API's answers.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import openai
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import OpenPage, save_screenshot
from tests.browser.dashboard import (
    ADMIN,
    admin_settings,
    chart_bars,
    chart_table,
    choose,
    open_dashboard,
    request_ids,
    table_rows,
    totals,
    wait_for_ledger,
    wait_until_loaded,
)
from tests.conftest import TEST_KEY
from tests.images import png_bytes
from tests.live import LiveGateway


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveGateway, list[str]]]:
    """A gateway that served known requests: three generations (one of two images), an edit, and a
    request for a model that does not exist. Yields it with the requests' ids, oldest first."""
    with LiveGateway(admin_settings(tmp_path_factory.mktemp("data"))) as live:
        sdk = openai.OpenAI(base_url=live.api_url, api_key=TEST_KEY, max_retries=0, timeout=30)
        ids = []
        for n in (1, 2, 1):
            raw = sdk.images.with_raw_response.generate(
                model="sandbox-generate", prompt="a kite", n=n, size="64x64", response_format="b64_json"
            )
            ids.append(raw.headers["x-request-id"])
        edit = sdk.images.with_raw_response.edit(
            model="sandbox-edit", image=("in.png", io.BytesIO(png_bytes(40, 25)), "image/png"), prompt="night"
        )
        ids.append(edit.headers["x-request-id"])
        with pytest.raises(openai.NotFoundError) as missing:
            sdk.images.generate(model="no-such-model", prompt="x")
        ids.append(missing.value.response.headers["x-request-id"])
        wait_for_ledger(live.base_url, 5)
        yield live, ids


def api_series(base_url: str, group_by: str) -> dict[str, dict[str | None, int]]:
    """The admin API's time series: bucket -> {group: requests}."""
    answer = httpx.get(f"{base_url}/admin/usage", params={"group_by": group_by}, headers=ADMIN, timeout=10)
    bucket, group = group_by.split(",")
    series: dict[str, dict[str | None, int]] = {}
    for row in answer.json()["data"]:
        series.setdefault(row[bucket], {})[row[group]] = row["requests"]
    return series


def as_table(series: dict[str, dict[str | None, int]], none: str) -> dict[str, dict[str, str]]:
    """A series as the chart's data table shows it (``none`` labels the group without a value)."""
    return {
        bucket: {
            **{none if group is None else group: str(n) for group, n in groups.items()},
            "Total": str(sum(groups.values())),
        }
        for bucket, groups in series.items()
    }


def test_the_dashboard_shows_the_traffic_in_totals_charts_and_requests(
    watched_page: OpenPage, traffic: tuple[LiveGateway, list[str]]
) -> None:
    gateway, ids = traffic
    by_day = api_series(gateway.base_url, "day,model")
    per_model: dict[str | None, int] = {}
    for groups in by_day.values():
        for model, n in groups.items():
            per_model[model] = per_model.get(model, 0) + n
    assert per_model == {"sandbox-generate": 3, "sandbox-edit": 1, "no-such-model": 1}
    with watched_page(gateway.base_url) as (page, _):
        open_dashboard(page)
        expect(page.locator("#error")).to_be_hidden()
        assert totals(page) == {"Requests": "5", "Errors": "1", "Images": "5", "Spend": "$0.00"}

        # Requests per day by model: the data table and the bars drawn say what the API's series says.
        assert chart_table(page, "requests-chart") == as_table(by_day, "(no model)")
        assert chart_bars(page, "requests-chart") == {
            (day, str(model)): n for day, groups in by_day.items() for model, n in groups.items()
        }
        assert page.locator("#requests-chart").get_attribute("data-total") == "5"
        # Nothing has a price in the sandbox: no spend bars, and the chart says so.
        assert chart_bars(page, "spend-chart") == {}
        expect(page.locator("#spend-chart svg text.empty")).to_have_text("Nothing spent in the last 30 days.")

        # Every request, newest first, with its status, images and duration.
        assert request_ids(page) == ids[::-1]
        rows = table_rows(page, "requests-table")
        assert [row["Status"].split()[0] for row in rows] == ["404", "200", "200", "200", "200"]
        assert rows[0]["Status"] == "404\nmodel_not_found" and rows[0]["Provider"] == "—"
        assert [row["Images"] for row in rows] == ["0", "1", "1", "2", "1"]
        assert rows[1]["Model"] == "sandbox-edit" and rows[1]["Provider"] == "sandbox"
        assert all(row["Key"].startswith("configured key ") for row in rows)
        assert all(row["Duration"].endswith((" ms", " s")) for row in rows)
        expect(page.locator("#requests-more")).to_be_hidden()

        providers = {row["row"].split("\n")[0]: row for row in table_rows(page, "providers-table")}
        assert (providers["sandbox"]["Requests"], providers["sandbox"]["Errors"]) == ("4", "0")
        assert providers["sandbox"]["State"] == "healthy"
        assert providers["fal"]["State"] == "no traffic" and providers["fal"]["Credentials"].startswith("no key")

        # By provider: the request nobody served is its own series.
        choose(page, "dimension", "provider")
        by_provider = api_series(gateway.base_url, "day,provider")
        assert chart_table(page, "requests-chart") == as_table(by_provider, "(not served)")
        # The last 24 hours, per hour.
        choose(page, "range", "24h")
        by_hour = api_series(gateway.base_url, "hour,provider")
        assert chart_table(page, "requests-chart") == as_table(by_hour, "(not served)")
        assert sum(chart_bars(page, "requests-chart").values()) == 5
        expect(page.locator("#usage-summary")).to_have_text("In the last 24 hours (UTC), by provider, per hour.")


def test_the_view_survives_a_reload_and_the_key_stays_in_the_tab(
    watched_page: OpenPage, traffic: tuple[LiveGateway, list[str]]
) -> None:
    gateway, _ = traffic
    with watched_page(gateway.base_url) as (page, watch):
        open_dashboard(page)
        choose(page, "dimension", "key")
        page.reload()
        wait_until_loaded(page)
        expect(page.locator("#board")).to_be_visible()  # the stored key opened it again
        expect(page.locator("#dimension")).to_have_value("key")
        labels = {name for groups in chart_table(page, "requests-chart").values() for name in groups} - {"Total"}
        (label,) = labels
        assert label.startswith("configured key ")  # a PIXELGATE_API_KEYS key: never shown, named by its id
        assert page.evaluate("document.cookie") == ""
        assert all(ADMIN["Authorization"].split()[1] not in url for url in watch.requests)
        page.click("#forget")
        expect(page.locator("#board")).to_be_hidden()
        assert page.evaluate("sessionStorage.getItem('pixelgate.dashboard.admin-key')") is None


def test_a_wrong_admin_key_shows_the_apis_error(watched_page: OpenPage, traffic: tuple[LiveGateway, list[str]]) -> None:
    gateway, _ = traffic
    with watched_page(gateway.base_url) as (page, _):
        page.goto("/admin")
        page.fill("#admin-key", "not-the-admin-key")
        page.click("#open")
        error = page.locator("#error")
        expect(error).to_be_visible()
        expect(error.locator(".error-message")).to_have_text("Incorrect admin key provided.")
        expect(error.locator(".error-facts")).to_contain_text("HTTP 401")
        expect(error.locator(".error-facts")).to_contain_text("code: invalid_api_key")
        expect(page.locator("#board")).to_be_hidden()
        expect(page.locator("#status")).to_have_text("Check the admin key and try again.")
        save_screenshot(page, "dashboard-error")
