"""The gemini kind is configured like every kind: its two variables, the YAML block, its defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import Settings
from providers.gemini import DEFAULT_GEMINI_BASE_URL, GeminiSettings
from tests.conftest import make_settings


def test_the_gemini_provider_exists_unconfigured_by_default(tmp_path: Path) -> None:
    gemini = make_settings(tmp_path).providers["gemini"]
    assert isinstance(gemini, GeminiSettings)
    assert (gemini.base_url, gemini.key) == (DEFAULT_GEMINI_BASE_URL, None)


def test_its_variables_set_the_key_and_the_api_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "pixelgate.yaml"
    config.write_text("providers: {gemini: {api_key: from-yaml, max_retries: 1}}\n", encoding="utf-8")
    monkeypatch.setenv("PIXELGATE_CONFIG", str(config))
    monkeypatch.setenv("PIXELGATE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GEMINI_API_KEY", "AIza-from-env")
    monkeypatch.setenv("PIXELGATE_GEMINI_BASE_URL", "http://127.0.0.1:8092/v1beta")
    gemini = Settings.load().providers["gemini"]
    assert isinstance(gemini, GeminiSettings)
    assert (gemini.key, gemini.base_url, gemini.max_retries) == ("AIza-from-env", "http://127.0.0.1:8092/v1beta", 1)
