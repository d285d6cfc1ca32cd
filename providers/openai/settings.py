"""The openai kind's settings: its key variable and base URL (any OpenAI-compatible images API)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from core.provider_settings import ProviderSettings

DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"


class OpenAISettings(ProviderSettings):
    """How to reach an OpenAI-compatible ``/images`` API.

    The variables set the provider named ``openai``; other providers of this kind (``kind: openai``
    in the YAML ``providers`` block) are configured there only.
    """

    environment: ClassVar[Mapping[str, str]] = {
        "api_key": "OPENAI_API_KEY",
        "base_url": "PIXELGATE_OPENAI_BASE_URL",
    }

    kind: str = "openai"
    base_url: str = DEFAULT_OPENAI_BASE_URL
