"""Settings from the environment and the contract's YAML file (env wins), and user catalog entries."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from app.main import build_catalog
from app.settings import Settings
from providers.fal import FalSettings
from tests.live import LiveGateway

YAML = """
api_keys: [sk-yaml-a, sk-yaml-b]
providers:
  fal: {api_key: yaml-fal-key, base_url: "http://127.0.0.1:9"}
  other: {kind: openai, api_key: k, base_url: "http://127.0.0.1:10/v1"}
models:
  - id: my-edit
    provider: sandbox
    upstream: sandbox/edit
    modes: [edit]
    images: {field: image, kind: single}
    count: {field: num_images, max: 2}
    params:
      cfg_scale: {behavior: renamed, upstream: guidance, type: number, minimum: 0, maximum: 9}
"""


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "pixelgate.yaml"
    path.write_text(YAML, encoding="utf-8")
    monkeypatch.setenv("PIXELGATE_CONFIG", str(path))
    monkeypatch.setenv("PIXELGATE_DATA_DIR", str(tmp_path / "data"))
    return path


def test_yaml_sets_keys_providers_and_models(config_file: Path) -> None:
    settings = Settings()
    assert [key.get_secret_value() for key in settings.api_keys] == ["sk-yaml-a", "sk-yaml-b"]
    providers = settings.providers
    assert providers["fal"].api_key is not None and providers["fal"].api_key.get_secret_value() == "yaml-fal-key"
    assert isinstance(providers["fal"], FalSettings) and providers["fal"].storage_url == "https://rest.fal.ai"
    assert providers["other"].kind == "openai"
    catalog = build_catalog(settings)
    assert catalog.get("my-edit") is not None and catalog.get("sandbox-edit") is not None


def test_environment_wins_over_yaml(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXELGATE_API_KEYS", "sk-env-1, sk-env-2")
    monkeypatch.setenv("FAL_KEY", "env-fal-key")
    monkeypatch.setenv("PIXELGATE_FAL_BASE_URL", "http://127.0.0.1:11")
    settings = Settings()
    assert [key.get_secret_value() for key in settings.api_keys] == ["sk-env-1", "sk-env-2"]
    fal = settings.providers["fal"]
    assert fal.api_key is not None and fal.api_key.get_secret_value() == "env-fal-key"
    assert fal.base_url == "http://127.0.0.1:11"


def test_empty_environment_values_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAL_KEY", "")
    assert Settings().providers["fal"].api_key is None


def test_a_user_model_from_yaml_serves_with_its_own_table(config_file: Path, tmp_path: Path) -> None:
    from tests.images import png_bytes

    with LiveGateway(Settings()) as live:
        response = httpx.post(
            f"{live.api_url}/images/edits?dry_run=true",
            files={"image": ("a.png", png_bytes(16, 16), "image/png")},
            data={"model": "my-edit", "prompt": "x", "cfg_scale": "4.5", "n": "3"},
            headers={"Authorization": "Bearer sk-yaml-b"},
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["upstream_requests"][0]["body"]["guidance"] == 4.5
    assert len(body["upstream_requests"]) == 2  # n=3 over a native maximum of 2


def test_invalid_yaml_model_fails_at_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("models:\n  - {id: x, provider: sandbox, upstream: y, modes: [edit]}\n", encoding="utf-8")
    monkeypatch.setenv("PIXELGATE_CONFIG", str(path))
    with pytest.raises(ValueError, match="no 'images' input spec"):
        Settings()


def test_fanout_bounds_from_environment_and_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert (Settings().max_fanout_per_request, Settings().max_fanout_global) == (10, 4096)
    path = tmp_path / "pixelgate.yaml"
    path.write_text("max_fanout_per_request: 3\nmax_fanout_global: 30\n", encoding="utf-8")
    monkeypatch.setenv("PIXELGATE_CONFIG", str(path))
    assert (Settings().max_fanout_per_request, Settings().max_fanout_global) == (3, 30)
    monkeypatch.setenv("PIXELGATE_MAX_FANOUT_PER_REQUEST", "2")
    monkeypatch.setenv("PIXELGATE_MAX_FANOUT_GLOBAL", "20")
    assert (Settings().max_fanout_per_request, Settings().max_fanout_global) == (2, 20)


def test_every_setting_reads_its_prefixed_variable_and_no_bare_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_IMAGES", "2")  # a generic name another program may set: never ours
    monkeypatch.setenv("MAX_INFLIGHT", "3")
    assert Settings().max_images == 16
    monkeypatch.setenv("PIXELGATE_MAX_IMAGES", "4")
    monkeypatch.setenv("PIXELGATE_MAX_INFLIGHT", "5")
    settings = Settings()
    assert (settings.max_images, settings.max_inflight) == (4, 5)
