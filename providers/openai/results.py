"""Turn an OpenAI images response into :class:`GeneratedImage` results.

``data[i]`` carries ``b64_json`` or ``url``, and optionally ``revised_prompt``. The toolkit's
:class:`ResultReader` keeps each ``b64_json`` as its text or downloads each ``url`` (through the
guarded fetch) and checks it is an image, whole and within the caps; anything else is an
``UpstreamError`` here rather than a broken file later.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError

from core.image_payload import Base64Text, ImagePayload
from providers.base import GeneratedImage
from providers.openai.errors import bad_response
from providers.toolkit.results import ResultReader, all_or_first_failure


class ImageItem(BaseModel):
    model_config = ConfigDict(extra="ignore", arbitrary_types_allowed=True)

    b64_json: str | Base64Text | None = None
    """The image's base64 text: a view into the body when :func:`parse_body` cut it from there, str otherwise."""
    url: str | None = None
    revised_prompt: str | None = None


class ImagesBody(BaseModel):
    """The part of an ``ImagesResponse`` the adapter uses; other keys (usage, size...) are ignored."""

    model_config = ConfigDict(extra="ignore")

    data: list[ImageItem]


_B64_KEY = b'"b64_json"'
_JSON_SPACE = b" \t\r\n"


def parse_body(content: bytes) -> ImagesBody:
    """A 2xx body as an images response; ``upstream_bad_response`` when it is not one or is empty.

    Each ``b64_json`` is taken from ``content`` as bytes (:func:`_cut_base64`) and the rest parsed
    as JSON: a JSON parser would make each 2-3 MB string a Python ``str`` (checking every character
    for escapes) only for it to be encoded back to bytes for the client. A body whose base64 cannot
    be cut cleanly is parsed whole.
    """
    cut = _cut_base64(content)
    try:
        if cut is not None:
            skeleton, texts = cut
            body = ImagesBody.model_validate_json(skeleton)
            emptied = [item for item in body.data if item.b64_json == ""]
            if len(emptied) == len(texts) == sum(item.b64_json is not None for item in body.data):
                data = iter(texts)
                items = [
                    item.model_copy(update={"b64_json": next(data)}) if item.b64_json == "" else item
                    for item in body.data
                ]
                body = ImagesBody(data=items)
            else:  # a key elsewhere spelled b64_json, or an empty one: no guessing
                body = ImagesBody.model_validate_json(content)
        else:
            body = ImagesBody.model_validate_json(content)
    except ValidationError as exc:
        raise bad_response("images response") from exc
    if not body.data:
        raise bad_response("images response (no images)")
    return body


def _skip_space(content: bytes, cursor: int) -> int:
    while cursor < len(content) and content[cursor] in _JSON_SPACE:
        cursor += 1
    return cursor


def _cut_base64(content: bytes) -> tuple[bytes, list[memoryview]] | None:
    """``content`` with every ``"b64_json": "..."`` string emptied, and those strings, in order.

    Base64 holds no quote or backslash, so each value ends at the next quote; None when a value is
    not a plain string (an escape in it, no closing quote). Which ``b64_json`` keys were images is
    for the caller to confirm against the parsed skeleton.
    """
    pieces: list[bytes] = []
    texts: list[memoryview] = []
    view = memoryview(content)
    copied = search = 0
    while (key := content.find(_B64_KEY, search)) != -1:
        cursor = _skip_space(content, key + len(_B64_KEY))
        search = cursor
        if content[cursor : cursor + 1] != b":":
            continue  # a string value that reads b64_json, not a key
        cursor = _skip_space(content, cursor + 1)
        if content[cursor : cursor + 1] != b'"':
            continue  # null, or not a string: the parser decides
        start = cursor + 1
        end = content.find(b'"', start)
        if end == -1 or content.find(b"\\", start, end) != -1:
            return None
        pieces.append(content[copied:start])
        texts.append(view[start:end])  # a view: the body outlives the image's use of it
        copied = search = end
    if not texts:
        return None
    pieces.append(content[copied:])
    return b"".join(pieces), texts


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
