"""Exact size (``size=WxH`` beyond the model's own size control): bounded, then cover and center-crop.

Planning (pure): :func:`check_output_pixels` refuses a target whose images would exceed the pixel
cap, per image or for the whole request, before anything is sent upstream (a 400 naming ``size``).
Rendering: :func:`cover` scales a decoded image to cover the target and crops it to exactly that
size; :mod:`normalization.emulation.output_format` calls it between decoding and encoding, so the
image is decoded once for both.
"""

from __future__ import annotations

from PIL import Image

from core.errors import InvalidRequestError


def check_output_pixels(target: tuple[int, int], n: int, *, max_pixels: int, max_request_pixels: int) -> None:
    """Raise a 400 naming ``size`` when ``n`` images of ``target`` exceed either cap.

    ``max_pixels`` bounds one image (the decoded-pixel cap for every image pixelgate handles);
    ``max_request_pixels`` bounds ``n`` of them together: resizing allocates the target's pixels
    once per image and the body carries all ``n``.
    """
    width, height = target
    pixels = width * height
    if pixels > max_pixels:
        raise InvalidRequestError(
            f"size {width}x{height} is {pixels} pixels, over this gateway's {max_pixels}-pixel limit per image",
            param="size",
            code="size_too_large",
        )
    if n * pixels > max_request_pixels:
        raise InvalidRequestError(
            f"n={n} images of {width}x{height} are {n * pixels} pixels, over this gateway's "
            f"{max_request_pixels}-pixel limit per request; ask for fewer or smaller images",
            param="size",
            code="size_too_large",
        )


def cover(img: Image.Image, target: tuple[int, int]) -> Image.Image:
    """Scale to cover ``target``, center-crop to it exactly: one LANCZOS resample over the cropped box."""
    width, height = img.size
    target_width, target_height = target
    scale = max(target_width / width, target_height / height)
    box_width, box_height = target_width / scale, target_height / scale
    left, top = (width - box_width) / 2, (height - box_height) / 2
    return img.resize(
        target,
        Image.Resampling.LANCZOS,
        box=(left, top, left + box_width, top + box_height),
        reducing_gap=3.0,
    )
