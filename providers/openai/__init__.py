"""The ``openai`` provider kind: any OpenAI-compatible images API."""

from providers.openai.adapter import OpenAIAdapter

__all__ = ["OpenAIAdapter"]
