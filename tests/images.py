"""Test images made on the fly with Pillow (no binary fixtures in the repo)."""

from __future__ import annotations

import io
import random
import struct
import zlib

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


def bilevel_png(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of ``width`` x ``height`` black pixels: deflate makes it ~8000x smaller
    (8000x8000 is 64 MP in under 8 KB), built row by row without allocating the image."""
    row = b"\0" * (-(-width // 8) + 1)
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def noise_png(side: int, seed: int = 7) -> bytes:
    """A ``side`` x ``side`` PNG of random pixels, stored uncompressed: about ``side * side * 3`` bytes."""
    image = Image.frombytes("RGB", (side, side), random.Random(seed).randbytes(side * side * 3))
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=0)
    return out.getvalue()
