"""Fixtures for the Replicate adapter tests: the fake Replicate, adapters on a real httpx client, calls.

The fake is one per module (reset for every test); every response the adapter receives is recorded
(``seen``) so a test can check what Replicate answered, e.g. that a waited create was still ``starting``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest
from pydantic import JsonValue

from core.image_workers import ImageWorkers
from core.images import InputImage
from providers.base import AdapterContext, UpstreamCall
from providers.replicate import ReplicateAdapter, ReplicateSettings
from tests.fakes.fake_replicate import FakeReplicate
from tests.images import png_bytes

TOKEN = "r8_adapter_test_token_0123456789"
KONTEXT = "black-forest-labs/flux-kontext-pro"
SCHNELL = "black-forest-labs/flux-schnell"
HIDREAM = "prunaai/hidream-e1.1"

AdapterMaker = Callable[..., ReplicateAdapter]


@pytest.fixture(scope="module")
def replicate_server() -> Iterator[FakeReplicate]:
    with FakeReplicate(token=TOKEN, latency=0.05) as fake:
        yield fake


@pytest.fixture
def fake(replicate_server: FakeReplicate) -> FakeReplicate:
    replicate_server.reset()
    replicate_server.latency = 0.05
    replicate_server.max_output_side = 64
    return replicate_server


@pytest.fixture
def seen() -> list[httpx.Response]:
    """Every response the adapter's client received, bodies read, in order."""
    return []


@pytest.fixture
async def recording_client(seen: list[httpx.Response]) -> AsyncIterator[httpx.AsyncClient]:
    async def record(response: httpx.Response) -> None:
        await response.aread()
        seen.append(response)

    async with httpx.AsyncClient(follow_redirects=False, event_hooks={"response": [record]}) as client:
        yield client


def fast(adapter: ReplicateAdapter) -> ReplicateAdapter:
    """Test-sized waits on the real code paths."""
    adapter.backoff_base_seconds = 0.01
    adapter.backoff_cap_seconds = 0.05
    adapter.poll_initial_seconds = 0.01
    adapter.poll_max_seconds = 0.05
    return adapter


def build(
    base_url: str,
    client: httpx.AsyncClient,
    *,
    token: str | None = TOKEN,
    deadline: float | None = None,
    **values: JsonValue,
) -> ReplicateAdapter:
    settings = ReplicateSettings.model_validate(
        {"api_key": token, "base_url": base_url, "max_retries": 3, "wait_seconds": 5, **values}
    )
    context = AdapterContext(client=client, image_workers=ImageWorkers(max_workers=1), call_deadline_seconds=deadline)
    return fast(ReplicateAdapter(settings, context))


@pytest.fixture
def make_adapter(fake: FakeReplicate, recording_client: httpx.AsyncClient) -> AdapterMaker:
    def make(**values: JsonValue) -> ReplicateAdapter:
        token = values.pop("token", TOKEN)
        deadline = values.pop("deadline", None)
        assert token is None or isinstance(token, str)
        assert deadline is None or isinstance(deadline, int | float)
        return build(fake.base_url, recording_client, token=token, deadline=deadline, **values)

    return make


def image(width: int = 48, height: int = 32) -> InputImage:
    return InputImage(data=png_bytes(width, height), media_type="image/png", width=width, height=height)


def kontext_edit(prompt: str = "make it blue", extra: dict[str, JsonValue] | None = None) -> UpstreamCall:
    """flux-kontext-pro: an official model, one ``input_image`` string, one URL string out."""
    return UpstreamCall(
        model_id="flux-kontext-pro",
        provider="replicate",
        upstream=KONTEXT,
        mode="edit",
        payload={"prompt": prompt, "output_format": "png", **(extra or {})},
        images=(image(),),
        image_field="input_image",
    )


def schnell_generate(prompt: str = "a red fox", extra: dict[str, JsonValue] | None = None) -> UpstreamCall:
    """flux-schnell: an official model, ``num_outputs``, a list of URLs out."""
    return UpstreamCall(
        model_id="flux-schnell",
        provider="replicate",
        upstream=SCHNELL,
        mode="generate",
        payload={"prompt": prompt, "aspect_ratio": "16:9", **(extra or {})},
    )


def hidream_edit(fake: FakeReplicate, prompt: str = "make it blue", upstream: str | None = None) -> UpstreamCall:
    """prunaai/hidream-e1.1: a community model, only on the version route."""
    return UpstreamCall(
        model_id="hidream-e1-1",
        provider="replicate",
        upstream=upstream or f"{HIDREAM}:{fake.versions()[HIDREAM]}",
        mode="edit",
        payload={"prompt": prompt, "seed": 11},
        images=(image(),),
        image_field="image",
    )
