"""The playground on a gateway without API keys: an empty key works, nothing asks for one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import OpenPage
from tests.browser.playground import choose_model, natural_size, run_and_wait
from tests.conftest import make_settings
from tests.live import LiveGateway


@pytest.fixture(scope="module")
def open_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    with LiveGateway(make_settings(tmp_path_factory.mktemp("data"), api_keys=[])) as live:
        yield live


def test_an_empty_key_works_on_a_gateway_without_keys(watched_page: OpenPage, open_gateway: LiveGateway) -> None:
    with watched_page(open_gateway.base_url) as (page, _):
        page.goto("/")
        expect(page.locator("#model")).to_have_value("sandbox-edit")
        expect(page.locator("#error")).to_be_hidden()
        assert page.locator("#api-key").input_value() == ""
        choose_model(page, "sandbox-generate")
        expect(page.locator("#mode-generate")).to_be_checked()
        page.fill("#prompt", "A red kite over hills")
        page.fill("#param-size", "128x128")
        run_and_wait(page)
        expect(page.locator("#error")).to_be_hidden()
        assert natural_size(page, "#gallery img") == (128, 128)
