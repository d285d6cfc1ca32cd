"""Issue 2 end to end: the official openai Python SDK against a live pixelgate (sandbox models)."""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai.types import Image, ImagesResponse

from tests.conftest import TEST_KEY, make_settings
from tests.images import decode, png_bytes
from tests.live import LiveGateway


def _data(result: ImagesResponse) -> list[Image]:
    assert result.data is not None
    return result.data


def _b64_image(item: object) -> bytes:
    b64 = getattr(item, "b64_json", None)
    assert isinstance(b64, str)
    return base64.b64decode(b64)


def test_edit_one_file_transforms_the_input(client: openai.OpenAI) -> None:
    source = png_bytes(320, 200)
    result = client.images.edit(
        model="sandbox-edit",
        image=("in.png", source, "image/png"),
        prompt="invert it",
        response_format="b64_json",
    )
    assert len(_data(result)) == 1
    out = decode(_b64_image(_data(result)[0]))
    assert out.size == (320, 200)
    assert out.tobytes() != decode(source).convert(out.mode).tobytes()
    assert result.size == "320x200"


def test_edit_is_deterministic_in_input_prompt_and_seed(client: openai.OpenAI) -> None:
    source = png_bytes(64, 64)

    def run(prompt: str, seed: int) -> bytes:
        r = client.images.edit(
            model="sandbox-edit",
            image=("in.png", source, "image/png"),
            prompt=prompt,
            response_format="b64_json",
            extra_body={"seed": seed},
        )
        return _b64_image(_data(r)[0])

    assert run("a", 1) == run("a", 1)
    assert run("a", 1) != run("a", 2)
    assert run("a", 1) != run("b", 1)


def test_edit_with_a_list_of_files_sent_as_image_brackets(client: openai.OpenAI) -> None:
    # A list, even of one file, is sent by the SDK as `image[]` parts.
    result = client.images.edit(
        model="sandbox-edit",
        image=[("a.png", png_bytes(100, 80), "image/png")],
        prompt="x",
        response_format="b64_json",
    )
    assert decode(_b64_image(_data(result)[0])).size == (100, 80)


def test_extra_body_fields_reach_the_model_typed(client: openai.OpenAI) -> None:
    result = client.images.edit(
        model="sandbox-edit",
        image=("a.png", png_bytes(), "image/png"),
        prompt="x",
        response_format="b64_json",
        n=2,
        extra_body={"seed": 41, "delay_ms": 5, "my_vendor_flag": "on"},
    )
    assert [(item.model_extra or {}).get("seed") for item in _data(result)] == [41, 42]
    params = result.model_extra["metadata"]["parameters"]  # type: ignore[index]
    assert params["seed"] == {"behavior": "passthrough", "upstream": "seed", "note": None}
    assert params["my_vendor_flag"]["behavior"] == "passthrough"


def test_generation_at_requested_size(client: openai.OpenAI) -> None:
    result = client.images.generate(
        model="sandbox-generate", prompt="a red balloon", size="640x480", response_format="b64_json"
    )
    assert decode(_b64_image(_data(result)[0])).size == (640, 480)
    assert result.size == "640x480"


