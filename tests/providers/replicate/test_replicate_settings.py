"""The replicate kind is configured like every kind: its two variables, the YAML block, its defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.settings import Settings
from providers.replicate import DEFAULT_REPLICATE_BASE_URL, ReplicateSettings
from tests.conftest import make_settings


def test_the_replicate_provider_exists_unconfigured_by_default(tmp_path: Path) -> None:
    replicate = make_settings(tmp_path).providers["replicate"]
    assert isinstance(replicate, ReplicateSettings)
    assert (replicate.base_url, replicate.key) == (DEFAULT_REPLICATE_BASE_URL, None)
    assert (replicate.upload_threshold_bytes, replicate.wait_seconds) == (256 * 1024, 5)


def test_its_variables_set_the_token_and_the_api_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "pixelgate.yaml"
    config.write_text("providers: {replicate: {wait_seconds: 0, upload_threshold_bytes: 10}}\n", encoding="utf-8")
    monkeypatch.setenv("PIXELGATE_CONFIG", str(config))
    monkeypatch.setenv("PIXELGATE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_from_env")
    monkeypatch.setenv("PIXELGATE_REPLICATE_BASE_URL", "http://127.0.0.1:8091/v1")
    replicate = Settings.load().providers["replicate"]
    assert isinstance(replicate, ReplicateSettings)
    assert (replicate.key, replicate.base_url) == ("r8_from_env", "http://127.0.0.1:8091/v1")
    assert (replicate.wait_seconds, replicate.upload_threshold_bytes) == (0, 10)


@pytest.mark.parametrize("wait", [-1, 61])
def test_the_create_wait_is_what_prefer_allows(wait: int) -> None:
    with pytest.raises(ValidationError):
        ReplicateSettings(wait_seconds=wait)
