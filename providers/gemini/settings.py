"""The gemini kind's settings: its key variable and its API root."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from core.provider_settings import ProviderSettings

DEFAULT_GEMINI_BASE_URL = "https://generativelanguage.googleapis.com/v1beta"


class GeminiSettings(ProviderSettings):
    """How to reach Google's Gemini API (``base_url`` is the API root, ``.../v1beta``)."""

    environment: ClassVar[Mapping[str, str]] = {
        "api_key": "GEMINI_API_KEY",
        "base_url": "PIXELGATE_GEMINI_BASE_URL",
    }

    kind: str = "gemini"
    base_url: str = DEFAULT_GEMINI_BASE_URL
