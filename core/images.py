"""Identify image bytes: media type from magic bytes, dimensions from the header only.

Part names, filenames and Content-Type headers from clients and upstreams are never trusted; this
module is the one place that decides what an image is.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from typing import Literal

from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field

from core.errors import InvalidRequestError

ImageMediaType = Literal["image/png", "image/jpeg", "image/webp", "image/gif", "image/avif"]


class InputImage(BaseModel):
    """An input image whose type was sniffed from its bytes (never from a filename)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data: bytes = Field(repr=False)
    media_type: ImageMediaType
    width: int
    height: int

    @property
    def digest(self) -> str:
        """Short content digest, shown instead of bytes in dry runs and logs."""
        return "sha256:" + hashlib.sha256(self.data).hexdigest()[:16]

    @property
    def extension(self) -> str:
        return self.media_type.split("/", 1)[1]


INPUT_MEDIA_TYPES: tuple[ImageMediaType, ...] = ("image/png", "image/jpeg", "image/webp")


def sniff_media_type(data: bytes) -> ImageMediaType | None:
    """The image type named by ``data``'s magic bytes, or None when it is none we know."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if len(data) >= 12 and data[4:8] == b"ftyp" and data[8:12] in (b"avif", b"avis"):
        return "image/avif"
    return None


_PNG_END = b"IEND\xaeB`\x82"
_TAIL = 1024


def looks_complete(data: bytes, media_type: ImageMediaType) -> bool:
    """Whether ``data`` reaches its format's end marker: a cheap truncation check without a decode.

    PNG: the IEND chunk; JPEG: the EOI marker; WebP: as many bytes as the RIFF header announces;
    GIF: the trailer byte. Tolerates a little padding after the marker. AVIF is not checked.
    Catches a download cut short (the common failure), not corruption inside the data.
    """
    tail = data[-_TAIL:]
    if media_type == "image/png":
        return _PNG_END in tail
    if media_type == "image/jpeg":
        return tail.rstrip(b"\x00\r\n ").endswith(b"\xff\xd9")
    if media_type == "image/webp":
        return len(data) >= 12 and int.from_bytes(data[4:8], "little") + 8 <= len(data)
    if media_type == "image/gif":
        return tail.rstrip(b"\x00").endswith(b";")
    return True


def probe_input(data: bytes, *, param: str, max_pixels: int) -> InputImage:
    """Validate a client's input image: PNG, JPEG or WebP by its bytes, within the pixel cap.

    Reads only the header (no decode). Raises :class:`InvalidRequestError` naming ``param`` for an
    empty part, another type, a corrupt header or a decompression bomb.
    """
    if not data:
        raise InvalidRequestError(f"'{param}' is empty", param=param, code="invalid_image")
    media_type = sniff_media_type(data)
    if media_type not in INPUT_MEDIA_TYPES:
        raise InvalidRequestError(
            f"Invalid file '{param}': unsupported image type. Supported formats are PNG, JPEG and WebP.",
            param=param,
            code="unsupported_file_mimetype",
        )
    assert media_type is not None
    width, height = image_dimensions(data, param=param, max_pixels=max_pixels)
    return InputImage(data=data, media_type=media_type, width=width, height=height)


def image_dimensions(data: bytes, *, param: str, max_pixels: int) -> tuple[int, int]:
    """(width, height) from the header; 400 when unreadable or over ``max_pixels``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InvalidRequestError(
            f"Invalid file '{param}': the image could not be read", param=param, code="invalid_image"
        ) from exc
    if width <= 0 or height <= 0:
        raise InvalidRequestError(f"Invalid file '{param}': empty image", param=param, code="invalid_image")
    if width * height > max_pixels:
        raise InvalidRequestError(
            f"Invalid file '{param}': {width}x{height} is over the {max_pixels}-pixel limit",
            param=param,
            code="image_too_large",
        )
    return width, height