def test_generation_accepts_null_for_every_optional_field(gateway: LiveGateway) -> None:
    body = {
        "model": "sandbox-generate",
        "prompt": "x",
        "n": None,
        "size": None,
        "quality": None,
        "style": None,
        "response_format": "b64_json",
        "output_format": None,
        "output_compression": None,
        "user": None,
        "background": None,
        "moderation": None,
    }
    response = httpx.post(
        f"{gateway.api_url}/images/generations",
        json=body,
        headers={"Authorization": f"Bearer {TEST_KEY}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["data"]) == 1


def test_models_list(client: openai.OpenAI) -> None:
    ids = {model.id for model in client.models.list()}
    assert {"sandbox-edit", "sandbox-generate"} <= ids


def test_wrong_key_is_authentication_error(gateway: LiveGateway) -> None:
    bad = openai.OpenAI(base_url=gateway.api_url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        bad.models.list()
    assert info.value.status_code == 401
    assert info.value.request_id


def test_missing_prompt_is_bad_request_naming_prompt(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.images.edit(model="sandbox-edit", image=("a.png", png_bytes(), "image/png"), prompt="")
    assert isinstance(info.value.body, dict)
    assert info.value.body["param"] == "prompt"


# --- bad input: each a clear OpenAI-shaped error, and the server still serves afterwards ---------------


def _post_edit(
    gateway: LiveGateway, files: list[tuple[str, tuple[str, bytes, str]]], data: dict[str, str]
) -> httpx.Response:
    return httpx.post(
        f"{gateway.api_url}/images/edits",
        files=files,
        data=data,
        headers={"Authorization": f"Bearer {TEST_KEY}"},
        timeout=30,
    )


def _assert_openai_error(response: httpx.Response, status: int, param: str | None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param
    assert response.headers["x-request-id"]


@pytest.mark.parametrize(
    ("files", "data", "status", "param"),
    [
        ([], {"model": "sandbox-edit", "prompt": "x"}, 400, "image"),
        (
            [("image", ("notes.png", b"just some text, not an image", "image/png"))],
            {"model": "sandbox-edit", "prompt": "x"},
            400,
            "image",
        ),
        (
            [("image[]", ("a.png", png_bytes(8, 8), "image/png"))] * 17,
            {"model": "sandbox-edit", "prompt": "x"},
            400,
            "image",
        ),
        (
            [("image", ("a.png", png_bytes(8, 8), "image/png"))],
            {"model": "sandbox-edit", "prompt": "x", "n": "0"},
            400,
            "n",
        ),
        (
            [("image", ("a.png", png_bytes(8, 8), "image/png"))],
            {"model": "sandbox-edit", "prompt": "x", "n": "11"},
            400,
            "n",
        ),
        (
            [("image", ("a.png", png_bytes(8, 8), "image/png"))],
            {"model": "no-such-model", "prompt": "x"},
            404,
            "model",
        ),
        (
            [("image", ("a.png", png_bytes(8, 8), "image/png"))],
            {"model": "sandbox-edit", "prompt": "x", "seed": "abc"},
            400,
            "seed",
        ),
        (
            [("image", ("a.png", png_bytes(8, 8), "image/png"))],
            {"model": "sandbox-generate", "prompt": "x"},
            400,
            "model",
        ),
    ],
    ids=[
        "no-image",
        "text-as-image",
        "17-images",
        "n=0",
        "n=11",
        "unknown-model",
        "bad-seed",
        "generate-only-model",
    ],
)
def test_bad_input_gets_openai_error_and_server_keeps_serving(
    gateway: LiveGateway,
    client: openai.OpenAI,
    files: list[tuple[str, tuple[str, bytes, str]]],
    data: dict[str, str],
    status: int,
    param: str,
) -> None:
    _assert_openai_error(_post_edit(gateway, files, data), status, param)
    ok = client.images.edit(
        model="sandbox-edit",
        image=("a.png", png_bytes(16, 16), "image/png"),
        prompt="x",
        response_format="b64_json",
    )
    assert len(_data(ok)) == 1


def test_unknown_model_code(gateway: LiveGateway) -> None:
    response = _post_edit(
        gateway, [("image", ("a.png", png_bytes(8, 8), "image/png"))], {"model": "nope", "prompt": "x"}
    )
    assert response.json()["error"]["code"] == "model_not_found"


@pytest.fixture(scope="module")
def small_upload_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    settings = make_settings(tmp_path_factory.mktemp("small"), max_upload_bytes=256 * 1024)
    with LiveGateway(settings) as live:
        yield live


def test_oversized_upload_is_413_through_the_sdk(small_upload_gateway: LiveGateway) -> None:
    client = openai.OpenAI(base_url=small_upload_gateway.api_url, api_key=TEST_KEY, max_retries=0)
    big = png_bytes(8, 8) + b"\0" * (1024 * 1024)
    with pytest.raises(openai.APIStatusError) as info:
        client.images.edit(model="sandbox-edit", image=("big.png", big, "image/png"), prompt="x")
    assert info.value.status_code == 413
    assert isinstance(info.value.body, dict) and info.value.body["param"] == "image"


def test_oversized_upload_is_refused_while_streaming(small_upload_gateway: LiveGateway) -> None:
    """The server answers 413 while the body is still incomplete: it never waits to buffer it all."""
    boundary = "pixelgateboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nsandbox-edit\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nx\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    request = (
        "POST /v1/images/edits HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {TEST_KEY}\r\nTransfer-Encoding: chunked\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", small_upload_gateway.port), timeout=20) as sock:
        sock.sendall(request)
        payload = head + b"\x89PNG\r\n\x1a\n" + b"\0" * (1024 * 1024)
        sock.sendall(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
        # No terminating chunk: the body never completes; the answer must come anyway.
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_json_edit_with_data_url(client: openai.OpenAI, gateway: LiveGateway) -> None:
    data_url = "data:image/png;base64," + base64.b64encode(png_bytes(40, 30)).decode()
    response = httpx.post(
        f"{gateway.api_url}/images/edits",
        json={
            "model": "sandbox-edit",
            "prompt": "x",
            "images": [{"image_url": data_url}],
            "response_format": "b64_json",
        },
        headers={"Authorization": f"Bearer {TEST_KEY}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert decode(base64.b64decode(response.json()["data"][0]["b64_json"])).size == (40, 30)


def test_health_endpoints_and_request_id(gateway: LiveGateway, tmp_path: Path) -> None:
    assert httpx.get(f"{gateway.base_url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{gateway.base_url}/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert ready.headers["x-request-id"].startswith("req_")


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:1/a.png", "https://127.0.0.1/a.png", "http://169.254.169.254/latest/meta-data", "ftp://x/a.png"],
)
def test_json_edit_refuses_private_and_non_https_image_urls(gateway: LiveGateway, url: str) -> None:
    response = httpx.post(
        f"{gateway.api_url}/images/edits",
        json={"model": "sandbox-edit", "prompt": "x", "images": [{"image_url": url}]},
        headers={"Authorization": f"Bearer {TEST_KEY}"},
        timeout=30,
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "images[0]"
