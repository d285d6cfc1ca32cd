"""output_format / output_compression and exact size, emulated by pixelgate, seen through the SDK."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import openai
import pytest

from tests.images import decode, png_bytes

MAGIC: dict[str, Callable[[bytes], bool]] = {
    "png": lambda b: b.startswith(b"\x89PNG\r\n\x1a\n"),
    "jpeg": lambda b: b.startswith(b"\xff\xd8\xff"),
    "webp": lambda b: b[:4] == b"RIFF" and b[8:12] == b"WEBP",
    "gif": lambda b: b[:6] in (b"GIF87a", b"GIF89a"),
    "avif": lambda b: b[4:12] == b"ftypavif",
}


def _bytes(
    client: openai.OpenAI, *, output_format: Any, size: str, output_compression: int | None = None, seed: int = 0
) -> tuple[bytes, str]:
    result = client.images.generate(
        model="sandbox-generate",
        prompt="shapes",
        response_format="b64_json",
        output_format=output_format,
        size=size,
        output_compression=output_compression,
        extra_body={"seed": seed},
    )
    assert result.data is not None and result.data[0].b64_json is not None
    return base64.b64decode(result.data[0].b64_json), str(result.output_format)


@pytest.mark.parametrize("fmt", sorted(MAGIC))
def test_every_output_format_has_its_magic_bytes(client: openai.OpenAI, fmt: str) -> None:
    data, reported = _bytes(client, output_format=fmt, size="256x256")
    assert MAGIC[fmt](data), data[:16]
    assert reported == fmt


def test_jpeg_compression_10_is_smaller_than_90(client: openai.OpenAI) -> None:
    low, _ = _bytes(client, output_format="jpeg", output_compression=10, size="512x512", seed=3)
    high, _ = _bytes(client, output_format="jpeg", output_compression=90, size="512x512", seed=3)
    assert len(low) < len(high)


def test_jpeg_flattens_transparency_onto_white(client: openai.OpenAI) -> None:
    from io import BytesIO

    from PIL import Image

    rgba = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    buf = BytesIO()
    rgba.save(buf, format="PNG")
    result = client.images.edit(
        model="sandbox-edit",
        image=("t.png", buf.getvalue(), "image/png"),
        prompt="x",
        output_format="jpeg",
        response_format="b64_json",
    )
    assert result.data is not None and result.data[0].b64_json is not None
    pixel = decode(base64.b64decode(result.data[0].b64_json)).convert("RGB").getpixel((32, 32))
    assert isinstance(pixel, tuple) and all(channel >= 252 for channel in pixel)


def test_exact_size_is_fitted_when_the_model_has_no_size_control(client: openai.OpenAI) -> None:
    result = client.images.edit(
        model="sandbox-edit",
        image=("a.png", png_bytes(300, 100), "image/png"),
        prompt="x",
        size="128x128",
        response_format="b64_json",
    )
    assert result.data is not None and result.data[0].b64_json is not None
    assert decode(base64.b64decode(result.data[0].b64_json)).size == (128, 128)
    metadata = result.model_extra["metadata"]  # type: ignore[index]
    assert metadata["resized"] is True
    assert metadata["parameters"]["size"]["behavior"] == "emulated"


def test_n_beyond_native_maximum_returns_n_images(client: openai.OpenAI) -> None:
    result = client.images.generate(
        model="sandbox-generate", prompt="x", n=6, size="64x64", response_format="b64_json", extra_body={"seed": 10}
    )
    assert result.data is not None and len(result.data) == 6
    assert [(item.model_extra or {}).get("seed") for item in result.data] == [10, 11, 12, 13, 14, 15]
    assert result.model_extra["metadata"]["upstream_calls"] == 2  # type: ignore[index]
