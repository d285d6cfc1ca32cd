"""Issue 12 through the real server and the official SDK: what the emulation stage refuses and answers.

- item 2: the sandbox's Pillow work runs on the shared pool's threads, never more at once than it has;
- item 3: an exact size whose images exceed the pixel cap is a 400 naming ``size``, at once;
- item 4: a pass-through field the translation sets is a 400 naming it, and nothing reaches fal;
- item 5: a truncated or corrupt image or mask on sandbox-edit is a 400, as on a fal model;
- ``PIXELGATE_DEFAULT_RESPONSE_FORMAT`` and gpt-image's own default (no ``response_format`` sent);
- the model table: the configured prompt limit, integers as integers, named length/count fields;
- strict mode's 400 says the request was refused.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType

import httpx
import openai
import pytest

from tests.conftest import TEST_KEY, make_settings, upstream_settings
from tests.e2e.conftest import FAL_KEY
from tests.fakes.fake_fal import FakeFal
from tests.fakes.fake_openai import FakeOpenAIServer
from tests.images import png_bytes
from tests.live import LiveGateway

PROMPT_LIMIT = 1000


@pytest.fixture(scope="module")
def fal_gateway(
    tmp_path_factory: pytest.TempPathFactory, fal_server: FakeFal, openai_server: FakeOpenAIServer
) -> Iterator[LiveGateway]:
    settings = upstream_settings(
        tmp_path_factory.mktemp("data"),
        fal=fal_server,
        fal_key=FAL_KEY,
        openai_server=openai_server,
        openai_key="sk-upstream",
        max_prompt_chars=PROMPT_LIMIT,
    )
    with LiveGateway(settings) as live:
        yield live


def refusal(fn: Callable[..., object], *args: object, **kwargs: object) -> dict[str, object]:
    """The OpenAI error object of the 400 that ``fn(*args, **kwargs)`` gets."""
    with pytest.raises(openai.BadRequestError) as caught:
        fn(*args, **kwargs)
    body = caught.value.body
    assert isinstance(body, dict)
    return body


# --- item 3: exact size within the pixel caps -----------------------------------------------------


def test_an_exact_size_over_the_pixel_cap_is_refused_before_any_work(sdk: openai.OpenAI) -> None:
    started = time.monotonic()
    body = refusal(
        sdk.images.edit,
        model="sandbox-edit",
        image=("in.png", png_bytes(64, 64), "image/png"),
        prompt="x",
        size="16384x16384",
        n=10,
    )
    assert (body["param"], body["code"]) == ("size", "size_too_large")
    assert time.monotonic() - started < 30  # was 95 s and a 344 MB body; generous for a loaded machine


def test_n_images_of_a_size_over_the_per_request_cap_are_refused(sdk: openai.OpenAI) -> None:
    # 7000x7000 is 49 MP (under the 64 MP per image); ten of them are 490 MP, over the 256 MP per request.
    body = refusal(
        sdk.images.edit,
        model="sandbox-edit",
        image=("in.png", png_bytes(64, 64), "image/png"),
        prompt="x",
        size="7000x7000",
        n=10,
    )
    assert (body["param"], body["code"]) == ("size", "size_too_large")
    assert "per request" in str(body["message"])


# --- item 4: pass-through fields cannot override the translation ----------------------------------


def test_raw_width_and_height_cannot_override_the_size_limit(sdk: openai.OpenAI) -> None:
    body = refusal(
        sdk.images.generate, model="sandbox-generate", prompt="x", extra_body={"width": 4096, "height": 4096}
    )
    assert body["param"] in ("width", "height") and body["code"] == "reserved_parameter"


def test_num_images_beside_n_never_reaches_fal(sdk: openai.OpenAI, fake: FakeFal) -> None:
    body = refusal(
        sdk.images.edit,
        model="hidream-e1-1",
        image=("in.png", png_bytes(64, 64), "image/png"),
        prompt="x",
        extra_body={"num_images": 4},
    )
    assert (body["param"], body["code"]) == ("num_images", "reserved_parameter")
    assert "send 'n' instead" in str(body["message"])
    assert fake.submissions == []


def test_an_unknown_field_still_passes_through_to_fal(sdk: openai.OpenAI, fake: FakeFal) -> None:
    sdk.images.edit(
        model="hidream-e1-1",
        image=("in.png", png_bytes(64, 64), "image/png"),
        prompt="x",
        response_format="b64_json",
        extra_body={"acceleration": "high"},
    )
    assert fake.submissions[0].payload["acceleration"] == "high"
    assert fake.submissions[0].payload.get("num_images") in (None, 1)


# --- item 5: damaged inputs are the client's 400 --------------------------------------------------


def _truncated() -> bytes:
    whole = png_bytes(300, 200)
    return whole[: len(whole) // 2]


def _corrupt() -> bytes:
    whole = bytearray(png_bytes(300, 200))
    whole[60:120] = b"\xff" * 60  # inside the pixel data; the header still reads
    return bytes(whole)


@pytest.mark.parametrize("damaged", [_truncated(), _corrupt()], ids=["truncated", "corrupt"])
def test_a_damaged_image_on_sandbox_edit_is_a_400(sdk: openai.OpenAI, damaged: bytes) -> None:
    body = refusal(sdk.images.edit, model="sandbox-edit", image=("in.png", damaged, "image/png"), prompt="x")
    assert (body["param"], body["code"]) == ("image", "invalid_image")


def test_a_damaged_mask_on_sandbox_edit_is_a_400(sdk: openai.OpenAI) -> None:
    body = refusal(
        sdk.images.edit,
        model="sandbox-edit",
        image=("in.png", png_bytes(300, 200), "image/png"),
        mask=("mask.png", _truncated(), "image/png"),
        prompt="x",
    )
    assert (body["param"], body["code"]) == ("mask", "invalid_image")


# --- item 2: the sandbox draws in the shared, bounded pool ----------------------------------------


SANDBOX = os.path.join("providers", "sandbox", "adapter.py")


def _sandbox_threads() -> set[str]:
    """Names of the threads of this process that are inside the sandbox's drawing code right now."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    found = set()
    for ident, frame in sys._current_frames().items():
        walker: FrameType | None = frame
        while walker is not None:
            code = walker.f_code
            if code.co_filename.endswith(SANDBOX) and code.co_name in ("_edit", "_generate"):
                found.add(names.get(ident, "?"))
                break
            walker = walker.f_back
    return found


