"""Helpers for the openai adapter tests: build calls and adapters, run one call on a fresh client."""

from __future__ import annotations

import asyncio
import io

import httpx
from PIL import Image
from pydantic import JsonValue

from core.image_workers import ImageWorkers
from core.images import InputImage
from providers.base import AdapterContext, PartialImage, ProviderResult, UpstreamCall
from providers.openai import OpenAIAdapter, OpenAISettings

API_KEY = "sk-upstream-secret-0123456789"


def png_input(width: int = 64, height: int = 64, color: tuple[int, int, int, int] = (200, 30, 30, 255)) -> InputImage:
    out = io.BytesIO()
    Image.new("RGBA", (width, height), color).save(out, format="PNG")
    return InputImage(data=out.getvalue(), media_type="image/png", width=width, height=height)


def webp_input() -> InputImage:
    out = io.BytesIO()
    Image.new("RGB", (32, 32), (0, 90, 200)).save(out, format="WEBP")
    return InputImage(data=out.getvalue(), media_type="image/webp", width=32, height=32)


def edit_call(
    payload: dict[str, JsonValue],
    images: tuple[InputImage, ...],
    mask: InputImage | None = None,
    upstream: str = "gpt-image-1",
) -> UpstreamCall:
    return UpstreamCall(
        model_id=upstream,
        provider="openai",
        upstream=upstream,
        mode="edit",
        payload=payload,
        images=images,
        image_field="image",
        image_kind="list",
        mask=mask,
        mask_field="mask" if mask is not None else None,
    )


def generate_call(payload: dict[str, JsonValue], upstream: str = "gpt-image-1") -> UpstreamCall:
    return UpstreamCall(model_id=upstream, provider="openai", upstream=upstream, mode="generate", payload=payload)


def settings(base_url: str, *, api_key: str | None = API_KEY, **values: object) -> OpenAISettings:
    return OpenAISettings.model_validate({"base_url": base_url, "api_key": api_key, **values})


def run_call(conf: OpenAISettings, call: UpstreamCall, *, backoff: float = 0.01) -> ProviderResult:
    """One adapter run on a fresh shared-style client; exceptions propagate as raised."""

    async def scenario() -> ProviderResult:
        async with httpx.AsyncClient() as client:
            adapter = OpenAIAdapter(conf, AdapterContext(client=client, image_workers=ImageWorkers(max_workers=1)))
            adapter.backoff_base_seconds = backoff
            adapter.backoff_cap_seconds = backoff * 4
            return await adapter.run(call)

    return asyncio.run(scenario())


def run_streamed(
    conf: OpenAISettings, call: UpstreamCall, *, told: list[PartialImage] | None = None, backoff: float = 0.01
) -> tuple[ProviderResult, list[PartialImage]]:
    """One ``run_streaming`` on a fresh client: its result and the partial images it told, in order
    (also kept in ``told``, which still holds them when the run raises)."""
    partials: list[PartialImage] = [] if told is None else told

    async def scenario() -> ProviderResult:
        async with httpx.AsyncClient() as client:
            adapter = OpenAIAdapter(conf, AdapterContext(client=client, image_workers=ImageWorkers(max_workers=1)))
            adapter.backoff_base_seconds = backoff
            adapter.backoff_cap_seconds = backoff * 4
            return await adapter.run_streaming(call, partials.append)

    return asyncio.run(scenario()), partials
