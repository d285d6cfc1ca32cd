"""Issue 7, input limits end to end: request size while streaming, image count, prompt length, pixel cap.

(The per-file cap, streamed and through the SDK, and 17 multipart images are in test_sdk_python.py.)
"""

from __future__ import annotations

import base64
import socket
import struct
import time
import zlib
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.conftest import TEST_KEY, make_settings
from tests.images import bilevel_png, png_bytes
from tests.live import LiveGateway

MAX_FILE = 64 * 1024
MAX_REQUEST = MAX_FILE * (16 + 1) + 1024 * 1024  # what the edits route allows for 16 images and a mask


MULTI_IMAGE_MODEL = {
    "id": "sandbox-multi",
    "provider": "sandbox",
    "upstream": "sandbox/edit",
    "modes": ["edit"],
    "images": {"field": "image", "kind": "list", "max_images": 16, "mask_field": "mask"},
    "size": {"kind": "none"},
    "count": {"field": "num_images", "max": 4},
    "output_format": {"field": None, "values": ["png"], "default": "png"},
}
"""A user catalog entry taking up to 16 images (the built-in sandbox edit takes one)."""


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    settings = make_settings(tmp_path_factory.mktemp("limits"), max_upload_bytes=MAX_FILE, models=[MULTI_IMAGE_MODEL])
    with LiveGateway(settings) as live:
        yield live


@pytest.fixture
def sdk(small: LiveGateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=small.api_url, api_key=TEST_KEY, max_retries=0, timeout=30) as client:
        yield client


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _head(port: int, headers: str) -> bytes:
    return (
        f"POST /v1/images/edits HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {TEST_KEY}\r\n{headers}\r\n"
    ).encode()


def test_request_over_the_total_cap_is_413_while_streaming(small: LiveGateway) -> None:
    """Each part is within its own cap; the sum is not. The 413 comes before the body is complete."""
    boundary = "limitsboundary"
    field = b"y" * (200 * 1024)
    part = (f'--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\n').encode() + field + b"\r\n"
    with socket.create_connection(("127.0.0.1", small.port), timeout=20) as sock:
        sock.sendall(
            _head(
                small.port,
                f"Transfer-Encoding: chunked\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n",
            )
        )
        sent = 0
        while sent <= MAX_REQUEST:  # no terminating chunk: the body never completes
            sock.sendall(_chunk(part))
            sent += len(part)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"code":"payload_too_large"' in answer


def test_declared_length_over_the_cap_is_413_before_any_body(small: LiveGateway) -> None:
    with socket.create_connection(("127.0.0.1", small.port), timeout=20) as sock:
        sock.sendall(
            _head(small.port, "Content-Length: 1000000000000\r\nContent-Type: multipart/form-data; boundary=b\r\n")
        )
        started = time.monotonic()
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert time.monotonic() - started < 2


def test_sixteen_images_pass_and_json_edits_count_too(small: LiveGateway, sdk: openai.OpenAI) -> None:
    images = [(f"{i}.png", png_bytes(8, 8), "image/png") for i in range(16)]
    result = sdk.images.edit(model="sandbox-multi", image=images, prompt="x", response_format="b64_json")
    assert result.data is not None and len(result.data) == 1
    url = "data:image/png;base64," + base64.b64encode(png_bytes(8, 8)).decode()
    response = httpx.post(
        f"{small.api_url}/images/edits",
        json={"model": "sandbox-edit", "prompt": "x", "images": [{"image_url": url}] * 17},
        headers={"Authorization": f"Bearer {TEST_KEY}"},
        timeout=30,
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "too_many_images"
    assert response.json()["error"]["param"] == "images"


@pytest.mark.parametrize("endpoint", ["edit", "generate"])
def test_prompt_of_32000_characters_passes_and_one_more_is_400(sdk: openai.OpenAI, endpoint: str) -> None:
    def send(prompt: str) -> None:
        if endpoint == "edit":
            sdk.images.edit(
                model="sandbox-edit",
                image=("a.png", png_bytes(8, 8), "image/png"),
                prompt=prompt,
                response_format="b64_json",
            )
        else:
            sdk.images.generate(model="sandbox-generate", prompt=prompt, size="16x16", response_format="b64_json")

    send("é" * 32_000)  # characters, not bytes: 64,000 bytes of UTF-8
    with pytest.raises(openai.BadRequestError) as caught:
        send("a" * 32_001)
    assert caught.value.body == {
        "message": "'prompt' is longer than 32000 characters",
        "type": "invalid_request_error",
        "param": "prompt",
        "code": "string_above_max_length",
    }


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` in a few hundred bytes: a decompression bomb's shape."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 4096)) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (bilevel_png(9000, 8000), "image_too_large"),  # 72 MP in ~9 KB, over the default 64 MP cap
        # 10 GP: read from the header with our own cap, not Pillow's global one, so named for what it is
        (_png_header_only(100_000, 100_000), "image_too_large"),
    ],
    ids=["72MP-in-9KB", "10GP-header"],
)
def test_decompression_bombs_are_400_without_decoding(
    small: LiveGateway, sdk: openai.OpenAI, data: bytes, code: str
) -> None:
    assert len(data) < MAX_FILE
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.images.edit(
            model="sandbox-edit",
            image=[("a.png", png_bytes(8, 8), "image/png"), ("bomb.png", data, "image/png")],
            prompt="x",
        )
    body = caught.value.body
    assert isinstance(body, dict)
    assert (body["param"], body["code"]) == ("image[1]", code)
    mask = httpx.post(
        f"{small.api_url}/images/edits",
        json={
            "model": "sandbox-edit",
            "prompt": "x",
            "images": [{"image_url": "data:image/png;base64," + base64.b64encode(png_bytes(8, 8)).decode()}],
            "mask": {"image_url": "data:image/png;base64," + base64.b64encode(data).decode()},
        },
        headers={"Authorization": f"Bearer {TEST_KEY}"},
        timeout=30,
    )
    assert mask.status_code == 400
    assert (mask.json()["error"]["param"], mask.json()["error"]["code"]) == ("mask", code)
