"""A succeeded prediction's ``output`` to :class:`GeneratedImage` results.

The output's shape is the model's (the Replicate reference, section 5): one URL string (flux-kontext,
nano-banana, hidream) or a list of them (flux-schnell, seedream, qwen-image-edit); an object output
is read at the call's ``result_field``. Each reference is an ``https://replicate.delivery/...`` URL,
downloaded through the guarded fetch, or a ``data:`` URI (the sync API answered those in October
2024 and Replicate's clients still accept them). Whether output URLs need the token is unconfirmed;
Replicate's JavaScript client fetches them without it, and so does pixelgate.

Seeds: a seed is reported only where the prediction reports it: the ``seed`` of its ``input`` (as
Replicate echoes it) or of an object output, and only a non-negative one (HiDream's ``-1`` means
random). As with fal, only the first image of a batch gets it.
"""

from __future__ import annotations

from pydantic import JsonValue

from providers.base import GeneratedImage
from providers.replicate.errors import bad_response, no_output
from providers.replicate.predictions import Prediction
from providers.toolkit.results import ResultReader, all_or_first_failure


def _references(output: JsonValue, result_field: str) -> list[str]:
    if isinstance(output, dict):
        output = output.get(result_field)
    if output is None:
        return []
    items = output if isinstance(output, list) else [output]
    if not all(isinstance(item, str) and item for item in items):
        raise bad_response("prediction output (not image URLs)")
    return [str(item) for item in items]


def _seed(prediction: Prediction) -> int | None:
    for source in (prediction.output, prediction.input):
        seed = source.get("seed") if isinstance(source, dict) else None
        if isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0:
            return seed
    return None


async def collect_images(
    reader: ResultReader, prediction: Prediction, *, result_field: str
) -> tuple[GeneratedImage, ...]:
    """Every image of a succeeded ``prediction``, in its order (downloads in parallel).

    Raises ``upstream_no_image`` when it has none (or its data was removed), ``upstream_bad_response``
    for an output that is not image references, and the reader's errors for a download.
    """
    references = _references(prediction.output, result_field)
    if not references:
        raise no_output(prediction.data_removed)
    data = await all_or_first_failure([reader.from_reference(reference) for reference in references])
    seed = _seed(prediction)
    return tuple(GeneratedImage.of(image, seed=seed if i == 0 else None) for i, image in enumerate(data))