def test_sandbox_edits_draw_only_on_the_pools_threads_and_no_more_at_once(sdk: openai.OpenAI) -> None:
    source = ("in.png", png_bytes(1600, 1200), "image/png")
    seen: set[str] = set()
    most = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal most
        while not done.is_set():
            now = _sandbox_threads()
            seen.update(now)
            most = max(most, len(now))
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        with ThreadPoolExecutor(max_workers=6) as clients:
            answers = list(
                clients.map(
                    lambda i: sdk.images.edit(
                        model="sandbox-edit", image=source, prompt=f"p{i}", n=2, response_format="b64_json"
                    ),
                    range(6),
                )
            )
    finally:
        done.set()
        sampler.join()
    assert all(len(answer.data or []) == 2 for answer in answers)
    assert seen, "the sampler never caught the sandbox drawing"
    assert all(name.startswith("pixelgate-image") for name in seen), seen
    assert most <= (os.cpu_count() or 1)


# --- default response format ----------------------------------------------------------------------


def test_gpt_image_answers_b64_json_when_none_is_asked(sdk: openai.OpenAI, fake_openai: FakeOpenAIServer) -> None:
    result = sdk.images.generate(model="gpt-image-1", prompt="x")
    assert result.data and result.data[0].b64_json and result.data[0].url is None
    assert "response_format" not in fake_openai.app.requests[-1].json()


def test_other_models_answer_a_link_by_default(sdk: openai.OpenAI) -> None:
    result = sdk.images.generate(model="sandbox-generate", prompt="x", size="64x64")
    assert result.data and result.data[0].url and result.data[0].b64_json is None


def test_the_gateway_default_response_format_applies_when_none_is_sent(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, default_response_format="b64_json")
    with LiveGateway(settings) as live, openai.OpenAI(base_url=live.api_url, api_key=TEST_KEY, max_retries=0) as client:
        sent_none = client.images.generate(model="sandbox-generate", prompt="x", size="64x64")
        asked_url = client.images.generate(model="sandbox-generate", prompt="x", size="64x64", response_format="url")
    assert sent_none.data and sent_none.data[0].b64_json and sent_none.data[0].url is None
    assert asked_url.data and asked_url.data[0].url


# --- model table, strict mode ---------------------------------------------------------------------


def test_the_model_table_shows_the_configured_prompt_limit_and_integers(fal_gateway: LiveGateway) -> None:
    headers = {"Authorization": f"Bearer {TEST_KEY}"}
    edit = httpx.get(f"{fal_gateway.api_url}/models/sandbox-edit", headers=headers).json()["parameters"]
    assert edit["prompt"]["max_length"] == PROMPT_LIMIT and "maximum" not in edit["prompt"]
    assert edit["image"]["max_items"] == 1 and "maximum" not in edit["image"]
    raw = httpx.get(f"{fal_gateway.api_url}/models/hidream-e1-1", headers=headers).text
    assert '"minimum":1,"maximum":50,' in raw.replace(" ", "")  # num_inference_steps, not 1.0 and 50.0
    assert ".0," not in raw.split('"num_inference_steps"')[1].split("}")[0]


def test_strict_mode_says_the_request_was_refused(fal_gateway: LiveGateway) -> None:
    answer = httpx.post(
        f"{fal_gateway.api_url}/images/generations",
        json={"model": "sandbox-generate", "prompt": "x", "quality": "high"},
        headers={"Authorization": f"Bearer {TEST_KEY}", "x-pixelgate-strict": "true"},
    )
    error = answer.json()["error"]
    assert answer.status_code == 400 and error["param"] == "quality"
    assert "refused" in error["message"] and "ignored" not in error["message"].split("(without")[0]
