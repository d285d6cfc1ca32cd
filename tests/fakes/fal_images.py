"""What the fake upstreams make: real Pillow images (PNG, JPEG or WebP) of the sizes asked for.

Used by the fake fal, the fake Replicate and the fake Gemini servers.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from typing import Literal

import pybase64
from PIL import Image, ImageDraw, PngImagePlugin
from pydantic import JsonValue

SIZE_PRESETS = {
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}


def output_size(
    payload: dict[str, JsonValue],
    input_bytes: Callable[[str], bytes | None],
    default: tuple[int, int] = SIZE_PRESETS["square_hd"],
) -> tuple[int, int]:
    """A generation's ``image_size`` (preset or ``{width, height}``), else the first input image's size,
    else ``default`` (fal's ``square_hd``)."""
    size = payload.get("image_size")
    if isinstance(size, str) and size in SIZE_PRESETS:
        return SIZE_PRESETS[size]
    if isinstance(size, dict):
        w, h = size.get("width"), size.get("height")
        if isinstance(w, int) and isinstance(h, int):
            return w, h
    for key in ("image_url", "image_urls", "reference_image_urls"):
        value = payload.get(key)
        first = value[0] if isinstance(value, list) and value else value
        if isinstance(first, str) and (data := input_bytes(first)) is not None:
            with Image.open(io.BytesIO(data)) as image:
                return image.size
    return default


def data_uri_bytes(url: str) -> bytes | None:
    if url.startswith("data:") and "," in url:
        return pybase64.b64decode(url.split(",", 1)[1])
    return None


ImageFormat = Literal["png", "jpeg", "webp"]
MEDIA_TYPES: dict[ImageFormat, str] = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


def image_size(data: bytes) -> tuple[int, int] | None:
    """The pixel size of encoded image bytes, or None when they are not an image Pillow reads."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def render(width: int, height: int, seed: int, png: bool) -> bytes:
    return render_as(width, height, seed, "png" if png else "jpeg")


def render_as(width: int, height: int, seed: int, fmt: ImageFormat) -> bytes:
    """A ``width`` x ``height`` image (a coloured background and a few discs, from ``seed``) as ``fmt``."""
    rng = random.Random(seed)
    image = Image.new("RGB", (width, height), (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x, y = rng.randrange(width), rng.randrange(height)
        r = max(2, min(width, height) // 6)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=(rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    out = io.BytesIO()
    image.save(out, format=fmt.upper(), quality=85)
    return out.getvalue()


def render_photo_sized(width: int, height: int, png: bool) -> bytes:
    """An image about as large as a model's output: :func:`render` with noise over its lower half
    (noise does not compress, so a 1024x1024 PNG is about 1.6 MB, as a photo-like one is)."""
    image = Image.open(io.BytesIO(render(width, height, 0, png=True))).convert("RGB")
    band = height // 2
    image.paste(
        Image.frombytes("RGB", (width, band), random.Random(width * height).randbytes(width * band * 3)), (0, band)
    )
    out = io.BytesIO()
    image.save(out, format="PNG" if png else "JPEG", quality=85)
    return out.getvalue()


ROTATED_MARK = (255, 0, 0)
"""Colour of the corner patch :func:`render_rotated` stores top-left: shown top-right once oriented."""


def render_rotated(width: int, height: int, seed: int, png: bool) -> bytes:
    """A ``width`` x ``height`` image as a camera stores one shot sideways, with metadata to strip.

    The pixels are stored rotated (``height`` x ``width``) with EXIF orientation 6 (display rotated
    90 degrees clockwise), a red patch in the stored top-left corner (the displayed top-right), an
    EXIF camera make, a comment (JPEG) or text chunk (PNG) and an XMP packet.
    """
    image = Image.open(io.BytesIO(render(height, width, seed, png=True))).convert("RGB")
    patch = max(4, min(width, height) // 8)
    image.paste(ROTATED_MARK, (0, 0, patch, patch))
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "FakeCam"
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
    out = io.BytesIO()
    if png:
        info = PngImagePlugin.PngInfo()
        info.add_text("Comment", "fake fal secret note")
        image.save(out, format="PNG", exif=exif, pnginfo=info)
    else:
        image.save(out, format="JPEG", quality=90, exif=exif, comment=b"fake fal secret note", xmp=xmp)
    return out.getvalue()
