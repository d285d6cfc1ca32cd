"""How to reach one upstream: the settings model every provider kind's adapter is built from."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr

MiB = 1024 * 1024


class ProviderSettings(BaseModel):
    """How to reach one upstream: the connection half of an adapter (the catalog is the other half).

    ``kind`` names the adapter in the registry; a YAML provider named ``fal`` or ``openai`` has that
    kind by default, any other name must say its kind (several OpenAI-compatible upstreams can
    coexist under different names).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str
    api_key: SecretStr | None = None
    base_url: str | None = None
    storage_url: str | None = Field(default=None, description="fal only: REST base for storage uploads")
    upload_threshold_bytes: int = Field(
        default=4 * MiB,
        ge=0,
        description="fal only: inputs above this go through fal storage, not a data URI",
    )
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    read_timeout_seconds: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=4, ge=0, le=20)
    fetch_hosts: tuple[str, ...] = Field(
        default=(), description="hosts results may be downloaded from besides base_url's host"
    )
