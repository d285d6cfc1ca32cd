"""The built-in offline provider behind ``sandbox-edit`` and ``sandbox-generate``.

It really makes images, deterministically in (input bytes, prompt, seed, image index), so client
developers can run their own CI against pixelgate with no upstream and no key. An edit visibly
transforms the input (colors inverted and tinted, diagonal bands keyed by the prompt), only where a
mask is transparent when one is sent; a generation draws a seeded gradient with shapes.

Payload fields (set by the catalog, see ``normalization/catalog/sandbox.yaml``): ``prompt``, ``seed``,
``num_images``, ``width``/``height`` (generate), ``delay_ms`` (simulated upstream latency).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import random

from PIL import Image, ImageChops, ImageDraw, ImageOps

from core.errors import InvalidRequestError
from core.images import InputImage
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
    """Offline, deterministic image maker. Runs its Pillow work in a worker thread."""

    def __init__(self, settings: ProviderSettings, context: AdapterContext) -> None:
        """Built like every adapter; the sandbox needs no key, URL or HTTP client, so it keeps nothing."""

    async def run(self, call: UpstreamCall) -> ProviderResult:
        prompt = call.payload.get("prompt")
        if not isinstance(prompt, str):
            raise InvalidRequestError("sandbox: prompt is required", param="prompt")
        delay_ms = _int_field(call, "delay_ms", 0)
        count = _int_field(call, "num_images", 1)
        raw_seed = call.payload.get("seed")
        seed = raw_seed if isinstance(raw_seed, int) and not isinstance(raw_seed, bool) else None
        start_seed = seed if seed is not None else _base_seed(prompt, call.images)
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        images = await asyncio.to_thread(self._render_all, call, prompt, start_seed, count)
        return ProviderResult(images=images, upstream_request_id=f"sandbox-{start_seed}-{call.index}")

    def _render_all(self, call: UpstreamCall, prompt: str, start_seed: int, count: int) -> tuple[GeneratedImage, ...]:
        results = []
        for i in range(count):
            seed = start_seed + i
            if call.mode == "edit":
                data = _edit(call.images[0], call.mask, prompt, seed)
            else:
                width = _int_field(call, "width", 1024)
                height = _int_field(call, "height", 1024)
                data = _generate(width, height, prompt, seed)
            results.append(GeneratedImage(data=data, seed=seed, revised_prompt=prompt, nsfw=False))
        return tuple(results)


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def _rng(prompt: str, seed: int) -> random.Random:
    return random.Random(hashlib.sha256(f"{seed}\x00{prompt}".encode()).digest())


def _edit(source: InputImage, mask: InputImage | None, prompt: str, seed: int) -> bytes:
    rng = _rng(prompt, seed)
    with Image.open(io.BytesIO(source.data)) as opened:
        base = ImageOps.exif_transpose(opened).convert("RGBA")
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
        with Image.open(io.BytesIO(mask.data)) as mask_img:
            # OpenAI semantics: fully transparent mask pixels mark the area to edit.
            region = ImageOps.invert(mask_img.convert("RGBA").getchannel("A")).resize(base.size)
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
