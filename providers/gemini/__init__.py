"""The ``gemini`` provider kind: Google's Gemini API ``generateContent`` for its image models."""

from providers.gemini.adapter import GeminiAdapter
from providers.gemini.catalog_defaults import GEMINI_SHAPE
from providers.gemini.settings import DEFAULT_GEMINI_BASE_URL, GeminiSettings
from providers.kind import ProviderKind

KIND = ProviderKind(name="gemini", settings_model=GeminiSettings, adapter=GeminiAdapter, catalog_defaults=GEMINI_SHAPE)

__all__ = ["DEFAULT_GEMINI_BASE_URL", "KIND", "GeminiAdapter", "GeminiSettings"]
