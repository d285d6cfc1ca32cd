"""How to reach one upstream: the settings model every provider kind's adapter is built from."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr

MiB = 1024 * 1024


class ProviderSettings(BaseModel):
    """How to reach one upstream: the connection half of an adapter (the catalog is the other half).

    Each provider kind subclasses this in its own folder, adding its fields (fal: ``storage_url``)
    and its default URLs, and naming in :attr:`environment` the variables that set them for the
    provider named after the kind. ``kind`` names the kind in the registry; a provider named after
    a kind has that kind, any other name must say its kind (several OpenAI-compatible upstreams can
    coexist under different names).

    Unknown keys are refused (``extra="forbid"``), so a misspelt key in the YAML ``providers``
    block fails at start instead of being ignored.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    environment: ClassVar[Mapping[str, str]] = {}
    """Field name -> environment variable that sets it for the provider named after the kind.

    Those variables win over the YAML file, as every variable does.
    """

    kind: str
    api_key: SecretStr | None = None
    base_url: str | None = None
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    read_timeout_seconds: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=4, ge=0, le=20)
    fetch_hosts: tuple[str, ...] = Field(
        default=(), description="hosts results may be downloaded from besides base_url's host"
    )

    @property
    def key(self) -> str | None:
        """The API key as text, or None when unset or empty."""
        if self.api_key is None:
            return None
        return self.api_key.get_secret_value() or None
