"""Output-format emulation: decode a result image once, orient, fit to size, re-encode without metadata.

Everything here is pure and synchronous (Pillow releases the GIL while decoding, resampling and
encoding); async callers go through :class:`ImageWorkers`, which runs :func:`convert` in a thread
pool off the event loop.

Decoding never relies on Pillow's global ``Image.MAX_IMAGE_PIXELS``: the format's plugin is
opened directly and the header's pixel count is checked against the caller's ``max_pixels`` before
any pixel is decoded.
"""

from __future__ import annotations

import asyncio
import io
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

from PIL import (
    AvifImagePlugin,
    GifImagePlugin,
    Image,
    ImageFile,
    ImageOps,
    JpegImagePlugin,
    PngImagePlugin,
    WebPImagePlugin,
)
from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from core.errors import GatewayError, UpstreamError
from core.images import ImageMediaType, sniff_media_type

OutputFormat = Literal["png", "jpeg", "gif", "webp", "avif"]

MEDIA_TYPES: dict[OutputFormat, ImageMediaType] = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "avif": "image/avif",
}

# The plugin modules register themselves on import; naming them keeps that import explicit.
_PLUGINS: dict[ImageMediaType, str] = {
    "image/png": PngImagePlugin.PngImageFile.format,
    "image/jpeg": JpegImagePlugin.JpegImageFile.format,
    "image/gif": GifImagePlugin.GifImageFile.format,
    "image/webp": WebPImagePlugin.WebPImageFile.format,
    "image/avif": AvifImagePlugin.AvifImageFile.format,
}

DEFAULT_JPEG_QUALITY = 90
DEFAULT_WEBP_QUALITY = 90
DEFAULT_AVIF_QUALITY = 75
# zlib level 3 writes a photo-like 1024x1024 PNG about three times as fast as Pillow's default 6,
# for a file 0-8% larger (measured); PNG is lossless, so only time and size are traded.
DEFAULT_PNG_COMPRESS_LEVEL = 3

_WHITE = (255, 255, 255)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OutputSpec(_Frozen):
    """What the client asked for: ``output_format``, ``output_compression`` and an exact ``size``."""

    format: OutputFormat
    compression: int | None = Field(default=None, ge=0, le=100)
    target: tuple[PositiveInt, PositiveInt] | None = None


class EncodedImage(_Frozen):
    """An image ready to return to the client; ``reencoded`` is False when the input bytes passed as-is."""

    data: bytes = Field(repr=False)
    media_type: ImageMediaType
    width: int
    height: int
    reencoded: bool
    resized: bool


def convert(
    data: bytes,
    spec: OutputSpec,
    *,
    max_pixels: int,
    error_class: type[GatewayError] = UpstreamError,
) -> EncodedImage:
    """Return ``data`` as ``spec`` asks: format, compression and (optionally) exact size.

    Input: PNG, JPEG, GIF, WebP or AVIF bytes (the type is sniffed, never trusted); only the first
    frame of an animation is used when re-encoding.

    Passthrough: when the bytes already are ``spec.format``, upright (no EXIF orientation), at
    ``spec.target`` (or no target) and ``spec.compression`` is None, they are returned unchanged
    (only the header is read; metadata stays as the upstream wrote it).

    Otherwise the image is decoded once, EXIF orientation is applied, it is fitted to ``target``
    exactly when given (scaled to cover it with LANCZOS, then center-cropped), and encoded with all
    metadata stripped (EXIF, XMP, text chunks, comments). The ICC profile is kept: it is colour data,
    not metadata, and dropping it would shift the colours of a wide-gamut (e.g. Display P3) image.
    Alpha is kept by png, webp, avif and gif (gif as one transparent palette entry); jpeg is
    flattened onto white.

    ``compression`` (0-100, None for the default), per encoder; higher always means a larger file:
        jpeg: ``quality`` = compression (default 90).
        webp: lossy ``quality`` = compression (default 90).
        avif: ``quality`` = compression (default 75, libavif's usual point).
        png: lossless; zlib ``compress_level`` = round((100 - compression) * 9 / 100), so 100 is
            level 0 (store) and 0 is level 9 (default level 3, tuned for speed).
        gif: ignored (a 256-colour palette is the only knob).

    Failure: undecodable or truncated bytes, an unknown type, or more than ``max_pixels`` pixels
    raise ``error_class`` (default :class:`UpstreamError`, for upstream results; pass
    :class:`~core.errors.InvalidRequestError` for client-supplied images) with code
    ``invalid_image`` or ``image_too_large``.
    """
    img, source_type = _open_checked(data, max_pixels, error_class)
    try:
        unchanged = _unchanged(data, img, source_type, spec)
        if unchanged is not None:
            return unchanged
        _decode(img, error_class)
        return _encode_decoded(img, spec)
    finally:
        img.close()


