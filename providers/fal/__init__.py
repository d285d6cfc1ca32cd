"""The fal.ai provider: queue protocol, storage uploads, retries and error mapping."""

from providers.fal.adapter import FalAdapter
from providers.fal.defaults import DEFAULT_FAL_BASE_URL, DEFAULT_FAL_STORAGE_URL

__all__ = ["DEFAULT_FAL_BASE_URL", "DEFAULT_FAL_STORAGE_URL", "FalAdapter"]
