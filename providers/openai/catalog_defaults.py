"""The OpenAI request shape, supplied to every model an ``openai``-kind provider serves.

So the contract's minimal entry ``{id, provider: openai, upstream, modes}`` works: edits send up to
16 images as ``image`` (``image[]`` when several) and the mask as ``mask``; ``n`` is native up to
10; ``size`` is the GPT image models' enum; ``output_format`` is native (png, jpeg, webp). Results
may come back as ``b64_json`` or ``url``; the adapter reads either, so no ``response_format`` is
fixed (GPT image models refuse one). A model whose upstream differs (DALL-E's sizes, one image per
call) spells its own keys, as ``normalization/catalog/openai.yaml`` does.

Source: the ``CreateImageEditRequest``/``CreateImageRequest`` schemas of openai/openai-openapi.
"""

from __future__ import annotations

from core.model_shape import CatalogDefaults, CountSpec, ImageInputSpec, OutputFormatSpec, SizeSpec

OPENAI_SHAPE = CatalogDefaults(
    images=ImageInputSpec(field="image", kind="list", max_images=16, mask_field="mask"),
    size=SizeSpec(kind="pixel_enum", field="size", values=("auto", "1024x1024", "1536x1024", "1024x1536")),
    count=CountSpec(field="n", max=10),
    output_format=OutputFormatSpec(field="output_format", values=("png", "jpeg", "webp"), default="png"),
)
