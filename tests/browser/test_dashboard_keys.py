"""Keys on the dashboard: one made on the page works with the openai SDK at once (its secret shown once,
copied with the button); revoked on the page (after a confirmation, with the keyboard alone) it is
refused; a field the API refuses is marked with the API's message."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import OpenPage, save_screenshot
from tests.browser.dashboard import ADMIN, admin_settings, open_dashboard, table_rows, wait_for_ledger
from tests.live import LiveGateway


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    with LiveGateway(admin_settings(tmp_path_factory.mktemp("data"))) as live:
        yield live


def keys_by_name(page_rows: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    return {row["row"]: row for row in page_rows}


def test_a_key_made_on_the_page_works_and_once_revoked_on_the_page_is_refused(
    watched_page: OpenPage, gateway: LiveGateway
) -> None:
    with watched_page(gateway.base_url) as (page, _):
        open_dashboard(page)
        expect(page.locator("#keys-empty")).to_be_visible()
        page.fill("#key-name", "ci-bot")
        page.fill("#key-budget", "5")
        page.fill("#key-models", "sandbox-generate, no-such-model")
        page.fill("#key-rpm", "30")
        page.click("#key-submit")
        expect(page.locator("#new-key")).to_be_visible()
        expect(page.locator("#new-key-name")).to_have_text("ci-bot")
        secret = page.locator("#new-key-secret").input_value()
        assert secret.startswith("sk-pixelgate-")
        expect(page.locator("#new-key-secret")).to_be_focused()
        page.click("#copy-key")
        expect(page.locator("#keys-status")).to_have_text("The key was copied.")
        assert page.evaluate("navigator.clipboard.readText()") == secret

        row = keys_by_name(table_rows(page, "keys-table"))["ci-bot"]
        assert row["Status"] == "active" and row["Models"] == "sandbox-generate, no-such-model"
        assert (row["RPM"], row["Spent"], row["Expires"]) == ("30", "$0.00 of $5.00", "never")
        key_id = row["ID"].split("\n")[0]
        assert secret not in page.locator("#keys-table").inner_text()  # the record, never the secret
        save_screenshot(page, "dashboard-keys")

        # The key works with the SDK at once.
        with openai.OpenAI(base_url=gateway.api_url, api_key=secret, max_retries=0, timeout=30) as sdk:
            made = sdk.images.generate(
                model="sandbox-generate", prompt="a kite", size="32x32", response_format="b64_json"
            )
            assert made.data and made.data[0].b64_json
            with pytest.raises(openai.NotFoundError):
                sdk.images.generate(model="no-such-model", prompt="x")

        # Done hides the secret: it is not in the page any more.
        page.click("#new-key-done")
        expect(page.locator("#new-key")).to_be_hidden()
        assert secret not in page.content()

        # The request is in the recent requests, named by the key's name.
        wait_for_ledger(gateway.base_url, 2)
        page.click("#refresh")
        expect(page.locator("#dashboard")).to_have_attribute("aria-busy", "false")
        newest = table_rows(page, "requests-table")[:2]
        assert [request["Key"] for request in newest] == ["ci-bot", "ci-bot"]
        assert newest[0]["Status"] == "404\nmodel_not_found" and newest[1]["Status"] == "200"

        # Revoke with the keyboard: Escape cancels; confirming revokes.
        revoke = page.get_by_role("button", name="Revoke key ci-bot")
        revoke.focus()
        page.keyboard.press("Enter")
        dialog = page.locator("#revoke-dialog")
        expect(dialog).to_be_visible()
        expect(page.locator("#revoke-text")).to_contain_text(key_id)
        expect(page.locator("#revoke-cancel")).to_be_focused()  # the safe choice first
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()
        expect(revoke).to_be_focused()
        assert keys_by_name(table_rows(page, "keys-table"))["ci-bot"]["Status"] == "active"
        assert httpx.get(f"{gateway.base_url}/admin/keys/{key_id}", headers=ADMIN).json()["revoked"] is False

        page.keyboard.press("Enter")
        expect(dialog).to_be_visible()
        save_screenshot(page, "dashboard-revoke")
        page.keyboard.press("Tab")
        expect(page.locator("#revoke-confirm")).to_be_focused()
        page.keyboard.press("Enter")
        expect(page.locator("#keys-status")).to_have_text("Key ci-bot revoked.")
        assert keys_by_name(table_rows(page, "keys-table"))["ci-bot"]["Status"] == "revoked"
        expect(page.get_by_role("button", name="Revoke key ci-bot")).to_have_count(0)
        expect(page.locator("#keys-count")).to_have_text("(0 active)")

    with (
        openai.OpenAI(base_url=gateway.api_url, api_key=secret, max_retries=0, timeout=30) as sdk,
        pytest.raises(openai.AuthenticationError) as refused,
    ):
        sdk.images.generate(model="sandbox-generate", prompt="again", size="32x32", response_format="b64_json")
    assert refused.value.code == "key_revoked"


def test_a_field_the_api_refuses_is_marked_with_its_message(watched_page: OpenPage, gateway: LiveGateway) -> None:
    with watched_page(gateway.base_url) as (page, _):
        open_dashboard(page)
        posts: list[str] = []
        page.on("request", lambda request: posts.append(request.url) if request.method == "POST" else None)
        before = len(httpx.get(f"{gateway.base_url}/admin/keys", headers=ADMIN).json()["data"])

        # No name: the page says so itself and asks nothing of the API.
        page.fill("#key-budget", "5")
        page.click("#key-submit")
        expect(page.locator("#key-error .error-message")).to_have_text(
            "Enter a name for the key (who or what it is for)."
        )
        expect(page.locator("#key-name")).to_have_attribute("aria-invalid", "true")
        expect(page.locator("#key-name")).to_be_focused()
        assert posts == []

        # A budget below zero: the API's own 400, its message and the field it names.
        page.fill("#key-name", "team-b")
        page.fill("#key-budget", "-1")
        page.click("#key-submit")
        error = page.locator("#key-error")
        expect(error.locator(".error-message")).to_contain_text("Invalid value for 'budget_usd'")
        expect(error.locator(".error-facts")).to_contain_text("HTTP 400")
        expect(error.locator(".error-facts")).to_contain_text("param: budget_usd")
        expect(page.locator("#key-budget")).to_have_attribute("aria-invalid", "true")
        expect(page.locator("#key-name")).not_to_have_attribute("aria-invalid", "true")
        expect(page.locator("#key-budget")).to_be_focused()
        expect(page.locator("#new-key")).to_be_hidden()
        assert posts == [f"{gateway.base_url}/admin/keys"]
        assert len(httpx.get(f"{gateway.base_url}/admin/keys", headers=ADMIN).json()["data"]) == before

        # Corrected, it is made, and the error goes.
        page.fill("#key-budget", "1.5")
        page.click("#key-submit")
        expect(page.locator("#new-key")).to_be_visible()
        expect(error).to_be_hidden()
        expect(page.locator("#key-budget")).not_to_have_attribute("aria-invalid", "true")
