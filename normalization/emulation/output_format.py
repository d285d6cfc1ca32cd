"""Output format and compression: decode a result once, orient, fit the exact size, re-encode clean.

:func:`convert` is pure and synchronous; :func:`render` runs it for every image of an answer in
the shared :class:`~core.image_workers.ImageWorkers` pool (Pillow releases the GIL while decoding,
resampling and encoding), and answers images that need no change on the event loop.

Decoding never relies on Pillow's global ``Image.MAX_IMAGE_PIXELS``: :func:`core.images.open_header`
opens the format's plugin directly and checks the header's pixel count against the caller's
``max_pixels`` before any pixel is decoded.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Sequence

from PIL import Image, ImageFile, ImageOps, PngImagePlugin
from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from core.errors import GatewayError, UpstreamError
from core.image_payload import ImagePayload
from core.image_probe import check_pixels, probe_header
from core.image_workers import ImageWorkers
from core.images import FormatName, ImageFormat, ImageMediaType, ImageProblem, decode, format_named, open_header
from normalization.emulation.exact_size import cover

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

    format: FormatName
    compression: int | None = Field(default=None, ge=0, le=100)
    target: tuple[PositiveInt, PositiveInt] | None = None


class EncodedImage(ImagePayload):
    """An image ready to return to the client; ``reencoded`` is False when the input passed as-is.

    An image passed through keeps the form it came in (bytes or the upstream's base64 text); a
    converted one is bytes.
    """

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
    img, source = _open_checked(data, max_pixels, error_class)
    try:
        unchanged = _unchanged(data, img, source, spec)
        if unchanged is not None:
            return unchanged
        try:
            decode(img)
        except ImageProblem as exc:
            raise error_class(exc.reason, code=exc.code) from exc
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
    img, source = _open_checked(data, max_pixels, error_class)
    try:
        return _unchanged(data, img, source, spec)
    finally:
        img.close()


def _open_checked(
    data: bytes, max_pixels: int, error_class: type[GatewayError]
) -> tuple[ImageFile.ImageFile, ImageFormat]:
    try:
        return open_header(data, max_pixels=max_pixels)
    except ImageProblem as exc:
        raise error_class(exc.reason, code=exc.code) from exc


def _unchanged(data: bytes, img: ImageFile.ImageFile, source: ImageFormat, spec: OutputSpec) -> EncodedImage | None:
    if (
        source.name == spec.format
        and spec.compression is None
        and (spec.target is None or img.size == spec.target)
        and _is_upright(img)
    ):
        return EncodedImage(
            data=data, media_type=source.media_type, width=img.width, height=img.height, reencoded=False, resized=False
        )
    return None


def _is_upright(img: ImageFile.ImageFile) -> bool:
    # A PNG's eXIf chunk after the pixel data is only seen by a full load; one before it (the
    # usual place) is already in img.info, and that is all a header read may look at.
    if isinstance(img, PngImagePlugin.PngImageFile) and "exif" not in img.info:
        return True
    orientation = img.getexif().get(0x0112, 1)
    return orientation in (0, 1)


def _encode_decoded(decoded: Image.Image, spec: OutputSpec) -> EncodedImage:
    """Orient, normalize the mode, fit and encode; each step closes the copy it replaces."""
    icc_profile = decoded.info.get("icc_profile")
    img: Image.Image = decoded
    ImageOps.exif_transpose(img, in_place=True)
    img = _replace(img, _working_image(img, spec.format))
    resized = False
    if spec.target is not None and img.size != spec.target:
        img = _replace(img, cover(img, spec.target))
        resized = True
    # Encoders copy some of img.info into the output (JPEG and GIF the comment, PNG and AVIF the
    # ICC profile); nothing of the source's is kept but the profile, which every encoder is given.
    img.info = {}
    buffer = io.BytesIO()
    try:
        _save(img, buffer, spec, icc_profile if isinstance(icc_profile, bytes) else None)
        return EncodedImage(
            data=buffer.getvalue(),
            media_type=format_named(spec.format).media_type,
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


def _working_image(img: Image.Image, output: FormatName) -> Image.Image:
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


SaveOptions = Callable[[int | None, bytes | None], dict[str, object]]
"""Pillow ``save`` options for a format, from ``compression`` (None: the default) and the ICC profile."""


def _lossy(default_quality: int) -> SaveOptions:
    # Pillow skips an empty profile; None would be refused by these encoders.
    return lambda compression, icc: {
        "quality": default_quality if compression is None else compression,
        "icc_profile": icc or b"",
    }


def _png(compression: int | None, icc: bytes | None) -> dict[str, object]:
    level = DEFAULT_PNG_COMPRESS_LEVEL if compression is None else round((100 - compression) * 9 / 100)
    return {"compress_level": level, "icc_profile": icc}


SAVE_OPTIONS: dict[FormatName, SaveOptions] = {
    "png": _png,
    "jpeg": _lossy(DEFAULT_JPEG_QUALITY),
    "gif": lambda compression, icc: {},  # no place for a profile; the 256-colour palette is its only knob
    "webp": _lossy(DEFAULT_WEBP_QUALITY),
    "avif": _lossy(DEFAULT_AVIF_QUALITY),
}


def _save(img: Image.Image, buffer: io.BytesIO, spec: OutputSpec, icc_profile: bytes | None) -> None:
    options = SAVE_OPTIONS[spec.format](spec.compression, icc_profile)
    img.save(buffer, format_named(spec.format).pillow, **options)


async def render(
    workers: ImageWorkers,
    images: Sequence[ImagePayload],
    spec: OutputSpec,
    *,
    max_pixels: int,
    error_class: type[GatewayError] = UpstreamError,
) -> list[EncodedImage]:
    """:func:`convert` for each of ``images``, in order, in the ``workers`` pool; same errors.

    An image that passes unchanged (:func:`pass_through`) is answered on the event loop from its
    header, in the form it came in: the hop to a thread and back costs more than that. Base64 text
    is decoded only for a conversion, in the pool.
    """

    async def one(image: ImagePayload) -> EncodedImage:
        unchanged = pass_through(image, spec, max_pixels=max_pixels, error_class=error_class)
        if unchanged is not None:
            return unchanged
        return await workers.run(lambda: convert(image.data, spec, max_pixels=max_pixels, error_class=error_class))

    return list(await asyncio.gather(*(one(image) for image in images)))


def pass_through(
    image: ImagePayload,
    spec: OutputSpec,
    *,
    max_pixels: int,
    error_class: type[GatewayError] = UpstreamError,
) -> EncodedImage | None:
    """``image`` unchanged (bytes or base64 text, as it came) when its header says it already is what
    ``spec`` asks, else None: then :func:`convert` decides (and may still pass it through, e.g. an
    image whose EXIF this header read could not rule out).

    Uses the header the result check read (``image.header``), or reads it (without Pillow, for all
    formats but AVIF). Enforces ``max_pixels`` either way; raises ``error_class`` as :func:`convert`.
    """
    try:
        header = image.header or probe_header(image.data, max_pixels=max_pixels)
        check_pixels(header, max_pixels)
    except ImageProblem as exc:
        raise error_class(exc.reason, code=exc.code) from exc
    if (
        header.media_type != format_named(spec.format).media_type
        or spec.compression is not None
        or (spec.target is not None and (header.width, header.height) != spec.target)
        or not header.upright
    ):
        return None
    return EncodedImage(
        data=image.raw,
        b64=image.b64,
        header=header,
        media_type=header.media_type,
        width=header.width,
        height=header.height,
        reencoded=False,
        resized=False,
    )
