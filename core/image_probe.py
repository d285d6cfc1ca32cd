"""An image's format, size and orientation from its header alone, without Pillow and without the rest of the file.

A result that needs no conversion is handed to the client as the upstream sent it (see
:mod:`core.image_payload`); deciding that, and enforcing the pixel cap, needs only what the first
bytes say. :func:`read_header` parses them for PNG (IHDR, and the chunks before IDAT for an eXIf),
JPEG (the markers up to the scan: SOFn, and an Exif APP1's orientation), GIF (the logical screen)
and WebP (VP8, VP8L, VP8X); it works on a prefix of the file, so base64 text need only be decoded
for its first kilobytes. AVIF is left to Pillow (:func:`probe_header` falls back to
:func:`core.images.open_header`, which reads the header only).

``upright`` is conservative: False whenever the header carries EXIF whose orientation is not 1
(or cannot be read), or a WebP says it has EXIF at all. Such an image goes the slow way, where
Pillow looks again.
"""

from __future__ import annotations

import struct
import zlib

from pydantic import BaseModel, ConfigDict

from core.images import ImageMediaType, ImageProblem, open_header, sniff_format

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Valid bit depths per PNG colour type (PNG spec, 11.2.2).
_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
# SOFn markers: C0-CF except DHT (C4), JPG (C8) and DAC (CC).
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
_ORIENTATION_TAG = 0x0112
_WEBP_EXIF_FLAG = 0x08


