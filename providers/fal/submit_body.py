"""A fal submit body encoded once: the payload's JSON with the inline images' base64 spliced in as bytes.

An edit's input travels as a ``data:`` URI of about 1.4 MB per 1 MiB image. Put in the payload as
a ``str`` and handed to ``json.dumps``, it was copied four times more after ``b64encode`` (bytes to
``str``, the f-string, the JSON encoder checking every character for escapes, UTF-8 back to bytes):
about 4 ms of event-loop CPU per 1 MiB edit. Here the payload is encoded with a short placeholder
where each image's base64 goes, and the body is the JSON around the placeholders with the base64
bytes (which never need a JSON escape) between them, as a :class:`ChunkedBody`: sent chunk by chunk,
never joined. The bytes on the wire are exactly those ``httpx``'s ``json=`` would send. An image
that arrived in pieces (a multipart part) is encoded piece by piece (:func:`base64_chunks`), so it is
never joined into one buffer either.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field

import pybase64
from pydantic import JsonValue

from core.held_bytes import ByteChunks
from core.images import InputImage
from providers.toolkit.chunked_body import ChunkedBody

_INDEX_DIGITS = 4


def encode_json(value: JsonValue) -> bytes:
    """``value`` as httpx's ``json=`` encodes a request body (compact, UTF-8, no NaN)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


@dataclass
class SubmitBody:
    """A payload whose inline images are placeholders until :meth:`encode`.

    :meth:`inline` gives the string to put in the payload for an image (``data:<type>;base64,``
    then a placeholder); :meth:`encode` the JSON body with each placeholder replaced by the image's
    base64.
    """

    # Random per body: a client's prompt cannot hold it (and if it did, encode falls back).
    _nonce: str = field(default_factory=lambda: "pixelgate-inline-" + secrets.token_hex(16) + "-")
    _images: list[list[bytes]] = field(default_factory=list)
    """Each inline image's base64, as consecutive pieces."""

    def inline(self, image: InputImage) -> str:
        """The ``data:`` URI of ``image`` as it stands in the payload passed to :meth:`encode`."""
        index = len(self._images)
        self._images.append(base64_chunks(image.chunks))
        return f"data:{image.media_type};base64,{self._nonce}{index:0{_INDEX_DIGITS}d}"

    def encode(self, payload: dict[str, JsonValue]) -> ChunkedBody:
        """The JSON body of ``payload`` with every placeholder of :meth:`inline` replaced by its base64."""
        skeleton = encode_json(payload)
        if not self._images:
            return ChunkedBody([skeleton])
        nonce = self._nonce.encode("ascii")
        parts = skeleton.split(nonce)
        indices = [part[:_INDEX_DIGITS] for part in parts[1:]]
        expected = [f"{i:0{_INDEX_DIGITS}d}".encode("ascii") for i in range(len(self._images))]
        if sorted(indices) != expected:  # each placeholder exactly once, else no splicing
            return ChunkedBody([encode_json(_replaced(payload, self._nonce, self._images))])
        pieces = [parts[0]]
        for part in parts[1:]:
            pieces += self._images[int(part[:_INDEX_DIGITS])]
            pieces.append(part[_INDEX_DIGITS:])
        return ChunkedBody([piece for piece in pieces if piece])


def base64_chunks(chunks: ByteChunks) -> list[bytes]:
    """The base64 of the bytes ``chunks`` hold, as pieces whose concatenation is exactly the base64 of
    the joined bytes (one pad at the end): each piece encodes whole 3-byte groups, a group cut by a
    chunk boundary is carried (at most 2 bytes) into the next piece."""
    encoded: list[bytes] = []
    carry = b""
    for chunk in chunks:
        view = memoryview(chunk)
        if carry:
            need = 3 - len(carry)
            carry += bytes(view[:need])
            view = view[need:]
            if len(carry) < 3:
                continue
            encoded.append(pybase64.b64encode(carry))
        whole = len(view) - len(view) % 3
        if whole:
            encoded.append(pybase64.b64encode(view[:whole]))
        carry = bytes(view[whole:])
    if carry:
        encoded.append(pybase64.b64encode(carry))
    return encoded


def _replaced(value: JsonValue, nonce: str, images: list[list[bytes]]) -> JsonValue:
    """``value`` with the placeholders replaced in its strings (the plain, slower encoding)."""
    if isinstance(value, str):
        for index, encoded in enumerate(images):
            value = value.replace(f"{nonce}{index:0{_INDEX_DIGITS}d}", b"".join(encoded).decode("ascii"))
        return value
    if isinstance(value, list):
        return [_replaced(item, nonce, images) for item in value]
    if isinstance(value, dict):
        return {key: _replaced(item, nonce, images) for key, item in value.items()}
    return value
