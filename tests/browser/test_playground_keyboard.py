"""The playground's main flow with the keyboard alone: Tab, typing, Space, Enter and the arrow keys.

Every control reached shows a visible focus outline; Enter in the key field lists the models (it
does not run), Shift+Enter in the prompt starts a new line, Enter in a field runs the request, the
comparison slider and the code tabs move with the arrow keys.
"""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from tests.browser.conftest import OpenPage
from tests.browser.playground import INPUT_SIZE, input_image, natural_size, wait_until_done
from tests.conftest import TEST_KEY
from tests.live import LiveGateway

TAB_LIMIT = 80

FOCUS_OUTLINE = """() => {
  const active = document.activeElement;
  // The slider is transparent over the picture: the comparison box draws its focus ring.
  const ringed = active.id === 'compare-range' ? active.closest('.compare') : active;
  const style = getComputedStyle(ringed);
  return [style.outlineStyle, parseFloat(style.outlineWidth)];
}"""


def active_id(page: Page) -> str:
    value: str = page.evaluate("document.activeElement.id || document.activeElement.tagName.toLowerCase()")
    return value


def tab_to(page: Page, target: str) -> None:
    """Presses Tab until ``#target`` has the focus; every control on the way must show its focus."""
    visited: list[str] = []
    for _ in range(TAB_LIMIT):
        page.keyboard.press("Tab")
        visited.append(active_id(page))
        style, width = page.evaluate(FOCUS_OUTLINE)
        assert style != "none" and width >= 2, f"no visible focus on {visited[-1]}"
        if visited[-1] == target:
            return
    raise AssertionError(f"Tab never reached #{target}; it went through {visited}")


def test_the_main_flow_by_keyboard(watched_page: OpenPage, gateway: LiveGateway, tmp_path: Path) -> None:
    image = input_image(tmp_path)
    with watched_page(gateway.base_url) as (page, watch):
        # Listening from the start turns file-chooser interception on well before the key press
        # (Playwright enables it without waiting for the browser's reply when a listener is added).
        page.on("filechooser", lambda chooser: None)
        page.goto("/")
        page.keyboard.press("Tab")
        assert active_id(page) == "a"  # the skip link comes first, and shows when focused
        skip = page.locator(".skip-link").bounding_box()
        assert skip is not None and skip["y"] >= 0

        tab_to(page, "api-key")
        page.keyboard.type(TEST_KEY)
        page.keyboard.press("Enter")
        expect(page.locator("#model")).to_have_value("sandbox-edit")
        expect(page.locator("#param-fields")).to_have_attribute("data-model", "sandbox-edit")
        assert not any("/v1/images/" in url for url in watch.requests), "Enter in the key field ran a request"

        tab_to(page, "model")
        tab_to(page, "image")
        with page.expect_file_chooser() as chooser:
            page.keyboard.press("Space")
        chooser.value.set_files(str(image))
        expect(page.locator("#image-previews img")).to_have_count(1)

        tab_to(page, "prompt")
        page.keyboard.type("Make it night")
        page.keyboard.press("Shift+Enter")
        page.keyboard.type("and add stars")
        assert page.locator("#prompt").input_value() == "Make it night\nand add stars"
        assert not any("/v1/images/" in url for url in watch.requests), "Shift+Enter ran a request"

        tab_to(page, "param-seed")
        page.keyboard.type("3")
        page.keyboard.press("Enter")  # implicit submission: runs
        wait_until_done(page)
        expect(page.locator("#compare-block")).to_be_visible()
        assert natural_size(page, "#compare-after") == INPUT_SIZE

        tab_to(page, "compare-range")
        for _ in range(3):
            page.keyboard.press("ArrowLeft")
        assert page.locator("#compare-range").input_value() == "47"
        assert page.locator("#compare").evaluate("el => el.style.getPropertyValue('--position')") == "47%"
        page.keyboard.press("End")
        assert page.locator("#compare").evaluate("el => el.style.getPropertyValue('--position')") == "100%"

        tab_to(page, "tab-curl")
        page.keyboard.press("ArrowRight")
        assert active_id(page) == "tab-python"
        expect(page.locator("#tab-python")).to_have_attribute("aria-selected", "true")
        assert (page.locator("#snippet").text_content() or "").startswith("import base64")
        page.keyboard.press("End")
        assert active_id(page) == "tab-node"
        assert "client.images.edit({" in (page.locator("#snippet").text_content() or "")

        tab_to(page, "copy")
        page.keyboard.press("Enter")
        expect(page.locator("#copy")).to_have_text("Copied")
        assert page.evaluate("navigator.clipboard.readText()") == page.locator("#snippet").text_content()
