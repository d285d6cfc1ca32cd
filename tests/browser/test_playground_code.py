"""The playground's code snippets, taken from the page and run as a user would run them.

After an edit on the page, the curl command runs in bash, the Python one with the openai package and
the Node one with the openai npm package, each against the same live gateway with the key in
PIXELGATE_API_KEY, in a directory holding the uploaded file under its name. Each must make the same
request the page made: the images the same call gives through the SDK (the sandbox is deterministic
in input, prompt and seed), and as a dry run the upstream request the page showed.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import OpenPage
from tests.browser.playground import (
    INPUT_SIZE,
    input_image,
    open_playground,
    run_and_wait,
    run_code,
    run_curl,
    snippet,
)
from tests.conftest import TEST_KEY
from tests.images import decode
from tests.live import LiveGateway
from tests.node_client import node_modules

IMAGE_NAME = "my photo.png"
PROMPT = "Paint it like a 'woodcut' print; keep the $HOME sky"  # quotes and $ must survive the shell


@pytest.fixture
def edited_page(watched_page: OpenPage, gateway: LiveGateway, tmp_path: Path) -> Iterator[tuple[Page, Path]]:
    """A page after an edit of ``my photo.png`` with n=2, seed 5, webp, b64_json; and the working dir."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    image = input_image(workdir, IMAGE_NAME)
    with watched_page(gateway.base_url) as (page, _):
        open_playground(page)
        page.set_input_files("#image", str(image))
        page.fill("#prompt", PROMPT)
        page.fill("#param-n", "2")
        page.fill("#param-seed", "5")
        page.select_option("#param-output_format", label="webp")
        page.select_option("#param-response_format", label="b64_json")
        run_and_wait(page)
        expect(page.locator("#gallery img")).to_have_count(2)
        yield page, workdir


def reference_images(client: openai.OpenAI, workdir: Path) -> list[bytes]:
    """The same edit sent with the openai SDK: what each snippet must give back."""
    with (workdir / IMAGE_NAME).open("rb") as upload:
        answer = client.images.edit(
            model="sandbox-edit",
            image=upload,
            prompt=PROMPT,
            n=2,
            output_format="webp",
            response_format="b64_json",
            extra_body={"seed": 5},
        )
    assert answer.data is not None
    return [base64.b64decode(item.b64_json or "") for item in answer.data]


def same_pixels(left: bytes, right: bytes) -> bool:
    return decode(left).convert("RGB").tobytes() == decode(right).convert("RGB").tobytes()


def test_the_curl_snippet_runs(edited_page: tuple[Page, Path], gateway: LiveGateway, client: openai.OpenAI) -> None:
    page, workdir = edited_page
    code = snippet(page, "curl")
    assert TEST_KEY not in code  # the key comes from the environment, never from the page
    answer = run_curl(code, workdir)
    assert answer["output_format"] == "webp"
    assert answer["metadata"]["model"] == "sandbox-edit"
    assert [item["seed"] for item in answer["data"]] == [5, 6]
    assert answer["data"][0]["revised_prompt"] == PROMPT
    ran = [base64.b64decode(item["b64_json"]) for item in answer["data"]]
    assert all(same_pixels(a, b) for a, b in zip(ran, reference_images(client, workdir), strict=True))

    # As a dry run, the same command shows the very upstream request the page showed.
    endpoint = f"{gateway.base_url}/v1/images/edits"
    assert code.count(endpoint) == 1
    dry = run_curl(code.replace(endpoint, f"{endpoint}?dry_run=true"), workdir)
    assert dry["upstream_requests"] == json.loads(page.locator("#upstream").inner_text())


def test_the_python_snippet_runs(edited_page: tuple[Page, Path], gateway: LiveGateway, client: openai.OpenAI) -> None:
    page, workdir = edited_page
    code = snippet(page, "python")
    (workdir / "call.py").write_text(code, encoding="utf-8")
    printed = run_code([sys.executable, "call.py"], workdir).split()
    assert printed == ["result-0.webp", "result-1.webp"]
    for name, expected in zip(printed, reference_images(client, workdir), strict=True):
        data = (workdir / name).read_bytes()
        assert decode(data).format == "WEBP"
        assert decode(data).size == INPUT_SIZE
        assert same_pixels(data, expected)


def test_the_node_snippet_runs(edited_page: tuple[Page, Path], gateway: LiveGateway, client: openai.OpenAI) -> None:
    page, workdir = edited_page
    code = snippet(page, "node")
    (workdir / "node_modules").symlink_to(node_modules(), target_is_directory=True)
    (workdir / "call.mjs").write_text(code, encoding="utf-8")
    printed = run_code(["node", "call.mjs"], workdir, timeout=120).split()
    assert printed == ["result-0.webp", "result-1.webp"]
    for name, expected in zip(printed, reference_images(client, workdir), strict=True):
        assert same_pixels((workdir / name).read_bytes(), expected)


def test_the_copy_button_copies_the_snippet_shown(edited_page: tuple[Page, Path]) -> None:
    page, _ = edited_page
    for language in ("curl", "python", "node"):
        code = snippet(page, language)
        page.click("#copy")
        expect(page.locator("#copy")).to_have_text("Copied")
        assert page.evaluate("navigator.clipboard.readText()") == code
