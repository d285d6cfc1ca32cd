"""Turn a fal output object into :class:`GeneratedImage` results.

The images sit under the call's ``result_field``: a list of file objects (``images``, most
models) or one object (``image``, e.g. SeedEdit). Each ``url`` is a ``data:`` URI (``sync_mode``)
or an http(s) URL; the toolkit's :class:`ResultReader` downloads it (or keeps the URI's base64 text)
and checks it without a decode (type, end marker, header, pixel cap), so a truncated or non-image download is an
``UpstreamError`` here rather than a broken file handed to the client.

Seeds: fal returns one ``seed`` per job, the seed of the whole batch. fal does not document that
image ``i`` of a batch equals a run with ``seed + i``, so only the first image gets the returned
seed (rerunning with it and ``num_images=1`` reproduces that image); the others get ``None``. A
per-image ``seed`` on a file object, or a ``seeds`` list, wins when a model returns one.
``prompt`` becomes every image's ``revised_prompt``, ``has_nsfw_concepts[i]`` image ``i``'s ``nsfw``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, JsonValue, ValidationError

from providers.base import GeneratedImage
from providers.fal.errors import bad_response
from providers.toolkit.results import ResultReader, all_or_first_failure


class _File(BaseModel):
    model_config = ConfigDict(extra="ignore")

    url: str
    seed: int | None = None


class _Output(BaseModel):
    model_config = ConfigDict(extra="ignore")

    seed: int | None = None
    seeds: list[int] | None = None
    prompt: str | None = None
    has_nsfw_concepts: list[bool] | None = None


def _files(body: dict[str, JsonValue], result_field: str) -> list[_File]:
    raw = body.get(result_field)
    items = raw if isinstance(raw, list) else [raw]
    try:
        files = [_File.model_validate(item) for item in items]
    except ValidationError as exc:
        raise bad_response(f"result (no image URLs under '{result_field}')") from exc
    if not files:
        raise bad_response(f"result (no images under '{result_field}')")
    return files


async def collect_images(
    reader: ResultReader, body: dict[str, JsonValue], *, result_field: str
) -> tuple[GeneratedImage, ...]:
    """Every image of ``body`` as bytes with its metadata, in fal's order (downloads in parallel).

    Raises :class:`UpstreamError` when the body lacks images, a download is refused or fails, or
    a result is not a whole image.
    """
    files = _files(body, result_field)
    try:
        meta = _Output.model_validate(body)
    except ValidationError:
        meta = _Output()
    data = await all_or_first_failure([reader.from_reference(f.url) for f in files])
    images = []
    for i, (file, image) in enumerate(zip(files, data, strict=True)):
        seed = file.seed
        if seed is None and meta.seeds is not None and i < len(meta.seeds):
            seed = meta.seeds[i]
        if seed is None and i == 0:
            seed = meta.seed
        nsfw = meta.has_nsfw_concepts[i] if meta.has_nsfw_concepts and i < len(meta.has_nsfw_concepts) else None
        images.append(GeneratedImage.of(image, seed=seed, revised_prompt=meta.prompt, nsfw=nsfw))
    return tuple(images)
