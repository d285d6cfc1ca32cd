"""Reading request bodies as they stream in: multipart edits exactly as the OpenAI SDKs send them.

Limits are enforced while bytes arrive (never after buffering a whole body): a file part over the
per-file cap, a body over the per-request cap, or a 17th image stops the parse, and the error is
answered at once. What the client still sends is read and discarded by the HTTP protocol after the
answer (bounded in bytes and time, :mod:`app.http_protocol`), so a client that sends its whole body
before reading reads a clean 413/400 instead of a broken pipe.

Part names: ``image``, ``image[]`` and ``image[N]`` form one ordered list (in part order);
``mask`` (or ``mask[]``) is the mask; ``foo[]`` collects a list and ``foo[bar]`` an object; every
other part is a scalar string. Part filenames and Content-Types are ignored: the bytes decide.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from pydantic import JsonValue
from python_multipart.multipart import MultipartParser, parse_options_header

from core.errors import InvalidRequestError, PayloadTooLargeError
from core.held_bytes import ByteChunks

_IMAGE_PART = re.compile(r"^image(\[\d*\])?$")
_MASK_PART = re.compile(r"^mask(\[\d*\])?$")
_BRACKETED = re.compile(r"^([A-Za-z0-9_.\-]+)\[([A-Za-z0-9_.\-]*)\]$")

MAX_FIELD_BYTES = 256 * 1024
"""Cap for one non-file part: a 32,000-character prompt is at most 128 KiB of UTF-8."""
MAX_PARTS = 200
MAX_BOUNDARY_LENGTH = 70
"""RFC 2046 section 5.1.1: a boundary is 1 to 70 characters."""


@dataclass(frozen=True)
class FormLimits:
    max_file_bytes: int
    max_request_bytes: int
    max_images: int


@dataclass
class ParsedForm:
    """A parsed multipart body: scalars (lists/objects for bracketed names), images in order, mask."""

    fields: dict[str, JsonValue] = field(default_factory=dict)
    images: list[tuple[str, ByteChunks]] = field(default_factory=list)
    mask: tuple[str, ByteChunks] | None = None
    """File parts are kept as the pieces they arrived in (views into the body's chunks, never joined)."""

    def drop_files(self) -> None:
        """Forget the image and mask parts once the request's inputs hold them: the form lives as
        long as the request, and an input's bytes may leave memory while its job waits."""
        self.images = []
        self.mask = None


class _Collector:
    """Callbacks for python-multipart's push parser; raises GatewayError the moment a limit is crossed."""

    def __init__(self, limits: FormLimits) -> None:
        self.limits = limits
        self.form = ParsedForm()
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._name = ""
        self._is_file = False
        self._pieces: list[memoryview] = []
        self._size = 0
        self._parts = 0

    def on_part_begin(self) -> None:
        self._headers = {}
        self._pieces = []
        self._size = 0
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise InvalidRequestError(f"too many form parts (at most {MAX_PARTS})")

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[bytes(self._header_field).lower()] = bytes(self._header_value)
        self._header_field = bytearray()
        self._header_value = bytearray()

    def on_headers_finished(self) -> None:
        disposition = self._headers.get(b"content-disposition", b"")
        _, options = parse_options_header(disposition)
        raw_name = options.get(b"name")
        if raw_name is None:
            raise InvalidRequestError("a multipart part has no name")
        self._name = raw_name.decode("utf-8", errors="replace")
        self._is_file = (
            b"filename" in options
            or _IMAGE_PART.match(self._name) is not None
            or _MASK_PART.match(self._name) is not None
        )
        if _IMAGE_PART.match(self._name) and len(self.form.images) >= self.limits.max_images:
            raise InvalidRequestError(
                f"too many images: at most {self.limits.max_images} are accepted",
                param="image",
                code="too_many_images",
            )

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        # A view of the received chunk, no copy: a file part stays in these pieces (core.held_bytes),
        # a field is joined at its end. Only immutable chunks may be kept by reference.
        piece = memoryview(data)[start:end] if isinstance(data, bytes) else memoryview(bytes(data[start:end]))
        self._pieces.append(piece)
        self._size += end - start
        cap = self.limits.max_file_bytes if self._is_file else MAX_FIELD_BYTES
        if self._size > cap:
            if self._is_file:
                raise PayloadTooLargeError(
                    f"'{self._name}' is larger than the {cap}-byte limit per file",
                    param=_client_param(self._name),
                )
            raise InvalidRequestError(f"form field '{self._name}' is too long", param=self._name)

    def on_part_end(self) -> None:
        pieces: ByteChunks = tuple(self._pieces)
        self._pieces = []
        if _IMAGE_PART.match(self._name):
            self.form.images.append((self._name, pieces))
        elif _MASK_PART.match(self._name):
            if self.form.mask is not None:
                raise InvalidRequestError("only one mask is accepted", param="mask")
            self.form.mask = (self._name, pieces)
        elif self._is_file:
            raise InvalidRequestError(f"unexpected file part '{self._name}'", param=self._name)
        else:
            _store_scalar(self.form.fields, self._name, b"".join(pieces))


def _client_param(part_name: str) -> str:
    return "mask" if _MASK_PART.match(part_name) else "image"


def _store_scalar(fields: dict[str, JsonValue], name: str, data: bytes) -> None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequestError(f"form field '{name}' is not UTF-8 text", param=name) from exc
    bracketed = _BRACKETED.match(name)
    if bracketed is None:
        fields[name] = text
        return
    key, sub = bracketed.groups()
    if sub == "" or sub.isdigit():
        existing = fields.setdefault(key, [])
        if not isinstance(existing, list):
            raise InvalidRequestError(f"form field '{key}' is sent both as a value and a list", param=key)
        existing.append(text)
    else:
        existing_obj = fields.setdefault(key, {})
        if not isinstance(existing_obj, dict):
            raise InvalidRequestError(f"form field '{key}' is sent both as a value and an object", param=key)
        existing_obj[sub] = text


async def read_multipart(content_type: str, chunks: AsyncIterator[bytes], limits: FormLimits) -> ParsedForm:
    """Parse a streaming ``multipart/form-data`` body within ``limits``.

    Raises :class:`PayloadTooLargeError` (413) or :class:`InvalidRequestError` (400) as soon as the
    body breaks a rule.
    """
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise InvalidRequestError("multipart body without a boundary", code="invalid_multipart")
    if len(boundary) > MAX_BOUNDARY_LENGTH:
        raise InvalidRequestError(
            f"the multipart boundary is longer than {MAX_BOUNDARY_LENGTH} characters (RFC 2046)",
            code="invalid_multipart",
        )
    collector = _Collector(limits)
    parser = MultipartParser(
        boundary,
        callbacks={
            "on_part_begin": collector.on_part_begin,
            "on_header_field": collector.on_header_field,
            "on_header_value": collector.on_header_value,
            "on_header_end": collector.on_header_end,
            "on_headers_finished": collector.on_headers_finished,
            "on_part_data": collector.on_part_data,
            "on_part_end": collector.on_part_end,
        },
    )
    total = 0
    try:
        async for chunk in chunks:
            total += len(chunk)
            if total > limits.max_request_bytes:
                raise PayloadTooLargeError(f"request body is larger than {limits.max_request_bytes} bytes")
            parser.write(chunk)
        parser.finalize()
    except ValueError as exc:  # python-multipart's MultipartParseError is a ValueError; ours are not
        raise InvalidRequestError(f"malformed multipart body: {exc}", code="invalid_multipart") from exc
    return collector.form


async def read_limited(chunks: AsyncIterator[bytes], max_bytes: int) -> bytes:
    """The whole body (a JSON request), refusing with 413 once it grows past ``max_bytes``."""
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > max_bytes:
            raise PayloadTooLargeError(f"request body is larger than {max_bytes} bytes")
    return bytes(body)
