"""Image formats and image bytes: the one table of formats, media type from magic bytes, header checks.

Part names, filenames and Content-Type headers from clients and upstreams are never trusted; this
module is the one place that decides what an image is. :data:`IMAGE_FORMATS` is the one list of the
formats pixelgate reads and writes: every other list (output formats, media types, file extensions,
Pillow names, which formats a client may upload) is derived from it.
"""

from __future__ import annotations

import hashlib
import io
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from PIL import (
    AvifImagePlugin,
    GifImagePlugin,
    Image,
    ImageFile,
    JpegImagePlugin,
    PngImagePlugin,
    WebPImagePlugin,
)
from pydantic import BaseModel, ConfigDict, PrivateAttr

from core.errors import InvalidRequestError
from core.held_bytes import ByteChunks, HeldBytes

FormatName = Literal["png", "jpeg", "gif", "webp", "avif"]
"""An ``output_format`` value; also the file extension of a hosted image. Same order as the table."""
ImageMediaType = Literal["image/png", "image/jpeg", "image/gif", "image/webp", "image/avif"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageFormat:
    """One image format: its names everywhere, and how to recognize its bytes."""

    name: FormatName
    media_type: ImageMediaType
    pillow: str
    """Pillow's name for it: the key of its decoder plugin and the ``format`` argument of ``save``."""
    label: str
    """How messages name it."""
    client_input: bool
    """Accepted as a client's input image (PNG, JPEG and WebP, as OpenAI's edit endpoint)."""
    magic: Callable[[bytes], bool]

    @property
    def extension(self) -> str:
        return self.name


def _is_webp(data: bytes) -> bool:
    return len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP"


def _is_avif(data: bytes) -> bool:
    return len(data) >= 12 and data[4:8] == b"ftyp" and data[8:12] in (b"avif", b"avis")


IMAGE_FORMATS: tuple[ImageFormat, ...] = (
    ImageFormat(
        name="png",
        media_type="image/png",
        pillow="PNG",
        label="PNG",
        client_input=True,
        magic=lambda data: data.startswith(b"\x89PNG\r\n\x1a\n"),
    ),
    ImageFormat(
        name="jpeg",
        media_type="image/jpeg",
        pillow="JPEG",
        label="JPEG",
        client_input=True,
        magic=lambda data: data.startswith(b"\xff\xd8\xff"),
    ),
    ImageFormat(
        name="gif",
        media_type="image/gif",
        pillow="GIF",
        label="GIF",
        client_input=False,
        magic=lambda data: data[:6] in (b"GIF87a", b"GIF89a"),
    ),
    ImageFormat(name="webp", media_type="image/webp", pillow="WEBP", label="WebP", client_input=True, magic=_is_webp),
    ImageFormat(name="avif", media_type="image/avif", pillow="AVIF", label="AVIF", client_input=False, magic=_is_avif),
)
"""Every format pixelgate reads or writes, in the order the model table lists ``output_format``."""
FORMAT_NAMES: tuple[FormatName, ...] = tuple(fmt.name for fmt in IMAGE_FORMATS)
_BY_NAME: dict[str, ImageFormat] = {fmt.name: fmt for fmt in IMAGE_FORMATS}
_BY_MEDIA_TYPE: dict[str, ImageFormat] = {fmt.media_type: fmt for fmt in IMAGE_FORMATS}
INPUT_MEDIA_TYPES: tuple[ImageMediaType, ...] = tuple(fmt.media_type for fmt in IMAGE_FORMATS if fmt.client_input)


def format_named(name: FormatName) -> ImageFormat:
    """The format whose ``output_format`` name (and file extension) is ``name``."""
    return _BY_NAME[name]


def format_of(media_type: ImageMediaType) -> ImageFormat:
    return _BY_MEDIA_TYPE[media_type]


def format_for_extension(extension: str) -> ImageFormat | None:
    """The format stored under file extension ``extension``, or None for one we never write."""
    return _BY_NAME.get(extension)


class InputImage(BaseModel):
    """An input image whose type was sniffed from its bytes (never from a filename).

    The bytes live in one :class:`~core.held_bytes.HeldBytes` (:attr:`held`), shared by every copy
    of the image (``model_copy`` of a call keeps it): the request may move them out of memory while
    its upstream job waits (:mod:`normalization.input_spill`); :attr:`data` reads them back.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    media_type: ImageMediaType
    width: int
    height: int
    _held: HeldBytes = PrivateAttr()

    def __init__(self, *, data: bytes | ByteChunks, media_type: ImageMediaType, width: int, height: int) -> None:
        super().__init__(media_type=media_type, width=width, height=height)
        self._held = HeldBytes(data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, InputImage):
            return NotImplemented
        same = (self.media_type, self.width, self.height) == (other.media_type, other.width, other.height)
        return same and (self._held is other._held or self.data == other.data)

    def __hash__(self) -> int:
        return hash((self.media_type, self.width, self.height, self._held.size))

    @property
    def data(self) -> bytes:
        """The image's bytes as one buffer (joined from its pieces once; read back from disk should
        they have been spilled)."""
        return self._held.data

    @property
    def chunks(self) -> ByteChunks:
        """The image's bytes as the pieces they arrived in (see :class:`~core.held_bytes.HeldBytes`)."""
        return self._held.chunks

    @property
    def held(self) -> HeldBytes:
        return self._held

    @property
    def digest(self) -> str:
        """Short content digest, shown instead of bytes in dry runs and logs."""
        return "sha256:" + hashlib.sha256(self.data).hexdigest()[:16]

    @property
    def extension(self) -> str:
        return format_of(self.media_type).extension