def passthrough(
    data: bytes,
    spec: OutputSpec,
    *,
    max_pixels: int,
    error_class: type[GatewayError] = UpstreamError,
) -> EncodedImage | None:
    """:func:`convert`'s answer when it is the input unchanged, else None; reads the header only.

    Cheap enough for the event loop (tens of microseconds): what needs no conversion skips the
    thread pool. Raises as :func:`convert` does for an unknown type, a bad header or too many pixels.
    """
    img, source_type = _open_checked(data, max_pixels, error_class)
    try:
        return _unchanged(data, img, source_type, spec)
    finally:
        img.close()


def _open_checked(
    data: bytes, max_pixels: int, error_class: type[GatewayError]
) -> tuple[ImageFile.ImageFile, ImageMediaType]:
    source_type = sniff_media_type(data)
    if source_type is None:
        raise error_class("the image is of an unsupported or unknown type", code="invalid_image")
    return _open_header(data, source_type, max_pixels, error_class), source_type


def _unchanged(
    data: bytes, img: ImageFile.ImageFile, source_type: ImageMediaType, spec: OutputSpec
) -> EncodedImage | None:
    target_type = MEDIA_TYPES[spec.format]
    if (
        source_type == target_type
        and spec.compression is None
        and (spec.target is None or img.size == spec.target)
        and _is_upright(img)
    ):
        return EncodedImage(
            data=data, media_type=target_type, width=img.width, height=img.height, reencoded=False, resized=False
        )
    return None


def _open_header(
    data: bytes, media_type: ImageMediaType, max_pixels: int, error_class: type[GatewayError]
) -> ImageFile.ImageFile:
    # Image.open would apply the process-global MAX_IMAGE_PIXELS (and warn through the global,
    # thread-unsafe warnings filters); the plugin factory reads the header only, and the limit
    # here is the caller's.
    factory = Image.OPEN[_PLUGINS[media_type]][0]
    try:
        img = factory(io.BytesIO(data), "")
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as exc:
        raise error_class("the image could not be read", code="invalid_image") from exc
    width, height = img.size
    if width <= 0 or height <= 0:
        img.close()
        raise error_class("the image is empty", code="invalid_image")
    if width * height > max_pixels:
        img.close()
        raise error_class(f"the image is {width}x{height}, over the {max_pixels}-pixel limit", code="image_too_large")
    return img


def _is_upright(img: ImageFile.ImageFile) -> bool:
    # A PNG's eXIf chunk after the pixel data is only seen by a full load; one before it (the
    # usual place) is already in img.info, and that is all a header read may look at.
    if isinstance(img, PngImagePlugin.PngImageFile) and "exif" not in img.info:
        return True
    orientation = img.getexif().get(0x0112, 1)
    return orientation in (0, 1)


def _decode(img: ImageFile.ImageFile, error_class: type[GatewayError]) -> None:
    try:
        img.load()
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as exc:
        raise error_class("the image could not be decoded", code="invalid_image") from exc


def _encode_decoded(decoded: Image.Image, spec: OutputSpec) -> EncodedImage:
    """Orient, normalize the mode, fit and encode; each step closes the copy it replaces."""
    icc_profile = decoded.info.get("icc_profile")
    img: Image.Image = decoded
    ImageOps.exif_transpose(img, in_place=True)
    img = _replace(img, _working_image(img, spec.format))
    resized = False
    if spec.target is not None and img.size != spec.target:
        img = _replace(img, _cover(img, spec.target))
        resized = True
    # Encoders copy some of img.info into the output (JPEG and GIF the comment, PNG and AVIF the
    # ICC profile); nothing of the source's is kept but the profile, which every encoder is given.
    img.info = {}
    buffer = io.BytesIO()
    try:
        _save(img, buffer, spec, icc_profile if isinstance(icc_profile, bytes) else None)
        return EncodedImage(
            data=buffer.getvalue(),
            media_type=MEDIA_TYPES[spec.format],
            width=img.width,
            height=img.height,
            reencoded=True,
            resized=resized,
        )
    finally:
        if img is not decoded:
            img.close()


