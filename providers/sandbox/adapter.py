"""The built-in offline provider behind ``sandbox-edit`` and ``sandbox-generate``.

It really makes images, deterministically in (input bytes, prompt, seed, image index), so client
developers can run their own CI against pixelgate with no upstream and no key. An edit visibly
transforms the input (colors inverted and tinted, diagonal bands keyed by the prompt), only where a
mask is transparent when one is sent; a generation draws a seeded gradient with shapes.

Payload fields (set by the catalog, see ``normalization/catalog/sandbox.yaml``): ``prompt``, ``seed``,
``num_images``, ``width``/``height`` (generate), ``delay_ms`` (simulated upstream latency).

Its Pillow work is the gateway's own, so it runs where all Pillow work runs: one job per image in
the app's bounded :class:`~core.image_workers.ImageWorkers` pool, never in threads of its own. An
input is checked against the pixel cap from its header before it is decoded, and one that cannot be
decoded (truncated, corrupt) is the client's 400 naming ``image`` or ``mask``, as a real upstream
answers it.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import random
from functools import partial

from PIL import Image, ImageChops, ImageDraw, ImageOps

from core.errors import InvalidRequestError
from core.images import ImageProblem, InputImage, decode, open_header
from core.provider_settings import ProviderSettings
from providers.base import AdapterContext, GeneratedImage, ImageAdapter, ProviderResult, UpstreamCall


def _int_field(call: UpstreamCall, name: str, default: int) -> int:
    value = call.payload.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequestError(f"sandbox: '{name}' must be an integer", param=name)
    return value


def _base_seed(prompt: str, images: tuple[InputImage, ...]) -> int:
    digest = hashlib.sha256(prompt.encode())
    for image in images:
        digest.update(image.data)
    return int.from_bytes(digest.digest()[:4], "big")


class SandboxAdapter(ImageAdapter):
    """Offline, deterministic image maker; its Pillow work runs in the shared pool, one job per image."""

    def __init__(self, settings: ProviderSettings, context: AdapterContext) -> None:
        """Built like every adapter; the sandbox needs no key, URL or HTTP client: only the Pillow pool."""
        self._workers = context.image_workers
        self._max_pixels = context.limits.max_pixels

    async def run(self, call: UpstreamCall) -> ProviderResult:
        prompt = call.payload.get("prompt")
        if not isinstance(prompt, str):
            raise InvalidRequestError("sandbox: prompt is required", param="prompt")
        delay_ms = _int_field(call, "delay_ms", 0)
        count = _int_field(call, "num_images", 1)
        raw_seed = call.payload.get("seed")
        seed = raw_seed if isinstance(raw_seed, int) and not isinstance(raw_seed, bool) else None
        start_seed = seed if seed is not None else _base_seed(prompt, call.images)
        if call.mode == "edit":
            render = partial(self._edit, call, prompt)
        else:
            render = partial(self._generate, _int_field(call, "width", 1024), _int_field(call, "height", 1024), prompt)
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        images = await asyncio.gather(*(self._workers.run(partial(render, start_seed + i)) for i in range(count)))
        return ProviderResult(images=tuple(images), upstream_request_id=f"sandbox-{start_seed}-{call.index}")

    def _edit(self, call: UpstreamCall, prompt: str, seed: int) -> GeneratedImage:
        if not call.images:
            raise InvalidRequestError("sandbox: an edit needs an image", param=call.image_field or "image")
        source = self._decoded(call.images[0], call.image_field or "image")
        try:
            mask = self._decoded(call.mask, call.mask_field or "mask") if call.mask is not None else None
        except InvalidRequestError:
            source.close()
            raise
        data = _edit(source, mask, prompt, seed)
        return GeneratedImage(data=data, seed=seed, revised_prompt=prompt, nsfw=False)

    def _generate(self, width: int, height: int, prompt: str, seed: int) -> GeneratedImage:
        if width <= 0 or height <= 0 or width * height > self._max_pixels:
            raise InvalidRequestError(
                f"sandbox: {width}x{height} is not a size it makes (at most {self._max_pixels} pixels)", param="width"
            )
        return GeneratedImage(data=_generate(width, height, prompt, seed), seed=seed, revised_prompt=prompt, nsfw=False)

    def _decoded(self, image: InputImage, field: str) -> Image.Image:
        """``image`` decoded, within the pixel cap; a 400 naming ``field`` when it cannot be."""
        try:
            img, _ = open_header(image.data, max_pixels=self._max_pixels)
        except ImageProblem as exc:
            raise InvalidRequestError(f"sandbox: '{field}': {exc.reason}", param=field, code=exc.code) from exc
        try:
            decode(img)
        except ImageProblem as exc:
            img.close()
            raise InvalidRequestError(f"sandbox: '{field}': {exc.reason}", param=field, code=exc.code) from exc
        return img


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def _rng(prompt: str, seed: int) -> random.Random:
    return random.Random(hashlib.sha256(f"{seed}\x00{prompt}".encode()).digest())


def _edit(source: Image.Image, mask: Image.Image | None, prompt: str, seed: int) -> bytes:
    """``source`` (and ``mask``) decoded; both are closed here."""
    rng = _rng(prompt, seed)
    with source:
        base = ImageOps.exif_transpose(source).convert("RGBA")
    alpha = base.getchannel("A")
    edited = ImageOps.invert(base.convert("RGB"))
    tint = Image.new("RGB", edited.size, (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    edited = Image.blend(edited, tint, 0.3)
    draw = ImageDraw.Draw(edited)
    band = max(4, min(edited.size) // 12)
    color = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
    for offset in range(-edited.height, edited.width, band * 3):
        draw.line([(offset, 0), (offset + edited.height, edited.height)], fill=color, width=band)
    result = edited.convert("RGBA")
    result.putalpha(alpha)
    if mask is not None:
        with mask:
            # OpenAI semantics: fully transparent mask pixels mark the area to edit.
            region = ImageOps.invert(mask.convert("RGBA").getchannel("A")).resize(base.size)
        result = Image.composite(result, base, region)
    if ImageChops.difference(alpha, Image.new("L", alpha.size, 255)).getbbox() is None:
        result = result.convert("RGB")
    return _png(result)


def _generate(width: int, height: int, prompt: str, seed: int) -> bytes:
    rng = _rng(prompt, seed)
    top = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
    bottom = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
    gradient = Image.linear_gradient("L").resize((width, height))
    image = Image.composite(Image.new("RGB", (width, height), top), Image.new("RGB", (width, height), bottom), gradient)
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        radius = rng.randrange(max(2, min(width, height) // 10), max(3, min(width, height) // 3))
        fill = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        if rng.random() < 0.5:
            draw.ellipse([x0 - radius, y0 - radius, x0 + radius, y0 + radius], fill=fill)
        else:
            draw.rectangle([x0 - radius, y0 - radius, x0 + radius, y0 + radius], fill=fill)
    return _png(image)
