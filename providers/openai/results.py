"""Turn an OpenAI images response into :class:`GeneratedImage` results.

``data[i]`` carries ``b64_json`` or ``url``, and optionally ``revised_prompt``. The toolkit's
:class:`ResultReader` keeps each ``b64_json`` as its text or downloads each ``url`` (through the
guarded fetch) and checks it is an image, whole and within the caps; anything else is an
``UpstreamError`` here rather than a broken file later.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError

from core.image_payload import ImagePayload
from providers.base import GeneratedImage
from providers.openai.errors import bad_response
from providers.toolkit.results import ResultReader, all_or_first_failure


class ImageItem(BaseModel):
    model_config = ConfigDict(extra="ignore")

    b64_json: str | None = None
    url: str | None = None
    revised_prompt: str | None = None


class ImagesBody(BaseModel):
    """The part of an ``ImagesResponse`` the adapter uses; other keys (usage, size...) are ignored."""

    model_config = ConfigDict(extra="ignore")

    data: list[ImageItem]


def parse_body(content: bytes) -> ImagesBody:
    """A 2xx body as an images response; ``upstream_bad_response`` when it is not one or is empty."""
    try:
        body = ImagesBody.model_validate_json(content)
    except ValidationError as exc:
        raise bad_response("images response") from exc
    if not body.data:
        raise bad_response("images response (no images)")
    return body


async def _image(item: ImageItem, reader: ResultReader) -> ImagePayload:
    if item.b64_json is not None:
        return reader.from_base64(item.b64_json)
    if item.url is not None:
        return await reader.from_reference(item.url)
    raise bad_response("image (neither b64_json nor url)")


async def collect_images(body: ImagesBody, reader: ResultReader) -> tuple[GeneratedImage, ...]:
    """Every image of ``body``, checked, in the upstream's order (downloads in parallel); ``b64_json``
    stays the upstream's text (see :meth:`ResultReader.from_base64`).

    Raises :class:`UpstreamError` for invalid base64, a refused or failed download, or a result
    that is not an image.
    """
    data = await all_or_first_failure([_image(item, reader) for item in body.data])
    return tuple(
        GeneratedImage.of(image, revised_prompt=item.revised_prompt)
        for item, image in zip(body.data, data, strict=True)
    )
