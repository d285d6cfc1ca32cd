"""The provider adapter interface and the frozen models that cross it.

The normalization engine turns a client request into one or more :class:`UpstreamCall` (payload
already translated by the catalog; images still bytes), and an adapter turns one call into a
:class:`ProviderResult` (image bytes, never URLs). Adapters know their protocol only: where to send,
how to authenticate, poll, retry, upload inputs and download results. They never emulate
(``n`` fan-out, format conversion, resizing and hosting live in ``normalization/``).

Failure contract: an adapter raises :mod:`app.errors` exceptions only, having mapped its client
library's exceptions in one place. On ``asyncio.CancelledError`` (client gone, deadline passed,
sibling call failed) it releases upstream work it started (e.g. fal's cancel) and re-raises.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from app.settings import ProviderSettings

ImageMediaType = Literal["image/png", "image/jpeg", "image/webp", "image/gif", "image/avif"]

JsonObject = dict[str, JsonValue]
"""A JSON object as sent on the wire to an upstream (already translated field names and types)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class InputImage(_Frozen):
    """An input image whose type was sniffed from its bytes (never from a filename)."""

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


class UpstreamCall(_Frozen):
    """One request to one upstream, ready for its adapter.

    ``payload`` holds every translated field except the images; the adapter places ``images`` (and
    ``mask``) under ``image_field``/``mask_field`` in its protocol's way (fal: URL strings or a
    list of them; OpenAI: multipart files). ``index`` is the call's position in a fan-out.
    """

    model_id: str
    provider: str
    upstream: str
    mode: Literal["edit", "generate"]
    payload: JsonObject
    images: tuple[InputImage, ...] = ()
    image_field: str | None = None
    image_kind: Literal["single", "list"] = "single"
    mask: InputImage | None = None
    mask_field: str | None = None
    result_field: str = "images"
    expected_images: int = Field(default=1, ge=1, description="how many images this call should return")
    index: int = 0


class GeneratedImage(_Frozen):
    """One result image, with what the upstream said about it."""

    data: bytes = Field(repr=False)
    seed: int | None = None
    revised_prompt: str | None = None
    nsfw: bool | None = None


class ProviderResult(_Frozen):
    images: tuple[GeneratedImage, ...]
    upstream_request_id: str | None = None


class ImageAdapter(ABC):
    """One provider kind's protocol. One instance per configured provider, built at start-up."""

    @abstractmethod
    async def run(self, call: UpstreamCall) -> ProviderResult:
        """Send ``call`` upstream and return its images as bytes.

        Raises :class:`app.errors.GatewayError` subclasses only: ``ProviderNotConfiguredError``
        without credentials, ``InvalidRequestError`` (with the upstream field in ``param``; the
        engine maps it back to the client's name), ``ModerationBlockedError``, ``UpstreamError``,
        ``UpstreamTimeoutError``. Retries retryable failures itself before raising.
        """

    async def aclose(self) -> None:  # noqa: B027 - optional hook; most adapters own nothing
        """Release resources the adapter owns (not the shared HTTP client). Default: nothing."""


AdapterFactory = Callable[[ProviderSettings, httpx.AsyncClient], ImageAdapter]
"""Builds an adapter from its provider's settings and the app's one shared HTTP client."""
