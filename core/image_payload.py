"""Image bytes held in the form they arrived in: raw bytes or base64 text, each made from the other once, on demand.

An upstream that answers base64 (OpenAI's ``b64_json``, Gemini's ``inlineData``, a fal ``data:``
URI) and a client that asked for ``b64_json`` meet without a decode or an encode in between when the
image needs no conversion: the text is checked cheaply (:func:`base64_ends`: its length, its first
and last bytes decoded) and handed on as it came. The bytes are decoded only when something needs
them (a conversion, the image store, an async job's storage); an upstream's raw bytes are
base64-encoded once, for a ``b64_json`` answer.
"""

from __future__ import annotations

import binascii
from functools import cached_property

import pybase64
from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.errors import UpstreamError
from core.image_probe import ImageHeader

Base64Text = bytes | memoryview
"""Base64 ASCII text: its own ``bytes``, or a read-only view into the upstream answer it was cut from
(no copy of a 2-3 MB string per image; the view keeps that answer alive as long as the image)."""

# Decoded 4 characters at a time, so the ends are cut at multiples of 4 characters (3 bytes).
_QUANTUM_CHARS = 4
_QUANTUM_BYTES = 3


class ImagePayload(BaseModel):
    """One image, as ``data`` (raw bytes) or ``b64`` (base64 ASCII text): exactly one is given.

    :attr:`data` and :attr:`base64_text` give either form, converting at most once (cached;
    the instance stays frozen). ``header`` is what the image's header said when it was checked, if
    it was. Base64 text is checked only at its ends when it arrives (see :func:`base64_ends`): text
    with invalid characters in the middle is found when it is decoded, as a 502
    ``upstream_bad_response``, and is otherwise handed on as the upstream sent it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    # Given as ``data=`` (the alias): ``data`` itself is the property that gives the bytes in either form.
    raw: bytes | None = Field(default=None, alias="data", repr=False)
    b64: Base64Text | None = Field(default=None, repr=False)
    header: ImageHeader | None = None

    @model_validator(mode="after")
    def _one_form(self) -> ImagePayload:
        if (self.raw is None) == (self.b64 is None):
            raise ValueError("an image payload holds either its bytes (data) or its base64 text (b64)")
        return self

    @cached_property
    def data(self) -> bytes:
        """The image's bytes; decoded from ``b64`` on first use (``UpstreamError`` when it is invalid)."""
        if self.raw is not None:
            return self.raw
        assert self.b64 is not None
        try:
            # pybase64's validating decode is SIMD: ~0.1 ms for a 1024x1024 PNG where binascii takes ~2.5 ms.
            return pybase64.b64decode(self.b64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise UpstreamError("the upstream returned invalid base64", code="upstream_bad_response") from exc

    @cached_property
    def base64_text(self) -> Base64Text:
        """The image as base64 ASCII text; encoded from ``data`` on first use."""
        if self.b64 is not None:
            return self.b64
        assert self.raw is not None
        # SIMD base64: ~0.04 ms for a 1024x1024 PNG where the stdlib takes ~1 ms.
        return pybase64.b64encode(self.raw)

    @property
    def size(self) -> int:
        """The image's size in bytes, without decoding."""
        if self.raw is not None:
            return len(self.raw)
        assert self.b64 is not None
        return base64_size(self.b64)


def base64_size(text: Base64Text) -> int:
    """How many bytes padded base64 ``text`` decodes to (its padding counted out)."""
    return len(text) // _QUANTUM_CHARS * _QUANTUM_BYTES - bytes(text[-2:]).count(b"=")


def base64_ends(text: Base64Text, head_bytes: int, tail_bytes: int) -> tuple[bytes, bytes]:
    """The first ``head_bytes`` and last ``tail_bytes`` (about; whole 3-byte groups) of what ``text`` decodes to.

    Decodes only those ends. Raises ``ValueError`` when ``text`` is not padded base64 (its length not
    a multiple of 4) or either end holds a character outside the alphabet.
    """
    if not text or len(text) % _QUANTUM_CHARS:
        raise ValueError("base64 text must be padded to a multiple of 4 characters")
    head_chars = -(-head_bytes // _QUANTUM_BYTES) * _QUANTUM_CHARS
    # One quantum more: the last one may hold up to 2 bytes fewer (its padding).
    tail_chars = -(-(tail_bytes + 2) // _QUANTUM_BYTES) * _QUANTUM_CHARS
    if head_chars + tail_chars >= len(text):
        whole = pybase64.b64decode(text, validate=True)
        return whole[:head_bytes], whole[-tail_bytes:]
    head = pybase64.b64decode(text[:head_chars], validate=True)
    tail = pybase64.b64decode(text[-tail_chars:], validate=True)
    return head, tail
