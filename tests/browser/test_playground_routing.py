"""The playground on a routed model: the Provider picker forces one deployment, whose own table the form
then shows, and the request (and its code) names it as ``provider/model``."""

from __future__ import annotations

import json
from pathlib import Path

from playwright.sync_api import expect

from tests.browser.conftest import OpenPage
from tests.browser.playground import choose_model, input_image, open_playground, run_and_wait, snippet
from tests.live import LiveGateway

ROUTED = "hidream-e1-1"  # fal, then Replicate (neither configured here: a dry run calls no provider)


def test_the_provider_picker_forces_a_deployment(watched_page: OpenPage, gateway: LiveGateway, tmp_path: Path) -> None:
    image = input_image(tmp_path)
    with watched_page(gateway.base_url) as (page, _):
        open_playground(page)
        expect(page.locator("#deployment-field")).to_be_hidden()  # sandbox-edit has one deployment
        choose_model(page, ROUTED)
        expect(page.locator("#deployment-field")).to_be_visible()
        options = page.locator("#deployment option").all_inner_texts()
        assert options == ["Any, in order (fal, replicate)", "fal", "replicate"]
        fal_fields = set(page.locator("#param-fields [id^=param-]").evaluate_all("els => els.map(e => e.id)"))

        page.select_option("#deployment", "replicate")
        expect(page.locator("#param-fields")).to_have_attribute("data-deployment", "replicate")
        replicate_fields = set(page.locator("#param-fields [id^=param-]").evaluate_all("els => els.map(e => e.id)"))
        assert fal_fields != replicate_fields  # each deployment has its own table

        page.set_input_files("#image", str(image))
        page.fill("#prompt", "make it blue")
        run_and_wait(page, "#dry-run")
        expect(page.locator("#upstream-block")).to_be_visible()
        [request] = json.loads(page.locator("#upstream").inner_text())
        assert request["upstream"].startswith("prunaai/hidream-e1.1")  # Replicate's request, not fal's
        assert 'model="replicate/hidream-e1-1"' in snippet(page, "python")

        page.select_option("#deployment", "")
        expect(page.locator("#param-fields")).to_have_attribute("data-deployment", "")
        run_and_wait(page, "#dry-run")
        [request] = json.loads(page.locator("#upstream").inner_text())
        assert request["upstream"] == "fal-ai/hidream-e1-1"
        assert 'model="hidream-e1-1"' in snippet(page, "python")