def sniff_format(data: bytes) -> ImageFormat | None:
    """The format named by ``data``'s magic bytes, or None when it is none we know."""
    return next((fmt for fmt in IMAGE_FORMATS if fmt.magic(data)), None)


def sniff_media_type(data: bytes) -> ImageMediaType | None:
    """The media type named by ``data``'s magic bytes, or None when it is none we know."""
    fmt = sniff_format(data)
    return None if fmt is None else fmt.media_type


HEADER_PREFIX_BYTES = 48 * 1024
"""How much of an image :func:`read_header` is usually given when the whole is not at hand. PNG and
WebP headers fit in 30 bytes; a JPEG's SOF follows its APPn segments (EXIF, an ICC profile), which
rarely reach this far. When they do, the caller decodes the whole image and reads it again."""

_PNG_END = b"IEND\xaeB`\x82"
COMPLETION_TAIL_BYTES = 1024
"""How much of an image's end :func:`ends_look_complete` looks at."""


def looks_complete(data: bytes, media_type: ImageMediaType) -> bool:
    """Whether ``data`` reaches its format's end marker: a cheap truncation check without a decode.

    PNG: the IEND chunk; JPEG: the EOI marker; WebP: as many bytes as the RIFF header announces;
    GIF: the trailer byte. Tolerates a little padding after the marker. AVIF is not checked.
    Catches a download cut short (the common failure), not corruption inside the data.
    """
    return ends_look_complete(data[:12], data[-COMPLETION_TAIL_BYTES:], len(data), media_type)


def ends_look_complete(head: bytes, tail: bytes, size: int, media_type: ImageMediaType) -> bool:
    """:func:`looks_complete` from an image's ends only: its first 12 bytes (or more), its last
    :data:`COMPLETION_TAIL_BYTES` (or fewer, for a smaller image) and its size in bytes."""
    if media_type == "image/png":
        return _PNG_END in tail
    if media_type == "image/jpeg":
        return tail.rstrip(b"\x00\r\n ").endswith(b"\xff\xd9")
    if media_type == "image/webp":
        return len(head) >= 12 and int.from_bytes(head[4:8], "little") + 8 <= size
    if media_type == "image/gif":
        return tail.rstrip(b"\x00").endswith(b";")
    return True


def probe_input(data: bytes | ByteChunks, *, param: str, max_pixels: int) -> InputImage:
    """Validate a client's input image: a ``client_input`` format by its bytes, within the pixel cap.

    Reads only the header (no decode). Raises :class:`InvalidRequestError` naming ``param`` for an
    empty part, another type, a corrupt header or a decompression bomb. Pieces (a multipart part as
    it arrived) are kept as they are: the header is read from their first
    :data:`HEADER_PREFIX_BYTES`, and only an image whose header that prefix does
    not settle is joined and read whole, so every answer is the one the whole image gives.
    """
    if isinstance(data, bytes):
        return _probed(data, data, param=param, max_pixels=max_pixels)
    prefix = _prefix(data, HEADER_PREFIX_BYTES)
    try:
        return _probed(prefix, data, param=param, max_pixels=max_pixels)
    except InvalidRequestError:
        if len(prefix) < HEADER_PREFIX_BYTES:  # the prefix was the whole image: that answer stands
            raise
    # Decided on the whole image, as a bytes part would be; the pieces are still what is kept.
    return _probed(b"".join(data), data, param=param, max_pixels=max_pixels)


