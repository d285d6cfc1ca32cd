"""Steps a user takes on the playground, and what the tests read back from it.

Every step goes through the page as a user would (fill, select, click, press); the readings are
what the page shows (text, image sizes, the code snippets).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw
from playwright.sync_api import Page, expect

from tests.conftest import TEST_KEY

ROOT = Path(__file__).resolve().parents[2]
INPUT_SIZE = (320, 200)
SKY = (120, 180, 230)
HILL = (125, 104, 92)


def input_image(directory: Path, name: str = "photo.png") -> Path:
    """A PNG of ``INPUT_SIZE`` to upload: a small landscape (sky, sun, hill, meadow) in flat colours."""
    width, height = INPUT_SIZE
    image = Image.new("RGB", INPUT_SIZE, SKY)
    draw = ImageDraw.Draw(image)
    draw.ellipse((230, 24, 290, 84), fill=(255, 214, 90))
    draw.rectangle((0, 150, width, height), fill=(74, 150, 80))
    draw.polygon([(40, 150), (170, 40), (300, 150)], fill=HILL)
    path = directory / name
    image.save(path, format="PNG")
    return path


def open_playground(page: Page, key: str = TEST_KEY) -> None:
    """Loads the page, enters ``key`` and waits for the model list and the first model's form."""
    page.goto("/")
    page.fill("#api-key", key)
    page.press("#api-key", "Enter")
    expect(page.locator("#model")).to_have_value("sandbox-edit")
    expect(page.locator("#param-fields")).to_have_attribute("data-model", "sandbox-edit")


def choose_model(page: Page, model: str) -> None:
    """Picks ``model`` and waits until the form is built from its table."""
    page.select_option("#model", model)
    expect(page.locator("#param-fields")).to_have_attribute("data-model", model)


def run_and_wait(page: Page, button: str = "#run") -> None:
    """Clicks Run (or Dry run) and waits until the page has shown the answer, a success or an error.

    The click handler marks the form busy before it returns, so waiting for "not busy" cannot pass early.
    """
    page.click(button)
    wait_until_done(page)


def wait_until_done(page: Page) -> None:
    expect(page.locator("#run-form")).to_have_attribute("aria-busy", "false")


def metadata(page: Page) -> dict[str, str]:
    """The metadata list as shown: term -> text."""
    terms = page.locator("#metadata dt").all_inner_texts()
    values = page.locator("#metadata dd").all_inner_texts()
    return dict(zip(terms, values, strict=True))


def handling_rows(page: Page) -> dict[str, list[str]]:
    """The "how each parameter was handled" table: parameter -> [behavior, upstream, note]."""
    rows: dict[str, list[str]] = {}
    for row in page.locator("#handling tr").all():
        cells = row.locator("th, td").all_inner_texts()
        rows[cells[0].strip()] = [cell.strip() for cell in cells[1:]]
    return rows


def natural_size(page: Page, selector: str) -> tuple[int, int]:
    """The decoded size of an image element, once it has loaded."""
    handle = page.locator(selector)
    page.wait_for_function("el => el.complete && el.naturalWidth > 0", arg=handle.element_handle())
    size: list[int] = handle.evaluate("el => [el.naturalWidth, el.naturalHeight]")
    return size[0], size[1]


def snippet(page: Page, language: str) -> str:
    """The code of the tab ``language`` (curl, python, node), as the page shows it."""
    page.click(f"#tab-{language}")
    expect(page.locator(f"#tab-{language}")).to_have_attribute("aria-selected", "true")
    return page.locator("#snippet").text_content() or ""


def run_code(command: list[str], workdir: Path, timeout: float = 60) -> str:
    """Runs a snippet with PIXELGATE_API_KEY set, as the page tells the user to; answers stdout."""
    env = {**os.environ, "PIXELGATE_API_KEY": TEST_KEY}
    result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"{command[0]} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def run_curl(code: str, workdir: Path) -> Any:
    """Runs the curl snippet and answers the JSON it printed."""
    return json.loads(run_code(["bash", "-euo", "pipefail", "-c", code], workdir))
