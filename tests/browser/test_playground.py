"""The playground in Chromium against a live gateway: an edit from upload to result, a generation,
errors as the API words them, and the layout at desktop and phone widths.

What the page shows is checked against the API itself: the same request sent with the openai SDK or
httpx must give the same image, metadata, handling table and dry-run upstream request.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import httpx
import openai
from PIL import Image
from playwright.sync_api import Page, expect

from tests.browser.conftest import PHONE, WIDE, OpenPage, save_screenshot
from tests.browser.playground import (
    HILL,
    INPUT_SIZE,
    choose_model,
    handling_rows,
    input_image,
    metadata,
    natural_size,
    open_playground,
    run_and_wait,
    run_curl,
    snippet,
)
from tests.conftest import TEST_KEY
from tests.images import decode
from tests.live import LiveGateway

PROMPT = "Turn it into a night scene"


def edit_on_page(page: Page, image: Path, *, seed: str = "7") -> None:
    open_playground(page)
    page.set_input_files("#image", str(image))
    expect(page.locator("#image-previews img")).to_have_count(1)
    page.fill("#prompt", PROMPT)
    page.fill("#param-seed", seed)
    run_and_wait(page)


def compare_center(page: Page) -> tuple[int, int, int]:
    """The colour a little right of the middle of the comparison box, as drawn (the hill's middle
    in the input: clear of the divider's handle at 50%)."""
    shot = Image.open(io.BytesIO(page.locator("#compare").screenshot(animations="disabled"))).convert("RGB")
    pixel = shot.getpixel((shot.width * 6 // 10, shot.height * 6 // 10))
    assert isinstance(pixel, tuple)
    return pixel[0], pixel[1], pixel[2]


def near(color: tuple[int, int, int], expected: tuple[int, int, int], tolerance: int = 12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(color, expected, strict=True))


def test_an_edit_from_upload_to_result(
    watched_page: OpenPage, gateway: LiveGateway, client: openai.OpenAI, tmp_path: Path
) -> None:
    image = input_image(tmp_path)
    with watched_page(gateway.base_url) as (page, watch):
        edit_on_page(page, image)
        expect(page.locator("#error")).to_be_hidden()
        expect(page.locator("#compare-block")).to_be_visible()
        assert natural_size(page, "#compare-before") == INPUT_SIZE
        assert natural_size(page, "#compare-after") == INPUT_SIZE

        # The result shown is the API's answer to the same request (the sandbox is deterministic).
        with image.open("rb") as upload:
            expected = client.images.edit(
                model="sandbox-edit", image=upload, prompt=PROMPT, response_format="b64_json", extra_body={"seed": 7}
            )
        assert expected.data is not None and expected.data[0].b64_json is not None
        shown_url = page.locator("#compare-after").get_attribute("src")
        assert shown_url is not None and shown_url.startswith(f"{gateway.base_url}/v1/images/")
        shown = decode(httpx.get(shown_url, timeout=30).content)
        assert (
            shown.convert("RGB").tobytes()
            == decode(base64.b64decode(expected.data[0].b64_json)).convert("RGB").tobytes()
        )

        # The slider: Home shows the result everywhere, End the input; the keys move the divider.
        page.focus("#compare-range")
        page.keyboard.press("End")
        assert near(compare_center(page), HILL)
        page.keyboard.press("Home")
        assert not near(compare_center(page), HILL)
        page.keyboard.press("ArrowRight")
        assert page.locator("#compare").evaluate("el => el.style.getPropertyValue('--position')") == "1%"
        page.fill("#compare-range", "50")

        # The metadata shown is the API's; fields the gateway does not send yet show "—".
        expected_meta = expected.model_extra["metadata"] if expected.model_extra else {}
        shown_meta = metadata(page)
        assert shown_meta["Provider"] == expected_meta["provider"] == "sandbox"
        assert shown_meta["Upstream model"] == expected_meta["upstream_model"]
        assert shown_meta["Size"] == "320x200"
        assert shown_meta["Images"] == "1"
        assert shown_meta["Request id"].startswith("req_")
        cost = expected_meta.get("cost_usd")
        assert shown_meta["Cost"] == ("—" if cost is None else f"${cost:.4f}")
        if expected_meta.get("attempts"):
            assert expected_meta["attempts"][0]["provider"] in shown_meta["Attempts"]
        else:
            assert shown_meta["Attempts"] == "—"
        rows = handling_rows(page)
        assert set(rows) == set(expected_meta["parameters"])
        assert rows["seed"][:2] == ["passthrough", "seed"]
        assert rows["image"][0] == "renamed"

        # The upstream request is the dry run's, exactly.
        with image.open("rb") as upload:
            dry = httpx.post(
                f"{gateway.api_url}/images/edits",
                params={"dry_run": "true"},
                headers={"Authorization": f"Bearer {TEST_KEY}"},
                data={"model": "sandbox-edit", "prompt": PROMPT, "seed": "7"},
                files={"image": (image.name, upload, "image/png")},
                timeout=30,
            ).json()
        assert json.loads(page.locator("#upstream").inner_text()) == dry["upstream_requests"]
        assert json.loads(page.locator("#emulation").inner_text()) == dry["emulation"]

        page.locator("#compare-range").blur()
        save_screenshot(page, "playground-edit")
        assert any(url.endswith("/v1/images/edits") for url in watch.requests)
        assert any("/v1/images/edits?dry_run=true" in url for url in watch.requests)


def test_a_generation(watched_page: OpenPage, gateway: LiveGateway, tmp_path: Path) -> None:
    with watched_page(gateway.base_url) as (page, _):
        open_playground(page)
        choose_model(page, "sandbox-generate")
        expect(page.locator("#mode-generate")).to_be_checked()
        expect(page.locator("#mode-edit")).to_be_disabled()
        expect(page.locator("#image-field")).to_be_hidden()
        expect(page.locator("label[for=param-size] + .badge-group .badge")).to_have_text("converted")
        page.fill("#prompt", "A lighthouse at dusk")
        page.fill("#param-size", "256x160")
        page.fill("#param-n", "2")
        page.select_option("#param-response_format", label="b64_json")
        page.fill("#param-seed", "11")
        run_and_wait(page)
        expect(page.locator("#error")).to_be_hidden()
        expect(page.locator("#gallery img")).to_have_count(2)
        for index in (1, 2):
            assert natural_size(page, f"#gallery li:nth-child({index}) img") == (256, 160)
            assert (page.locator(f"#gallery li:nth-child({index}) img").get_attribute("src") or "").startswith("blob:")
        expect(page.locator("#compare-block")).to_be_hidden()
        assert metadata(page)["Images"] == "2"
        assert "seed 12" in page.locator("#gallery li:nth-child(2) figcaption").inner_text()
        save_screenshot(page, "playground-generate")

        # The curl snippet of a generation is a JSON call; run as shown, it gives the same images.
        answer = run_curl(snippet(page, "curl"), tmp_path)
        assert answer["size"] == "256x160"
        assert [item["seed"] for item in answer["data"]] == [11, 12]
        assert all("b64_json" in item for item in answer["data"])


def test_a_wrong_key_shows_the_api_error(watched_page: OpenPage, gateway: LiveGateway) -> None:
    api = httpx.get(f"{gateway.api_url}/models", headers={"Authorization": "Bearer sk-wrong"}, timeout=10)
    assert api.status_code == 401
    with watched_page(gateway.base_url) as (page, _):
        page.goto("/")
        page.fill("#api-key", "sk-wrong")
        page.press("#api-key", "Enter")
        expect(page.locator("#error .error-message")).to_have_text(api.json()["error"]["message"])
        expect(page.locator("#error .error-facts")).to_contain_text("HTTP 401")
        # Nothing is kept but the session's copy: the key is in sessionStorage, not localStorage or a cookie.
        assert page.evaluate("sessionStorage.getItem('pixelgate.playground.key')") == "sk-wrong"
        assert page.evaluate("localStorage.length") == 0
        assert page.context.cookies() == []
        page.fill("#api-key", TEST_KEY)
        page.press("#api-key", "Enter")
        expect(page.locator("#model")).to_have_value("sandbox-edit")
        expect(page.locator("#error")).to_be_hidden()


def test_an_out_of_range_value_shows_the_api_error(
    watched_page: OpenPage, gateway: LiveGateway, tmp_path: Path
) -> None:
    image = input_image(tmp_path)
    with image.open("rb") as upload:
        api = httpx.post(
            f"{gateway.api_url}/images/edits",
            headers={"Authorization": f"Bearer {TEST_KEY}"},
            data={"model": "sandbox-edit", "prompt": PROMPT, "seed": "-1"},
            files={"image": (image.name, upload, "image/png")},
            timeout=30,
        )
    assert api.status_code == 400
    error = api.json()["error"]
    with watched_page(gateway.base_url) as (page, _):
        edit_on_page(page, image, seed="-1")
        expect(page.locator("#error")).to_be_visible()
        expect(page.locator("#error .error-message")).to_have_text(error["message"])
        expect(page.locator("#error .error-facts")).to_contain_text(f"param: {error['param']}")
        expect(page.locator("#error .error-facts")).to_contain_text(f"code: {error['code']}")
        expect(page.locator("#status")).to_have_text("Failed (HTTP 400).")
        expect(page.locator(f"#param-{error['param']}")).to_have_attribute("aria-invalid", "true")
        expect(page.locator("#images-block")).to_be_hidden()
        save_screenshot(page, "playground-error")


def test_layout_at_desktop_and_phone_widths(watched_page: OpenPage, gateway: LiveGateway, tmp_path: Path) -> None:
    image = input_image(tmp_path)
    for viewport, name in ((WIDE, None), (PHONE, "playground-phone")):
        with watched_page(gateway.base_url, viewport=viewport) as (page, _):
            edit_on_page(page, image)
            expect(page.locator("#compare-block")).to_be_visible()
            form = page.locator("#run-form").bounding_box()
            result = page.locator("#result-panel").bounding_box()
            assert form is not None and result is not None
            if viewport is WIDE:  # two columns: the results beside the form
                assert result["x"] >= form["x"] + form["width"]
                assert abs(result["y"] - form["y"]) < 100
            else:  # one column: the results below the form
                assert result["y"] >= form["y"] + form["height"]
            # Nothing wider than the screen: no sideways scrolling of the page.
            assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
            if name:
                save_screenshot(page, name)
