"""The replicate kind's settings: its token variable, its API root, inline-input size, the create wait."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from pydantic import Field

from core.provider_settings import ProviderSettings

DEFAULT_REPLICATE_BASE_URL = "https://api.replicate.com/v1"
DATA_URI_MAX_BYTES = 256 * 1024
"""Replicate's advice: "Use a data URL when ... you have a small file <= 256kb" (OpenAPI ``input``)."""


class ReplicateSettings(ProviderSettings):
    """How to reach Replicate's HTTP API (``base_url`` is the API root, ``.../v1``)."""

    environment: ClassVar[Mapping[str, str]] = {
        "api_key": "REPLICATE_API_TOKEN",
        "base_url": "PIXELGATE_REPLICATE_BASE_URL",
    }

    kind: str = "replicate"
    base_url: str = DEFAULT_REPLICATE_BASE_URL
    upload_threshold_bytes: int = Field(
        default=DATA_URI_MAX_BYTES,
        ge=0,
        description="input images above this go through Replicate's Files API, not a data URI",
    )
    wait_seconds: int = Field(
        default=5,
        ge=0,
        le=60,
        description="Prefer: wait=N on create (0: no Prefer header, poll from the start); a client that "
        "leaves during the wait has its prediction cancelled once the create answers",
    )
