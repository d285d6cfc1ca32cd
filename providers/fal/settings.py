"""The fal kind's settings: its key variable, its two base URLs, when inputs go through storage, and
whether jobs are followed through fal's status stream."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from pydantic import Field

from core.provider_settings import MiB, ProviderSettings

DEFAULT_FAL_BASE_URL = "https://queue.fal.run"
DEFAULT_FAL_STORAGE_URL = "https://rest.fal.ai"


class FalSettings(ProviderSettings):
    """How to reach fal: the queue (``base_url``) and the storage REST API (``storage_url``)."""

    environment: ClassVar[Mapping[str, str]] = {
        "api_key": "FAL_KEY",
        "base_url": "PIXELGATE_FAL_BASE_URL",
        "storage_url": "PIXELGATE_FAL_STORAGE_URL",
        "status_stream": "PIXELGATE_FAL_STATUS_STREAM",
    }

    kind: str = "fal"
    base_url: str = DEFAULT_FAL_BASE_URL
    storage_url: str = Field(default=DEFAULT_FAL_STORAGE_URL, description="REST base for storage uploads")
    upload_threshold_bytes: int = Field(
        default=4 * MiB,
        ge=0,
        description="inputs above this go through fal storage, not a data URI",
    )
    status_stream: bool = Field(
        default=True,
        description="follow each job through fal's status stream (one request per job, the result as soon "
        "as fal has it); false, or a stream that fails, polls the status instead",
    )
