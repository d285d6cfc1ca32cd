"""The one check every upstream result passes before the pipeline uses it.

A result must be an image of a type we know by its magic bytes, reach its format's end marker (a
download or body cut short is the common failure), and have a readable header within the pixel
cap. Nothing is decoded here: the pipeline decodes once, when it converts or resizes, and bytes
already right are passed through untouched. Base64 results are checked from their ends
(:func:`checked_ends`): the text is decoded only where the header and the end marker lie.
"""

from __future__ import annotations

from core.errors import UpstreamError
from core.image_payload import ImagePayload
from core.image_probe import ImageHeader, check_pixels, probe_header, read_header
from core.images import COMPLETION_TAIL_BYTES, ImageProblem, ends_look_complete, sniff_media_type


def checked_result(data: bytes, *, upstream: str, max_pixels: int) -> ImagePayload:
    """``data`` with its header, or ``UpstreamError`` (``upstream_bad_response``) naming ``upstream``."""
    tail = data[-COMPLETION_TAIL_BYTES:]
    header = checked_ends(data, tail, len(data), complete=True, upstream=upstream, max_pixels=max_pixels)
    assert header is not None  # a complete image is always read, by Pillow when not here
    return ImagePayload(data=data, header=header)


def checked_ends(
    head: bytes, tail: bytes, size: int, *, complete: bool, upstream: str, max_pixels: int
) -> ImageHeader | None:
    """The header of an image of ``size`` bytes from its first bytes ``head`` and last bytes ``tail``.

    ``complete``: ``head`` is the whole image. Returns None when ``head`` is a prefix that does not
    hold the whole header (or a format only Pillow reads): check the whole image instead. Raises
    ``UpstreamError`` (``upstream_bad_response``) for a non-image, a truncated or corrupt one, or
    one over ``max_pixels``.
    """
    media_type = sniff_media_type(head)
    if media_type is None:
        raise UpstreamError(f"{upstream} returned a result that is not an image", code="upstream_bad_response")
    if not ends_look_complete(head, tail, size, media_type):
        raise UpstreamError(f"{upstream} returned a truncated image", code="upstream_bad_response")
    try:
        if complete:
            return probe_header(head, max_pixels=max_pixels)
        header = read_header(head, complete=False)
        return None if header is None else check_pixels(header, max_pixels)
    except ImageProblem as exc:
        raise UpstreamError(
            f"{upstream} returned a corrupt image or one over the pixel limit", code="upstream_bad_response"
        ) from exc
