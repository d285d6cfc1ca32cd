"""The ``replicate`` provider kind: Replicate's predictions (official and version routes), Files API, retries."""

from providers.kind import ProviderKind
from providers.replicate.adapter import ReplicateAdapter
from providers.replicate.catalog_defaults import REPLICATE_SHAPE
from providers.replicate.settings import DEFAULT_REPLICATE_BASE_URL, ReplicateSettings

KIND = ProviderKind(
    name="replicate", settings_model=ReplicateSettings, adapter=ReplicateAdapter, catalog_defaults=REPLICATE_SHAPE
)

__all__ = ["DEFAULT_REPLICATE_BASE_URL", "KIND", "ReplicateAdapter", "ReplicateSettings"]
