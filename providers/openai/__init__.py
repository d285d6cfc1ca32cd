"""The ``openai`` provider kind: any OpenAI-compatible images API."""

from providers.openai.adapter import OpenAIAdapter
from providers.openai.defaults import DEFAULT_OPENAI_BASE_URL

__all__ = ["DEFAULT_OPENAI_BASE_URL", "OpenAIAdapter"]
