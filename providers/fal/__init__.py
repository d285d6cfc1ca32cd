"""The fal.ai provider: queue protocol, storage uploads, retries and error mapping."""

from providers.fal.adapter import FalAdapter

__all__ = ["FalAdapter"]
