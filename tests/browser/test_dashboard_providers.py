"""Provider health on the dashboard, with a fake fal that fails as fal does: the error rate, the state
and the last error as the admin API reports them; the request that failed names the provider tried."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import openai
import pytest
from playwright.sync_api import Route, expect

from tests.browser.conftest import OpenPage
from tests.browser.dashboard import admin_settings, open_dashboard, table_rows, wait_for_ledger
from tests.conftest import TEST_KEY
from tests.fakes.fake_fal import FakeFal
from tests.live import LiveGateway

FAL_KEY = "dashboard-fal-key-id:dashboard-fal-secret"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    with FakeFal(api_key=FAL_KEY, latency=0.05) as fal:
        providers = {"fal": {"api_key": FAL_KEY, "base_url": fal.base_url, "storage_url": fal.storage_url}}
        with LiveGateway(admin_settings(tmp_path_factory.mktemp("data"), providers=providers)) as live:
            with openai.OpenAI(base_url=live.api_url, api_key=TEST_KEY, max_retries=0, timeout=30) as sdk:
                sdk.images.generate(model="hidream-i1-full", prompt="a kite", size="128x128")
                for prompt, status in (("[fake:401]", 502), ("[fake:401]", 502), ("[fake:422:guidance_scale]", 400)):
                    with pytest.raises(openai.APIStatusError) as refused:
                        sdk.images.generate(model="hidream-i1-full", prompt=prompt, size="128x128")
                    assert refused.value.status_code == status
            wait_for_ledger(live.base_url, 4)
            yield live


def providers_shown(rows: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    return {row["row"].split("\n")[0]: row for row in rows}


def test_a_failing_provider_shows_its_error_rate_and_last_error(watched_page: OpenPage, gateway: LiveGateway) -> None:
    with watched_page(gateway.base_url) as (page, _):
        open_dashboard(page)
        fal = providers_shown(table_rows(page, "providers-table"))["fal"]
        # Two of four: the credentials fal refused; the value it refused was the client's error.
        assert (fal["Requests"], fal["Errors"], fal["Error rate"], fal["State"]) == ("4", "2", "50%", "failing")
        assert fal["Last error"] == "upstream_auth_failed just now"
        assert fal["Credentials"].startswith("key set") and FAL_KEY not in page.content()
        expect(page.get_by_label("Error rate of fal")).to_have_attribute("value", "0.5")
        # Two failures, not in a row (each followed by a 400 the provider answered): its breaker stays closed.
        expect(page.locator("#providers-breaker-head")).to_be_visible()
        assert fal["Breaker"] == "—"

        failed = [row for row in table_rows(page, "requests-table") if row["Status"].startswith("502")]
        assert [row["Provider"] for row in failed] == ["fal (failed)", "fal (failed)"]
        assert all(row["Status"] == "502\nupstream_auth_failed" for row in failed)


def test_a_breaker_state_in_the_answer_gets_its_column(watched_page: OpenPage, gateway: LiveGateway) -> None:
    """The page shows a provider's circuit breaker as soon as ``GET /admin/providers`` reports one (a
    ``cooling`` field); here added to the real answer on its way to the page."""
    until = int(time.time()) + 90

    def with_breaker(route: Route) -> None:
        answer = route.fetch()
        body = answer.json()
        for entry in body["data"]:
            entry["cooling"] = {"state": "open", "until": until} if entry["provider"] == "fal" else None
        route.fulfill(response=answer, body=json.dumps(body))

    with watched_page(gateway.base_url) as (page, _):
        page.route("**/admin/providers*", with_breaker)
        open_dashboard(page)
        expect(page.locator("#providers-breaker-head")).to_be_visible()
        shown = providers_shown(table_rows(page, "providers-table"))
        clock = time.strftime("%H:%M:%S", time.gmtime(until))
        assert (shown["fal"]["State"], shown["fal"]["Breaker"]) == ("cooling", f"open until {clock} UTC")
        assert shown["sandbox"]["Breaker"] == "—"
