"""The one check every upstream result passes before the pipeline uses it.

A result must be an image of a type we know by its magic bytes, reach its format's end marker (a
download or body cut short is the common failure), and have a readable header within the pixel
cap. Nothing is decoded here: the pipeline decodes once, when it converts or resizes, and bytes
already right are passed through untouched.
"""

from __future__ import annotations

from core.errors import InvalidRequestError, UpstreamError
from core.images import image_dimensions, looks_complete, sniff_media_type


def checked_result(data: bytes, *, upstream: str, max_pixels: int) -> bytes:
    """``data`` unchanged, or ``UpstreamError`` (``upstream_bad_response``) naming ``upstream``."""
    media_type = sniff_media_type(data)
    if media_type is None:
        raise UpstreamError(f"{upstream} returned a result that is not an image", code="upstream_bad_response")
    if not looks_complete(data, media_type):
        raise UpstreamError(f"{upstream} returned a truncated image", code="upstream_bad_response")
    try:
        image_dimensions(data, param="result", max_pixels=max_pixels)
    except InvalidRequestError as exc:
        raise UpstreamError(
            f"{upstream} returned a corrupt image or one over the pixel limit", code="upstream_bad_response"
        ) from exc
    return data
