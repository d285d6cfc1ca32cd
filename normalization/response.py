"""The response on the wire: OpenAI's ``ImagesResponse`` plus pixelgate's ``metadata``.

SDKs ignore keys they do not know, so ``metadata`` and per-image ``seed`` are safe to add.
"""

from __future__ import annotations

import orjson
from pydantic import BaseModel, ConfigDict, Field

from core.image_payload import Base64Text, ImagePayload
from normalization.plan import ParamHandling


class ImageData(BaseModel):
    """One image of the answer. ``image`` is an inline image, kept in the form it came in (bytes, or
    the upstream's base64 text when it passed through unchanged): rendered as ``b64_json`` when the
    body is written, so the base64 text is made at most once, straight into the body."""

    model_config = ConfigDict(frozen=True)

    url: str | None = None
    revised_prompt: str | None = None
    seed: int | None = None
    image: ImagePayload | None = Field(default=None, exclude=True, repr=False)

    def base64(self) -> Base64Text | None:
        """The ``b64_json`` text as ASCII bytes (or a view of them), or None for a hosted image."""
        return None if self.image is None else self.image.base64_text


class Attempt(BaseModel):
    """One deployment's try at one upstream call (its retries inside the provider are one attempt).

    ``status`` is what this attempt alone would have answered (200 when it served), ``code`` its
    error code or None.
    """

    model_config = ConfigDict(frozen=True)

    provider: str
    upstream: str
    status: int
    code: str | None
    ms: int


class ResponseMetadata(BaseModel):
    model_config = ConfigDict(frozen=True)

    model: str
    provider: str
    upstream_model: str
    parameters: dict[str, ParamHandling]
    warnings: list[str] = Field(default_factory=list)
    upstream_calls: int
    resized: bool = False
    converted: bool = False
    nsfw: list[bool | None] = Field(default_factory=list)
    cost_usd: float = 0.0
    """What the upstream calls cost, in USD, rounded to 6 decimals (see :mod:`normalization.pricing`)."""
    attempts: list[Attempt] = Field(default_factory=list)
    """Every upstream attempt, failed ones included, in the order they ended."""


class ImagesResponse(BaseModel):
    model_config = ConfigDict(frozen=True)

    created: int
    data: list[ImageData]
    output_format: str
    size: str
    metadata: ResponseMetadata

    def wire_chunks(self) -> list[bytes | memoryview]:
        """The JSON body as chunks to send in order; images' ``None`` fields are left out, as OpenAI does.

        Each image's base64 text is its own chunk, made once and never copied again: base64 needs
        no JSON escaping. (``orjson.dumps`` of the whole dict would reserve room for escaping every
        character, about 13 bytes per base64 character: a 31 MB block per 1024x1024 PNG, and such
        short-lived large blocks kept the process's memory high under load.)
        """
        head = self.model_dump(mode="json", exclude={"data"})
        chunks: list[bytes | memoryview] = [orjson.dumps(head)[:-1], b',"data":[']
        for index, image in enumerate(self.data):
            if index:
                chunks.append(b",")
            rest = orjson.dumps(image.model_dump(mode="json", exclude_none=True))
            b64 = image.base64()
            if b64 is None:
                chunks.append(rest)
                continue
            chunks += [b'{"b64_json":"', b64, b'"}' if rest == b"{}" else b'",' + rest[1:]]
        chunks.append(b"]}")
        return chunks