class ImageHeader(BaseModel):
    """What an image's header says: its type, size, and whether it needs no EXIF rotation."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    media_type: ImageMediaType
    width: int
    height: int
    upright: bool

    @property
    def pixels(self) -> int:
        return self.width * self.height


class _Short(Exception):
    """The bytes end before the header does."""


def read_header(data: bytes, *, complete: bool = True) -> ImageHeader | None:
    """The header of ``data``, an image (``complete``) or the first bytes of one (``complete=False``).

    Returns None when the format is one this module leaves to Pillow (AVIF), or when ``data`` is a
    prefix that ends before the header does (read more, or the whole, and ask again). Raises
    :class:`ImageProblem` (``invalid_image``) for an unknown type, a corrupt header, or a complete
    image that ends inside its header. Does not check the pixel cap (see :func:`check_pixels`).
    """
    fmt = sniff_format(data)
    if fmt is None:
        if not complete and len(data) < 12:
            return None
        raise ImageProblem("the image is of an unsupported or unknown type", "invalid_image")
    reader = _READERS.get(fmt.media_type)
    if reader is None:
        return None
    try:
        width, height, upright = reader(data)
    except _Short:
        if complete:
            raise ImageProblem("the image is truncated inside its header", "invalid_image") from None
        return None
    except (struct.error, IndexError, ValueError) as exc:
        raise ImageProblem("the image could not be read", "invalid_image") from exc
    if width <= 0 or height <= 0:
        raise ImageProblem("the image is empty", "invalid_image")
    return ImageHeader(media_type=fmt.media_type, width=width, height=height, upright=upright)


def check_pixels(header: ImageHeader, max_pixels: int) -> ImageHeader:
    """``header`` when its image has at most ``max_pixels`` pixels; ``image_too_large`` otherwise."""
    if header.pixels > max_pixels:
        raise ImageProblem(
            f"the image is {header.width}x{header.height}, over the {max_pixels}-pixel limit", "image_too_large"
        )
    return header


def probe_header(data: bytes, *, max_pixels: int) -> ImageHeader:
    """The header of the whole image ``data``, within ``max_pixels``; Pillow's header read for AVIF.

    Raises :class:`ImageProblem` (``invalid_image`` or ``image_too_large``). Decodes no pixel.
    """
    header = read_header(data)
    if header is None:
        img, fmt = open_header(data, max_pixels=max_pixels)
        with img:
            orientation = img.getexif().get(_ORIENTATION_TAG, 1)
            header = ImageHeader(
                media_type=fmt.media_type, width=img.width, height=img.height, upright=orientation in (0, 1)
            )
    return check_pixels(header, max_pixels)


def _need(data: bytes, end: int) -> None:
    if len(data) < end:
        raise _Short


def _png(data: bytes) -> tuple[int, int, bool]:
    _need(data, 33)
    length, kind = struct.unpack(">I4s", data[8:16])
    if length != 13 or kind != b"IHDR":
        raise ValueError("no IHDR first")
    if zlib.crc32(data[12:29]) != struct.unpack(">I", data[29:33])[0]:
        raise ValueError("IHDR CRC mismatch")
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", data[16:29])
    if (
        width >= 2**31
        or height >= 2**31
        or depth not in _PNG_DEPTHS.get(colour, ())
        or (compression, filtering) != (0, 0)
        or interlace not in (0, 1)
    ):
        raise ValueError("invalid IHDR")
    # The chunks before the pixel data, for an eXIf (one after it is seen by no header read, Pillow's
    # included; a decoder ignores it too).
    position = 33
    while True:
        _need(data, position + 8)
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        if kind == b"IDAT":
            return width, height, True
        if kind == b"IEND":
            raise ValueError("no pixel data")
        if kind == b"eXIf":
            return width, height, False
        position += 12 + length


def _jpeg(data: bytes) -> tuple[int, int, bool]:
    size: tuple[int, int] | None = None
    upright = True
    position = 2
    while True:
        _need(data, position + 2)
        if data[position] != 0xFF:
            raise ValueError("not a marker")
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in _JPEG_STANDALONE:
            position += 2
            continue
        if marker in (0xD8, 0xD9):
            raise ValueError("image ends before its scan")
        if marker == 0xDA:  # start of scan: every header segment is behind us
            if size is None:
                raise ValueError("no frame header")
            return size[0], size[1], upright
        _need(data, position + 4)
        length = struct.unpack(">H", data[position + 2 : position + 4])[0]
        if length < 2:
            raise ValueError("segment length")
        end = position + 2 + length
        _need(data, end)
        segment = data[position + 4 : end]
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", segment[1:5])
            size = (width, height)
        elif marker == 0xE1 and segment.startswith(b"Exif\x00\x00"):
            upright = upright and _exif_orientation(segment[6:]) in (0, 1)
        position = end


def _exif_orientation(tiff: bytes) -> int | None:
    """Orientation (tag 0x0112) of IFD0 of a TIFF block; None when unreadable (then: not upright)."""
    try:
        order = {b"II": "<", b"MM": ">"}[tiff[:2]]
        ifd = struct.unpack(order + "I", tiff[4:8])[0]
        count = struct.unpack(order + "H", tiff[ifd : ifd + 2])[0]
        for index in range(count):
            entry = ifd + 2 + 12 * index
            tag, kind = struct.unpack(order + "HH", tiff[entry : entry + 4])
            if tag == _ORIENTATION_TAG:
                return int(struct.unpack(order + "H", tiff[entry + 8 : entry + 10])[0]) if kind == 3 else None
    except (KeyError, struct.error):
        return None
    return 1


def _gif(data: bytes) -> tuple[int, int, bool]:
    _need(data, 10)
    width, height = struct.unpack("<HH", data[6:10])
    return width, height, True


def _webp(data: bytes) -> tuple[int, int, bool]:
    _need(data, 30)
    chunk = data[12:16]
    if chunk == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            raise ValueError("VP8 start code")
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF, True
    if chunk == b"VP8L":
        if data[20] != 0x2F:
            raise ValueError("VP8L signature")
        bits = struct.unpack("<I", data[21:25])[0]
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, True
    if chunk == b"VP8X":
        flags = data[20]
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height, not flags & _WEBP_EXIF_FLAG
    raise ValueError("unknown WebP chunk")


_READERS = {
    "image/png": _png,
    "image/jpeg": _jpeg,
    "image/gif": _gif,
    "image/webp": _webp,
}
