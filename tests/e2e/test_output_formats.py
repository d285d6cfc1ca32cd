"""output_format / output_compression and exact size, emulated by pixelgate, seen through the SDK."""

from __future__ import annotations

import base64
from collections.abc import Callable
from io import BytesIO
from typing import Any

import openai
import pytest
from PIL import Image

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


@pytest.mark.parametrize("fmt", ["png", "webp", "avif", "gif"])
def test_formats_with_alpha_keep_transparency(client: openai.OpenAI, fmt: Any) -> None:
    rgba = Image.new("RGBA", (64, 64), (30, 120, 200, 255))
    rgba.paste((0, 0, 0, 0), (0, 0, 32, 64))  # left half fully transparent
    buf = BytesIO()
    rgba.save(buf, format="PNG")
    result = client.images.edit(
        model="sandbox-edit",
        image=("t.png", buf.getvalue(), "image/png"),
        prompt="x",
        output_format=fmt,
        response_format="b64_json",
    )
    assert result.data is not None and result.data[0].b64_json is not None
    data = base64.b64decode(result.data[0].b64_json)
    assert MAGIC[fmt](data)
    out = decode(data).convert("RGBA")
    transparent, opaque = out.getpixel((8, 32)), out.getpixel((56, 32))
    assert isinstance(transparent, tuple) and isinstance(opaque, tuple)
    assert transparent[3] == 0 and opaque[3] == 255


def test_same_format_and_size_is_passed_through_and_others_converted(client: openai.OpenAI) -> None:
    # The sandbox makes PNG at the requested size: nothing to do for png, a conversion for webp.
    cases: list[tuple[Any, bool]] = [("png", False), ("webp", True)]
    for fmt, converted in cases:
        result = client.images.generate(
            model="sandbox-generate", prompt="x", size="64x64", output_format=fmt, response_format="b64_json"
        )
        metadata = result.model_extra["metadata"]  # type: ignore[index]
        assert (metadata["converted"], metadata["resized"]) == (converted, False)
