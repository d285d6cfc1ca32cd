"""The playground's other paths: progress and Cancel while a request runs, a dry run of several
images (no provider called), and a mask."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
from PIL import Image
from playwright.sync_api import expect

from tests.browser.conftest import OpenPage
from tests.browser.playground import (
    INPUT_SIZE,
    choose_model,
    handling_rows,
    input_image,
    open_playground,
    run_and_wait,
    run_curl,
    snippet,
)
from tests.conftest import TEST_KEY
from tests.live import LiveGateway

SECONDS = re.compile(r"^\d+\.\d s$")


def multi_image_model(gateway: LiveGateway) -> str:
    """A model of the catalog that takes several images (its table's ``image`` is ``file[]``)."""
    headers = {"Authorization": f"Bearer {TEST_KEY}"}
    with httpx.Client(base_url=gateway.api_url, headers=headers, timeout=10) as http:
        for model in http.get("/models").json()["data"]:
            detail: dict[str, Any] = http.get(f"/models/{model['id']}").json()
            table = detail.get("parameters") or (detail.get("deployments") or [{}])[0].get("parameters", {})
            if table.get("image", {}).get("type") == "file[]":
                return str(model["id"])
    raise AssertionError("no model in the catalog takes several images")


def test_progress_while_running_and_cancel(watched_page: OpenPage, gateway: LiveGateway, tmp_path: Path) -> None:
    image = input_image(tmp_path)
    with watched_page(gateway.base_url) as (page, _):
        open_playground(page)
        page.set_input_files("#image", str(image))
        page.fill("#prompt", "slowly")
        page.fill("#param-delay_ms", "20000")
        page.click("#run")
        expect(page.locator("#progress")).to_be_visible()
        expect(page.locator("#run")).to_be_disabled()
        expect(page.locator("#elapsed")).not_to_have_text("0.0 s")  # the clock ticks
        expect(page.locator("#elapsed")).to_have_text(SECONDS)
        page.click("#cancel")
        expect(page.locator("#status")).to_have_text("Cancelled.")
        expect(page.locator("#progress")).to_be_hidden()
        expect(page.locator("#cancel")).to_be_hidden()
        expect(page.locator("#run")).to_be_enabled()
        expect(page.locator("#error")).to_be_hidden()


def test_a_dry_run_of_several_images_calls_no_provider(
    watched_page: OpenPage, gateway: LiveGateway, tmp_path: Path
) -> None:
    model = multi_image_model(gateway)
    first = input_image(tmp_path, "first.png")
    second = tmp_path / "second.png"
    Image.new("RGB", (64, 48), (200, 40, 40)).save(second)
    with watched_page(gateway.base_url) as (page, watch):
        open_playground(page)
        choose_model(page, model)
        expect(page.locator("#image")).to_have_attribute("multiple", "")
        expect(page.locator("#mask-field")).to_be_hidden()
        page.set_input_files("#image", [str(first), str(second)])
        expect(page.locator("#image-previews img")).to_have_count(2)
        page.fill("#prompt", "Put the red card on the hill")
        run_and_wait(page, "#dry-run")
        expect(page.locator("#error")).to_be_hidden()
        expect(page.locator("#status")).to_contain_text("Dry run done")
        expect(page.locator("#images-block")).to_be_hidden()
        upstream = page.locator("#upstream").inner_text()
        width, height = INPUT_SIZE
        assert upstream.index(f"image/png {width}x{height}") < upstream.index("image/png 64x48")  # in order
        assert handling_rows(page)["image"][0] == "converted"
        posts = [url for url in watch.requests if "/v1/images/" in url]
        assert posts and all(url.endswith("?dry_run=true") for url in posts)

        # The snippet sends both files as image[], in the same order.
        code = snippet(page, "curl")
        assert code.index("'image[]=@first.png'") < code.index("'image[]=@second.png'")
        endpoint = f"{gateway.base_url}/v1/images/edits"
        dry = run_curl(code.replace(endpoint, f"{endpoint}?dry_run=true"), tmp_path)
        assert dry["upstream_requests"] == json.loads(page.locator("#upstream").inner_text())


def test_a_mask_is_sent(watched_page: OpenPage, gateway: LiveGateway, tmp_path: Path) -> None:
    image = input_image(tmp_path)
    mask = tmp_path / "mask.png"
    hole = Image.new("RGBA", INPUT_SIZE, (0, 0, 0, 255))
    hole.paste((0, 0, 0, 0), (0, 0, INPUT_SIZE[0] // 2, INPUT_SIZE[1]))
    hole.save(mask)
    with watched_page(gateway.base_url) as (page, _):
        open_playground(page)
        expect(page.locator("#mask-field")).to_be_visible()
        page.set_input_files("#image", str(image))
        page.set_input_files("#mask", str(mask))
        expect(page.locator("#mask-preview img")).to_have_count(1)
        page.fill("#prompt", "Only the left half")
        run_and_wait(page)
        expect(page.locator("#error")).to_be_hidden()
        assert handling_rows(page)["mask"][0] == "renamed"
        assert "-F 'mask=@mask.png'" in snippet(page, "curl")
        assert 'mask=open("mask.png", "rb")' in snippet(page, "python")
