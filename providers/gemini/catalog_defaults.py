"""What a model served by a ``gemini``-kind provider may leave out of its catalog entry.

The Gemini API's image models share one request shape (the Gemini reference, section 3): input images
as ``inlineData`` parts (at most 3 on ``gemini-2.5-flash-image``, 14 on the 3.x models), one image per
call (``candidateCount`` above 1 is refused), ``imageConfig.aspectRatio`` from ten ratios, PNG answers
(JPEG is sometimes seen; pixelgate converts what comes). ``responseModalities: ["IMAGE"]`` is fixed:
the image models then leave out their text part.

``imageSize`` (1K/2K/4K) is not a default: ``gemini-2.5-flash-image`` accepts it but still makes about
one megapixel (third-party observation, unconfirmed by Google), so a ``resolution`` there is done by
pixelgate's resize. A 3.x entry that honours it adds ``tier_field: imageSize`` with its values to its
``size`` (and its own ``max_images``, and the 3.1 ratios ``1:4, 4:1, 1:8, 8:1``).
"""

from __future__ import annotations

from core.model_shape import CatalogDefaults, CountSpec, ImageInputSpec, OutputFormatSpec, SizeSpec

GEMINI_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")

GEMINI_SHAPE = CatalogDefaults(
    images=ImageInputSpec(field="inlineData", kind="list", max_images=3),
    size=SizeSpec(
        kind="aspect_ratio", field="aspectRatio", values=GEMINI_RATIOS, default_width=1024, default_height=1024
    ),
    count=CountSpec(field=None, max=1),
    output_format=OutputFormatSpec(values=("png",), default="png"),
    fixed={"responseModalities": ["IMAGE"]},
)