def _replace(old: Image.Image, new: Image.Image) -> Image.Image:
    if new is not old:
        old.close()
    return new


def _working_image(img: Image.Image, output: OutputFormat) -> Image.Image:
    """The image in the mode its encoder takes: RGB(A) or L, never a palette or 16-bit mode.

    A palette image is expanded before resizing because Pillow resamples palette images with
    NEAREST only.
    """
    if img.has_transparency_data:
        rgba = img if img.mode == "RGBA" else img.convert("RGBA")
        if output != "jpeg":
            return rgba
        flat = Image.new("RGB", rgba.size, _WHITE)
        flat.paste(rgba, (0, 0), rgba)
        if rgba is not img:
            rgba.close()
        return flat
    if img.mode in ("L", "RGB"):
        return img
    if img.mode.startswith("I;16") or img.mode == "I":
        # Pillow's I;16 -> L conversion clips at 255 instead of scaling 16-bit samples down.
        wide = img.convert("I") if img.mode != "I" else img
        scaled = wide.point(lambda value: value / 257)
        if wide is not img:
            wide.close()
        narrow = scaled.convert("L")
        scaled.close()
        return narrow
    return img.convert("L" if img.mode == "1" else "RGB")


def _cover(img: Image.Image, target: tuple[int, int]) -> Image.Image:
    """Scale to cover ``target``, center-crop to it exactly: one resample over the cropped box."""
    width, height = img.size
    target_width, target_height = target
    scale = max(target_width / width, target_height / height)
    box_width, box_height = target_width / scale, target_height / scale
    left, top = (width - box_width) / 2, (height - box_height) / 2
    return img.resize(
        target,
        Image.Resampling.LANCZOS,
        box=(left, top, left + box_width, top + box_height),
        reducing_gap=3.0,
    )


def _save(img: Image.Image, buffer: io.BytesIO, spec: OutputSpec, icc_profile: bytes | None) -> None:
    compression = spec.compression
    # GIF has no place for a profile; Pillow skips empty ones everywhere else.
    icc = icc_profile or b""
    if spec.format == "jpeg":
        quality = DEFAULT_JPEG_QUALITY if compression is None else compression
        img.save(buffer, "JPEG", quality=quality, icc_profile=icc)
    elif spec.format == "webp":
        quality = DEFAULT_WEBP_QUALITY if compression is None else compression
        img.save(buffer, "WEBP", quality=quality, icc_profile=icc)
    elif spec.format == "avif":
        quality = DEFAULT_AVIF_QUALITY if compression is None else compression
        img.save(buffer, "AVIF", quality=quality, icc_profile=icc)
    elif spec.format == "png":
        level = DEFAULT_PNG_COMPRESS_LEVEL if compression is None else round((100 - compression) * 9 / 100)
        img.save(buffer, "PNG", compress_level=level, icc_profile=icc_profile)
    else:
        img.save(buffer, "GIF")


class ImageWorkers:
    """Runs :func:`convert` in a thread pool sized to the CPU count, off the event loop.

    Threads suffice: Pillow releases the GIL while it decodes, resamples and encodes, so
    conversions run in parallel without pickling megabytes to and from worker processes
    (``bench/bench_convert.py --pools`` measures both).
    """

    def __init__(self, max_workers: int | None = None) -> None:
        self._executor = ThreadPoolExecutor(
            max_workers=max_workers or os.cpu_count() or 1, thread_name_prefix="pixelgate-image"
        )

    async def convert(
        self,
        data: bytes,
        spec: OutputSpec,
        max_pixels: int,
        *,
        error_class: type[GatewayError] = UpstreamError,
    ) -> EncodedImage:
        """:func:`convert` in the pool; same result and errors.

        An image that passes unchanged (:func:`passthrough`) is answered on the event loop: the
        hop to a thread and back costs more than its header read.
        """
        unchanged = passthrough(data, spec, max_pixels=max_pixels, error_class=error_class)
        if unchanged is not None:
            return unchanged
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, lambda: convert(data, spec, max_pixels=max_pixels, error_class=error_class)
        )

    def close(self) -> None:
        """Wait for running conversions, then stop the threads (call once, at shutdown)."""
        self._executor.shutdown(wait=True, cancel_futures=True)
