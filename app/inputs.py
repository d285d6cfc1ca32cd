"""From a parsed body to the typed request: :class:`ImageRequest` plus :class:`EditInputs`.

Multipart scalars are strings (an empty string means absent); JSON values are typed (``null``
means absent). Input images are sniffed and size-checked here; JSON edits may reference images by
``data:`` URI or by URL (downloaded through the guarded fetch the app injects).
"""

from __future__ import annotations

import binascii
from collections.abc import Awaitable, Callable

import pybase64
from pydantic import JsonValue, ValidationError

from app.context import RequestContext
from app.forms import ParsedForm
from core.errors import InvalidRequestError, PayloadTooLargeError
from core.images import InputImage, probe_input
from normalization.request import EditInputs, ImageRequest
from providers.fetch import BeforeBody

UrlFetcher = Callable[[str, BeforeBody], Awaitable[bytes]]
"""Downloads an ``image_url`` input (https or an allowed host) within the size cap, awaiting the
``BeforeBody`` hook with the most its body may hold before reading it."""

RequestFetch = Callable[[str], Awaitable[bytes]]
"""One request's download of an ``image_url`` input."""


def counted_fetch(fetch: UrlFetcher, context: RequestContext) -> RequestFetch:
    """``fetch`` with each download's bytes reserved from the request's share of the intake budget
    before its body is read (as much as it may hold: its declared length, else the size cap) and what it
    did not use given back after; the rest goes back with the request's other inputs. So downloaded
    inputs wait for room as uploads do."""

    async def fetch_counted(url: str) -> bytes:
        reserved = 0

        async def reserve(most: int) -> None:
            nonlocal reserved
            reserved = await context.reserve_intake(most)

        data = await fetch(url, reserve)
        context.return_intake(reserved - len(data))
        return data

    return fetch_counted


def build_request(fields: dict[str, JsonValue]) -> ImageRequest:
    """Validate the scalar fields; a bad value is a 400 naming the field as the client sent it."""
    cleaned = {key: value for key, value in fields.items() if value != "" and value is not None}
    try:
        return ImageRequest.model_validate(cleaned)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = str(first["loc"][0]) if first["loc"] else None
        raise InvalidRequestError(
            f"Invalid value for '{param}': {first['msg']}", param=param, code="invalid_value"
        ) from exc


def form_inputs(form: ParsedForm, *, max_pixels: int) -> EditInputs:
    """The sniffed images of a multipart edit; 400 for an image part that is not PNG, JPEG or WebP."""
    images = []
    for index, (part_name, data) in enumerate(form.images):
        param = f"image[{index}]" if part_name == "image[]" else part_name
        images.append(probe_input(data, param=param, max_pixels=max_pixels))
    mask = probe_input(form.mask[1], param="mask", max_pixels=max_pixels) if form.mask else None
    return EditInputs(images=tuple(images), mask=mask)


async def json_inputs(
    body: dict[str, JsonValue], *, fetch: RequestFetch, max_bytes: int, max_images: int, max_pixels: int
) -> EditInputs:
    """Images of a JSON edit: ``images: [{"image_url": ...}]`` (or ``image``), optional ``mask``."""
    refs = body.pop("images", None)
    if refs is None and "image" in body:
        single = body.pop("image")
        refs = single if isinstance(single, list) else [single]
    if not isinstance(refs, list) or not refs:
        raise InvalidRequestError("'images' is required for edits", param="images", code="missing_required_parameter")
    if len(refs) > max_images:
        raise InvalidRequestError(
            f"too many images: at most {max_images} are accepted", param="images", code="too_many_images"
        )
    images = [
        await _ref_image(ref, f"images[{i}]", fetch=fetch, max_bytes=max_bytes, max_pixels=max_pixels)
        for i, ref in enumerate(refs)
    ]
    mask_ref = body.pop("mask", None)
    mask = (
        await _ref_image(mask_ref, "mask", fetch=fetch, max_bytes=max_bytes, max_pixels=max_pixels)
        if mask_ref is not None
        else None
    )
    return EditInputs(images=tuple(images), mask=mask)


async def _ref_image(ref: JsonValue, param: str, *, fetch: RequestFetch, max_bytes: int, max_pixels: int) -> InputImage:
    url = ref.get("image_url") if isinstance(ref, dict) else ref
    if isinstance(ref, dict) and "file_id" in ref:
        raise InvalidRequestError("file_id references are not supported; send image_url", param=param)
    if isinstance(url, dict):
        url = url.get("url")
    if not isinstance(url, str) or not url:
        raise InvalidRequestError(f"'{param}' needs an image_url", param=param)
    if url.startswith("data:"):
        data = decode_data_url(url, param=param, max_bytes=max_bytes)
    elif url.startswith(("https://", "http://")):
        try:
            data = await fetch(url)
        except InvalidRequestError as exc:
            exc.param = param  # the fetcher cannot know which of the images it was given
            raise
    else:
        raise InvalidRequestError(f"'{param}' must be an https URL or a data: URL", param=param)
    return probe_input(data, param=param, max_pixels=max_pixels)


def decode_data_url(url: str, *, param: str, max_bytes: int) -> bytes:
    """Bytes of a base64 ``data:`` URL; 413 over ``max_bytes``, 400 when malformed."""
    header, sep, payload = url.partition(",")
    if not sep or ";base64" not in header:
        raise InvalidRequestError(f"'{param}' is not a base64 data URL", param=param)
    if len(payload) * 3 // 4 > max_bytes:
        raise PayloadTooLargeError(f"'{param}' is larger than the {max_bytes}-byte limit", param=param)
    try:
        return pybase64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequestError(f"'{param}' is not valid base64", param=param) from exc
