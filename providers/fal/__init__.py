"""The ``fal`` provider kind: fal.ai's queue protocol, storage uploads, retries and error mapping."""

from providers.fal.adapter import FalAdapter
from providers.fal.settings import DEFAULT_FAL_BASE_URL, DEFAULT_FAL_STORAGE_URL, FalSettings
from providers.kind import ProviderKind

KIND = ProviderKind(name="fal", settings_model=FalSettings, adapter=FalAdapter)
"""fal endpoints differ in every field name, so the kind supplies no catalog defaults."""

__all__ = ["DEFAULT_FAL_BASE_URL", "DEFAULT_FAL_STORAGE_URL", "KIND", "FalAdapter", "FalSettings"]
