"""Format conversion and exact-size fitting of result images (Pillow), run in a worker pool.

``convert`` is the one conversion step of the pipeline:

- bytes already in the requested format, at the requested size, with no compression asked for, are
  returned untouched (only the header is read);
- otherwise the image is decoded once (under an explicit pixel cap), EXIF orientation is applied,
  it is fitted to the exact target if any (scale to cover, center-crop, Lanczos) and encoded.

Alpha is kept where the format holds it (PNG, WebP, AVIF, GIF); JPEG is flattened onto white.
Metadata is not carried over (no EXIF, XMP, text chunks or ICC profile).

``output_compression`` (0-100, higher keeps more quality, as with OpenAI's JPEG/WebP): JPEG, WebP
and AVIF use it as the encoder's quality; PNG is lossless, so it picks zlib effort
(100 = fastest, 0 = smallest: level ``9 - round(c * 9 / 100)``); GIF ignores it. Without it:
JPEG 90, WebP 90, AVIF 75, PNG level 6.
"""

from __future__ import annotations

import asyncio
import io
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

from PIL import Image, ImageOps
from pydantic import BaseModel, ConfigDict

from app.errors import UpstreamError
from normalization.imagetype import sniff_media_type

Format = Literal["png", "jpeg", "gif", "webp", "avif"]
DEFAULT_QUALITY = {"jpeg": 90, "webp": 90, "avif": 75}
ALPHA_FORMATS = frozenset({"png", "webp", "avif", "gif"})


class OutputSpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    format: Format
    compression: int | None = None
    target: tuple[int, int] | None = None


class EncodedImage(BaseModel):
    model_config = ConfigDict(frozen=True)

    data: bytes
    media_type: str
    width: int
    height: int
    reencoded: bool
    resized: bool


def convert(data: bytes, spec: OutputSpec, *, max_pixels: int) -> EncodedImage:
    """``data`` as ``spec`` asks. Raises :class:`UpstreamError` for unreadable or oversized images."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as opened:
                width, height = opened.size
                if width * height > max_pixels:
                    raise UpstreamError(f"the upstream image is {width}x{height}, over the {max_pixels}-pixel limit")
                media_type = f"image/{spec.format}"
                if (
                    sniff_media_type(data) == media_type
                    and spec.target in (None, (width, height))
                    and spec.compression is None
                ):
                    return EncodedImage(
                        data=data, media_type=media_type, width=width, height=height, reencoded=False, resized=False
                    )
                image = ImageOps.exif_transpose(opened)
        resized = spec.target is not None and spec.target != image.size
        if spec.target is not None and resized:
            image = ImageOps.fit(image, spec.target, Image.Resampling.LANCZOS)
        encoded = _encode(image, spec)
    except (OSError, ValueError, Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise UpstreamError("the upstream returned an image that could not be decoded") from exc
    return EncodedImage(
        data=encoded,
        media_type=f"image/{spec.format}",
        width=image.width,
        height=image.height,
        reencoded=True,
        resized=resized,
    )


def _encode(image: Image.Image, spec: OutputSpec) -> bytes:
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if spec.format == "jpeg" or not has_alpha:
        if has_alpha:
            rgba = image.convert("RGBA")
            flat = Image.new("RGB", rgba.size, (255, 255, 255))
            flat.paste(rgba, mask=rgba.getchannel("A"))
            image = flat
        elif image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
    elif image.mode != "RGBA" and spec.format in ALPHA_FORMATS:
        image = image.convert("RGBA")
    out = io.BytesIO()
    if spec.format == "png":
        level = 6 if spec.compression is None else 9 - round(spec.compression * 9 / 100)
        image.save(out, format="PNG", compress_level=level)
    elif spec.format == "gif":
        image.save(out, format="GIF")
    else:
        quality = DEFAULT_QUALITY[spec.format] if spec.compression is None else spec.compression
        image.save(out, format=spec.format.upper(), quality=quality)
    return out.getvalue()


class ImageWorkers:
    """Runs conversions off the event loop, in a thread pool sized to the CPU count.

    Pillow releases the GIL while decoding, resizing and encoding, so threads use every core.
    """

    def __init__(self, max_workers: int | None = None) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max_workers or os.cpu_count() or 2, thread_name_prefix="pillow")

    async def convert(self, data: bytes, spec: OutputSpec, max_pixels: int) -> EncodedImage:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: convert(data, spec, max_pixels=max_pixels))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
