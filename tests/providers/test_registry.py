"""The provider-kind registry: the built-in kinds, and the README's ``echo`` kind registered by a test.

The echo kind is the README's "Extending pixelgate" example, executed as written: its folder's code,
one :func:`providers.registry.register` call, a model entry naming only ``id``, ``provider``,
``upstream`` and ``modes``. Nothing else in pixelgate changes for it to be configured and served.
"""

from __future__ import annotations

import base64
import types
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from app.settings import Settings, check_environment
from core.errors import ConfigError
from core.image_workers import ImageWorkers
from core.provider_settings import ProviderSettings
from normalization.catalog import load_builtin_catalog
from providers import registry
from providers.base import AdapterContext, ResultLimits
from providers.fal import FalAdapter, FalSettings
from providers.openai import OpenAIAdapter, OpenAISettings
from providers.sandbox import SandboxAdapter
from tests.conftest import TEST_KEY, make_settings
from tests.e2e.test_readme_examples import readme_example
from tests.images import decode, png_bytes
from tests.live import LiveGateway


def echo_kind() -> types.ModuleType:
    """The README's echo kind folder, executed as written (not yet registered)."""
    module = types.ModuleType("echo_kind")
    exec(compile(readme_example("echo-kind"), "README.md (echo-kind)", "exec"), module.__dict__)
    return module


@pytest.fixture
def echo() -> Iterator[types.ModuleType]:
    """The README's echo kind, registered for the test's duration."""
    module = echo_kind()
    registry.register(module.KIND)
    yield module
    registry.unregister("echo")


def test_the_registry_names_the_built_in_kinds() -> None:
    assert list(registry.kinds()) == ["fal", "gemini", "openai", "replicate", "sandbox"]
    fal = registry.kind("fal")
    assert fal is not None and fal.settings_model is FalSettings
    assert registry.kind("nope") is None


async def test_adapters_are_built_by_kind_around_the_shared_context() -> None:
    providers: dict[str, ProviderSettings] = {
        "fal": FalSettings(),
        "openai": OpenAISettings(),
        "local": OpenAISettings(base_url="http://127.0.0.1:9/v1"),
        "sandbox": ProviderSettings(kind="sandbox"),
    }
    async with httpx.AsyncClient() as client:
        context = AdapterContext(
            client=client,
            image_workers=ImageWorkers(max_workers=1),
            limits=ResultLimits(max_pixels=1234, max_bytes=5678),
        )
        adapters = registry.build_adapters(providers, context)
    assert [type(adapters[name]) for name in ("fal", "openai", "local", "sandbox")] == [
        FalAdapter,
        OpenAIAdapter,
        OpenAIAdapter,
        SandboxAdapter,
    ]
    fal = adapters["fal"]
    assert isinstance(fal, FalAdapter)
    assert (fal.results.max_pixels, fal.results.fetch_policy.max_bytes) == (1234, 5678)


async def test_a_kind_refuses_settings_of_another_kind() -> None:
    fal = registry.kind("fal")
    assert fal is not None
    async with httpx.AsyncClient() as client:
        with pytest.raises(TypeError, match="FalSettings"):
            fal.build(OpenAISettings(), AdapterContext(client=client, image_workers=ImageWorkers(max_workers=1)))


def test_every_built_in_model_names_a_registered_kind_and_every_kind_has_one() -> None:
    """Every kind serves a built-in deployment, so the wire matrix (tests/e2e/test_parameter_matrix_wire.py,
    which covers every deployment through the kind's fake upstream) covers every kind."""
    assert {entry.provider for entry in load_builtin_catalog().deployments()} == set(registry.kinds())


def test_a_registered_kind_is_a_provider_configured_like_the_built_in_ones(
    echo: types.ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert isinstance(make_settings(tmp_path).providers["echo"], echo.EchoSettings)
    monkeypatch.setenv("ECHO_API_KEY", "echo-secret")
    monkeypatch.setenv("PIXELGATE_ECHO_BASE_URL", "http://127.0.0.1:7/")
    config = tmp_path / "pixelgate.yaml"
    config.write_text("providers: {echo: {label: mine, base_url: 'http://127.0.0.1:8/'}}\n", encoding="utf-8")
    monkeypatch.setenv("PIXELGATE_CONFIG", str(config))
    conf = Settings.load().providers["echo"]
    assert isinstance(conf, echo.EchoSettings)
    assert (conf.key, conf.base_url, conf.label) == ("echo-secret", "http://127.0.0.1:7/", "mine")
    config.write_text("providers: {echo: {lable: mine}}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"unknown key 'lable' in providers.echo \(did you mean 'label'\?\)"):
        Settings.load()


def test_a_kind_declares_its_variables_known() -> None:
    environ = {"PIXELGATE_ECHO_BASE_URL": "http://127.0.0.1:7/"}
    with pytest.raises(ConfigError, match="unknown environment variable PIXELGATE_ECHO_BASE_URL"):
        check_environment(environ)
    registry.register(echo_kind().KIND)
    try:
        check_environment(environ)
    finally:
        registry.unregister("echo")


def test_the_readme_echo_kind_serves_its_minimal_model(echo: types.ModuleType, tmp_path: Path) -> None:
    models = yaml.safe_load(readme_example("echo-model"))["models"]
    settings = make_settings(tmp_path, models=models)
    source = png_bytes(40, 30)
    with (
        LiveGateway(settings) as live,
        openai.OpenAI(base_url=live.api_url, api_key=TEST_KEY, max_retries=0, timeout=30) as sdk,
    ):
        result = sdk.images.edit(
            model="echo-edit", image=("in.png", source, "image/png"), prompt="same", response_format="b64_json"
        )
    assert result.data is not None and result.data[0].b64_json is not None
    echoed = decode(base64.b64decode(result.data[0].b64_json))
    assert echoed.size == (40, 30) and echoed.tobytes() == decode(source).tobytes()
