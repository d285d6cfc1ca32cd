"""Shared fixtures: a live gateway, an OpenAI client on it, the fake OpenAI upstream; settings for the fakes.

The gateway has default settings; the fake OpenAI server is one per module, reset for every test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from app.settings import Settings
from tests.fakes.fake_fal import FakeFal
from tests.fakes.fake_gemini import FakeGemini
from tests.fakes.fake_openai import FakeOpenAI, FakeOpenAIServer
from tests.fakes.fake_replicate import FakeReplicate
from tests.live import LiveGateway

TEST_KEY = "sk-test-pixelgate"


def priced_sandbox_generation(model_id: str, *, per_image: float, source: str) -> dict[str, object]:
    """A catalog entry for the offline sandbox's generations with a price per image (for budget, cost
    and metrics tests)."""
    return {
        "id": model_id,
        "provider": "sandbox",
        "upstream": "sandbox/generate",
        "modes": ["generate"],
        "size": {"kind": "dimensions", "encoding": "fields", "min_side": 64, "max_side": 512, "multiple_of": 16},
        "count": {"field": "num_images", "max": 4, "seeds_per_image": True},
        "output_format": {"values": ["png"], "default": "png"},
        "price": {"per_image": per_image, "source": source},
    }


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    """Settings isolated from the developer's environment and config file."""
    values: dict[str, object] = {
        "api_keys": [TEST_KEY],
        "data_dir": data_dir,
        "signing_secret": "test-signing-secret",
    }
    values.update(overrides)
    return Settings.model_validate(values)


def upstream_settings(
    data_dir: Path,
    *,
    fal: FakeFal | None = None,
    fal_key: str | None = None,
    openai_server: FakeOpenAIServer | None = None,
    openai_key: str | None = None,
    replicate: FakeReplicate | None = None,
    replicate_token: str | None = None,
    gemini: FakeGemini | None = None,
    gemini_key: str | None = None,
    max_retries: int | None = None,
    **overrides: object,
) -> Settings:
    """``make_settings`` with the fal, OpenAI, Replicate and/or Gemini providers pointed at the given fakes.

    ``max_retries`` (when given) applies to each provider pointed at a fake; ``None`` keeps the default.
    """
    providers: dict[str, dict[str, object]] = {}
    if fal is not None:
        providers["fal"] = {"api_key": fal_key, "base_url": fal.base_url, "storage_url": fal.storage_url}
    if openai_server is not None:
        providers["openai"] = {"api_key": openai_key, "base_url": openai_server.base_url}
    if replicate is not None:
        providers["replicate"] = {"api_key": replicate_token, "base_url": replicate.base_url}
    if gemini is not None:
        providers["gemini"] = {"api_key": gemini_key, "base_url": gemini.base_url}
    if max_retries is not None:
        for entry in providers.values():
            entry["max_retries"] = max_retries
    values: dict[str, object] = {"providers": providers}
    values.update(overrides)
    return make_settings(data_dir, **values)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "PIXELGATE_CONFIG",
        "PIXELGATE_API_KEYS",
        "FAL_KEY",
        "OPENAI_API_KEY",
        "PIXELGATE_DATA_DIR",
        "PIXELGATE_PUBLIC_URL",
        "PIXELGATE_FAL_BASE_URL",
        "PIXELGATE_FAL_STATUS_STREAM",
        "PIXELGATE_OPENAI_BASE_URL",
        "REPLICATE_API_TOKEN",
        "PIXELGATE_REPLICATE_BASE_URL",
        "GEMINI_API_KEY",
        "PIXELGATE_GEMINI_BASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    settings = make_settings(tmp_path_factory.mktemp("data"))
    with LiveGateway(settings) as live:
        yield live


@pytest.fixture
def client(gateway: LiveGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.api_url, api_key=TEST_KEY, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def openai_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(FakeOpenAI()) as server:
        yield server


@pytest.fixture
def fake_openai(openai_server: FakeOpenAIServer) -> Iterator[FakeOpenAIServer]:
    openai_server.app.result = "b64_json"
    openai_server.app.revised_prompt = None
    openai_server.app.url_host = None
    openai_server.app.reset()
    yield openai_server
    openai_server.app.reset()
