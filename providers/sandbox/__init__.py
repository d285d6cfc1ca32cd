"""The ``sandbox`` provider kind: offline, deterministic images for development and client CI."""

from core.provider_settings import ProviderSettings
from providers.kind import ProviderKind
from providers.sandbox.adapter import SandboxAdapter

KIND = ProviderKind(name="sandbox", settings_model=ProviderSettings, adapter=SandboxAdapter)
"""No key, no URL, no catalog defaults: ``normalization/catalog/sandbox.yaml`` spells its two models."""

__all__ = ["KIND", "SandboxAdapter"]
