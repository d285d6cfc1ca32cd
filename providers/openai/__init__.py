"""The ``openai`` provider kind: any OpenAI-compatible images API."""

from providers.kind import ProviderKind
from providers.openai.adapter import OpenAIAdapter
from providers.openai.catalog_defaults import OPENAI_SHAPE
from providers.openai.settings import DEFAULT_OPENAI_BASE_URL, OpenAISettings

KIND = ProviderKind(name="openai", settings_model=OpenAISettings, adapter=OpenAIAdapter, catalog_defaults=OPENAI_SHAPE)

__all__ = ["DEFAULT_OPENAI_BASE_URL", "KIND", "OpenAIAdapter", "OpenAISettings"]