def _prefix(chunks: ByteChunks, size: int) -> bytes:
    """The first ``size`` bytes of ``chunks`` (fewer when they hold fewer), one small copy."""
    taken: list[bytes | memoryview] = []
    left = size
    for chunk in chunks:
        if left <= 0:
            break
        taken.append(chunk[:left])
        left -= len(taken[-1])
    return b"".join(taken)


def _probed(header_bytes: bytes, data: bytes | ByteChunks, *, param: str, max_pixels: int) -> InputImage:
    """``data`` as an input image, its format and size read from ``header_bytes`` (the whole or a prefix)."""
    if not header_bytes:
        raise InvalidRequestError(f"'{param}' is empty", param=param, code="invalid_image")
    fmt = sniff_format(header_bytes)
    if fmt is None or not fmt.client_input:
        names = [f.label for f in IMAGE_FORMATS if f.client_input]
        raise InvalidRequestError(
            f"Invalid file '{param}': unsupported image type. Supported formats are "
            f"{', '.join(names[:-1])} and {names[-1]}.",
            param=param,
            code="unsupported_file_mimetype",
        )
    width, height = image_dimensions(header_bytes, param=param, max_pixels=max_pixels)
    return InputImage(data=data, media_type=fmt.media_type, width=width, height=height)


def image_dimensions(data: bytes, *, param: str, max_pixels: int) -> tuple[int, int]:
    """(width, height) from the header; 400 naming ``param`` when unreadable or over ``max_pixels``."""
    try:
        img, _ = open_header(data, max_pixels=max_pixels)
    except ImageProblem as exc:
        raise InvalidRequestError(f"Invalid file '{param}': {exc.reason}", param=param, code=exc.code) from exc
    with img:
        return img.size


class ImageProblem(ValueError):
    """Why image bytes cannot be used. Callers map it to their error: a client's image is a 400, an
    upstream's result a 502."""

    def __init__(self, reason: str, code: Literal["invalid_image", "image_too_large"]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


# Exceptions Pillow raises for bytes it cannot parse or decode (it has no common base for them).
PILLOW_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)

# The plugin modules register their decoders on import; naming them keeps that import explicit.
_PLUGIN_MODULES = (AvifImagePlugin, GifImagePlugin, JpegImagePlugin, PngImagePlugin, WebPImagePlugin)


def open_header(data: bytes, *, max_pixels: int) -> tuple[ImageFile.ImageFile, ImageFormat]:
    """The image opened lazily (header read, no pixel decoded) and its sniffed format.

    Checks the header's pixel count against ``max_pixels`` before anything is decoded. Never relies
    on Pillow's process-global ``Image.MAX_IMAGE_PIXELS`` (nor its thread-unsafe warnings filters):
    the format's plugin is opened directly and the cap is the caller's. The caller closes the image.
    Raises :class:`ImageProblem` (``invalid_image`` or ``image_too_large``).
    """
    fmt = sniff_format(data)
    if fmt is None:
        raise ImageProblem("the image is of an unsupported or unknown type", "invalid_image")
    factory = Image.OPEN[fmt.pillow][0]
    try:
        img = factory(io.BytesIO(data), "")
    except PILLOW_ERRORS as exc:
        raise ImageProblem("the image could not be read", "invalid_image") from exc
    width, height = img.size
    if width <= 0 or height <= 0:
        img.close()
        raise ImageProblem("the image is empty", "invalid_image")
    if width * height > max_pixels:
        img.close()
        raise ImageProblem(f"the image is {width}x{height}, over the {max_pixels}-pixel limit", "image_too_large")
    return img, fmt


def decode(img: ImageFile.ImageFile) -> None:
    """Decode the pixels of an image from :func:`open_header`; corrupt or truncated data raises
    :class:`ImageProblem` (``invalid_image``). Call it in :class:`core.image_workers.ImageWorkers`."""
    try:
        img.load()
    except PILLOW_ERRORS as exc:
        raise ImageProblem("the image could not be decoded", "invalid_image") from exc
