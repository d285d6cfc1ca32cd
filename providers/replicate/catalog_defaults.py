"""What a model served by a ``replicate``-kind provider may leave out of its catalog entry.

Replicate's models share no request shape (each names its own image, size and format fields: the
Replicate reference, section 8), so the defaults are the most common one and nothing more: one input
image under ``image`` (qwen/qwen-image-edit, prunaai/hidream-e1.1 and most cog models), one image per
prediction (pixelgate fans ``n`` out), no size or format field (pixelgate resizes and converts), and
the prediction's ``output`` itself as the result. So ``{id, provider: replicate, upstream:
owner/name, modes: [edit]}`` serves such a model; any other shape spells its keys, as the built-in
catalog's Replicate deployments do.
"""

from __future__ import annotations

from core.model_shape import CatalogDefaults, CountSpec, ImageInputSpec

REPLICATE_SHAPE = CatalogDefaults(
    images=ImageInputSpec(field="image", kind="single", max_images=1),
    count=CountSpec(field=None, max=1),
    result_field="output",
)
