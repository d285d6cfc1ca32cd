"""Response format: each image inline (``b64_json``) or hosted behind a signed link (``url``).

Planning (pure): :func:`choose_response_format` gives the format when the request names none: the
model's own default (gpt-image-* answer base64, as OpenAI does) or the gateway's
``PIXELGATE_DEFAULT_RESPONSE_FORMAT``.

Delivering: :func:`deliver` stores the images of a ``url`` answer through the
:class:`~normalization.hosting.ImageHost`. When the store cannot write, the upstream work is done
(and paid for), so the answer says so clearly: a 503 ``image_store_unavailable``, or, only when the
client allowed it with the ``x-pixelgate-url-fallback: b64_json`` header, the same images inline
with a warning. Never a silent change of format.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from core.errors import ImageStoreUnavailableError
from normalization.catalog import ModelEntry
from normalization.emulation.output_format import EncodedImage
from normalization.hosting import HostedImage, ImageHost
from normalization.plan import EmulationPlan, ParamWarning, ResponseFormat
from normalization.response import ImageData
from providers.base import GeneratedImage

URL_FALLBACK_HEADER = "x-pixelgate-url-fallback"
"""Request header: ``b64_json`` lets a ``url`` answer fall back to inline images if the store fails."""


def choose_response_format(
    requested: ResponseFormat | None, entry: ModelEntry, default: ResponseFormat
) -> ResponseFormat:
    """The request's ``response_format``, else the model's default, else the gateway's ``default``."""
    return requested or entry.default_response_format or default


class Delivered(BaseModel):
    """The answer's images as the client receives them, and what it must be told about them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data: tuple[ImageData, ...]
    warnings: tuple[ParamWarning, ...] = ()


async def deliver(
    host: ImageHost,
    sources: Sequence[GeneratedImage],
    encoded: Sequence[EncodedImage],
    emulation: EmulationPlan,
    base_url: str,
) -> Delivered:
    """One :class:`ImageData` per image, in order, as ``emulation.response_format`` asks.

    ``sources`` carry what the upstream said about each image (seed, revised prompt); ``encoded``
    the images to return (base64 text that passed through is decoded only to be stored). Raises
    :class:`ImageStoreUnavailableError` (503) when a ``url`` answer cannot be stored and the client
    did not allow the fallback; images already stored for this answer are deleted then.
    """
    if emulation.response_format == "b64_json":
        return Delivered(data=tuple(_inline(source, out) for source, out in zip(sources, encoded, strict=True)))
    published = await asyncio.gather(
        *(host.publish(out.data, out.media_type, base_url) for out in encoded), return_exceptions=True
    )
    failure = next((result for result in published if isinstance(result, BaseException)), None)
    if failure is None:
        links = [result for result in published if isinstance(result, HostedImage)]
        return Delivered(
            data=tuple(
                ImageData(url=link.url, revised_prompt=source.revised_prompt, seed=source.seed)
                for source, link in zip(sources, links, strict=True)
            )
        )
    await host.withdraw([result.name for result in published if isinstance(result, HostedImage)])
    if not isinstance(failure, ImageStoreUnavailableError):
        raise failure
    if not emulation.url_fallback:
        raise ImageStoreUnavailableError(
            f"{failure.message}. The images were made but cannot be linked: ask with response_format=b64_json, "
            f"or send the header '{URL_FALLBACK_HEADER}: b64_json' to receive them inline when this happens.",
            param="response_format",
        ) from failure
    warning = ParamWarning(
        param="response_format",
        code="image_store_unavailable",
        message=f"{failure.message}; the images are returned inline as b64_json ({URL_FALLBACK_HEADER})",
    )
    return Delivered(
        data=tuple(_inline(source, out) for source, out in zip(sources, encoded, strict=True)),
        warnings=(warning,),
    )


def _inline(source: GeneratedImage, out: EncodedImage) -> ImageData:
    # Kept as it is (bytes, or the upstream's base64 text): base64-encoded, if need be, when the body is written.
    return ImageData(image=out, revised_prompt=source.revised_prompt, seed=source.seed)
