"""Test images made on the fly with Pillow (no binary fixtures in the repo)."""

from __future__ import annotations

import io

from PIL import Image


def png_bytes(width: int = 320, height: int = 200, color: tuple[int, int, int] = (20, 160, 220)) -> bytes:
    out = io.BytesIO()
    image = Image.new("RGB", (width, height), color)
    for x in range(0, width, 16):
        for y in range(0, height, 16):
            image.putpixel((x, y), (255, 255, 255))
    image.save(out, format="PNG")
    return out.getvalue()


def encoded(width: int, height: int, fmt: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(out, format=fmt)
    return out.getvalue()


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image
