"""Settings: the environment variables and YAML file of the contract, validated once at start-up.

Precedence: explicit keyword arguments > environment > YAML file (``--config`` or
``PIXELGATE_CONFIG``) > defaults. Nothing else in pixelgate reads the environment: everything gets a
:class:`Settings` (or the :class:`ProviderSettings` of its provider) from :func:`app.main.create_app`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from app.upstream_http import UpstreamTransport
from core.provider_settings import ProviderSettings
from normalization.catalog import ModelEntry
from providers.fal import DEFAULT_FAL_BASE_URL, DEFAULT_FAL_STORAGE_URL
from providers.openai import DEFAULT_OPENAI_BASE_URL

MiB = 1024 * 1024


class _YamlProvider(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str | None = None
    api_key: SecretStr | None = None
    base_url: str | None = None
    storage_url: str | None = None
    upload_threshold_bytes: int | None = None
    connect_timeout_seconds: float | None = None
    read_timeout_seconds: float | None = None
    max_retries: int | None = None
    fetch_hosts: tuple[str, ...] = ()


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Every setting of the gateway. Field docs name the environment variable of the contract."""

    model_config = SettingsConfigDict(env_prefix="PIXELGATE_", extra="ignore", populate_by_name=True, frozen=True)

    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    allow_open: bool = Field(default=False)
    data_dir: Path = Field(default=Path("./data"))
    public_url: str | None = Field(default=None)
    image_ttl_seconds: int = Field(default=3600, gt=0)
    sweep_interval_seconds: float = Field(
        default=60.0,
        gt=0,
        description="how often expired hosted images are deleted",
    )
    signing_secret: SecretStr | None = Field(default=None)
    max_upload_bytes: int = Field(
        default=50 * MiB,
        gt=0,
    )
    header_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="longest wait for a request's line and headers; past it the connection is closed",
    )
    upload_idle_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="longest wait for the next chunk of a request body (408 past it)",
    )
    upload_timeout_seconds: float = Field(
        default=300.0,
        gt=0,
        description="longest time a whole request body may take to arrive (408 past it)",
    )
    max_images: int = Field(default=16, ge=1, le=64)
    max_prompt_chars: int = Field(default=32_000, ge=1)
    max_pixels: int = Field(default=64_000_000, gt=0, description="decoded-pixel cap for inputs and upstream results")
    request_timeout_seconds: float = Field(
        default=300.0,
        gt=0,
    )
    max_fanout_per_request: int = Field(
        # 10, the largest n a client may ask for: n on a one-image-per-call model is one wave of calls.
        default=10,
        ge=1,
        description="parallel upstream calls for one request",
    )
    upstream_transport: UpstreamTransport = Field(
        default="aiohttp",
        description="connection pool of the upstream client: aiohttp (flat cost per request with thousands "
        "waiting) or httpcore (httpx's own)",
    )
    max_fanout_global: int = Field(
        # An upstream call is held for its whole job (5-120 s for an image model), so this counts jobs
        # waiting upstream, not work: at 64, slow jobs ran in waves of 64. The gateway's own work is
        # bounded by max_inflight; this bounds what waiting jobs hold (40-50 KB each for a
        # generation, measured with 200 and 1,000 waiting; an edit also holds its inputs until it ends).
        default=4096,
        ge=1,
        description="upstream calls (jobs) in flight across all requests; more wait for one to end",
    )
    rate_limit_rpm: int = Field(
        default=6000,
        ge=0,
        description="image requests per minute per API key (per client address without keys); 0: off",
    )
    rate_limit_burst: int | None = Field(
        default=None,
        ge=1,
        description="token-bucket capacity; unset: one minute's worth (rate_limit_rpm)",
    )
    max_concurrent_per_key: int = Field(
        # A quarter of max_fanout_global: one key cannot take every upstream slot, and a team that
        # sends a thousand slow jobs at once is not refused (at 128, 872 of 1,000 got 429).
        default=1024,
        ge=0,
        description="image requests in flight per API key (per client address without keys); 0: off",
    )
    idempotency_ttl_seconds: int = Field(
        default=86_400,
        ge=1,
    )
    idempotency_max_entries: int = Field(
        default=10_000,
        ge=1,
    )
    idempotency_max_bytes: int = Field(
        default=256 * MiB,
        ge=0,
    )
    state_url: str | None = Field(
        default=None,
        description="redis://host:port/db to share limits and idempotency state between processes",
    )
    state_prefix: str = Field(default="pixelgate:")
    drain_timeout_seconds: int = Field(
        default=30,
        ge=0,
        description="on SIGTERM: how long in-flight requests may still run before they are cancelled",
    )
    fetch_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="whole download of a JSON edit's image_url input",
    )
    max_inflight: int = Field(
        default_factory=lambda: 2 * (os.cpu_count() or 1),
        ge=1,
        description="image requests in progress at once (admission control); the rest wait in FIFO order",
    )
    max_queued: int = Field(
        default=1024,
        ge=0,
        description="image requests waiting for a slot; one more is refused with 503 and retry-after",
    )
    queue_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        description="longest wait for a slot before a 503",
    )
    overload_retry_after_seconds: int = Field(
        default=2,
        ge=1,
        description="retry-after of the 503 sent when the gateway is at capacity",
    )
    fetch_allow_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
    )
    fal_key: SecretStr | None = Field(default=None, validation_alias=AliasChoices("FAL_KEY"))
    fal_base_url: str | None = Field(default=None, validation_alias=AliasChoices("PIXELGATE_FAL_BASE_URL"))
    fal_storage_url: str | None = Field(default=None, validation_alias=AliasChoices("PIXELGATE_FAL_STORAGE_URL"))
    openai_api_key: SecretStr | None = Field(default=None, validation_alias=AliasChoices("OPENAI_API_KEY"))
    openai_base_url: str | None = Field(default=None, validation_alias=AliasChoices("PIXELGATE_OPENAI_BASE_URL"))
    providers_yaml: dict[str, _YamlProvider] = Field(default_factory=dict, validation_alias=AliasChoices("providers"))
    models: list[ModelEntry] = Field(default_factory=list, description="user catalog entries, added or overriding")

    @field_validator(
        "fal_key",
        "openai_api_key",
        "signing_secret",
        "public_url",
        "fal_base_url",
        "fal_storage_url",
        "openai_base_url",
        "state_url",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # docker compose passes `FAL_KEY=` for an unset variable: that is no key, not an empty one.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("api_keys", "fetch_allow_hosts", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSource(settings_cls))

    def provider_settings(self) -> dict[str, ProviderSettings]:
        """Every configured upstream by name: the built-in ``fal`` and ``openai`` plus YAML ones.

        Environment variables win over the YAML ``providers`` block for the built-in two.
        """
        merged: dict[str, ProviderSettings] = {}
        env_overrides: dict[str, dict[str, Any]] = {
            "fal": {
                "api_key": self.fal_key,
                "base_url": self.fal_base_url,
                "storage_url": self.fal_storage_url,
            },
            "openai": {"api_key": self.openai_api_key, "base_url": self.openai_base_url},
        }
        defaults: dict[str, dict[str, Any]] = {
            "fal": {"base_url": DEFAULT_FAL_BASE_URL, "storage_url": DEFAULT_FAL_STORAGE_URL},
            "openai": {"base_url": DEFAULT_OPENAI_BASE_URL},
        }
        names = {"fal", "openai", "sandbox", *self.providers_yaml}
        for name in sorted(names):
            yaml_entry = self.providers_yaml.get(name, _YamlProvider())
            values: dict[str, Any] = dict(defaults.get(name, {}))
            values.update(yaml_entry.model_dump(exclude_none=True, exclude={"kind"}))
            values.update({k: v for k, v in env_overrides.get(name, {}).items() if v is not None})
            kind = yaml_entry.kind or name
            merged[name] = ProviderSettings(kind=kind, **values)
        return merged


class _YamlSource(PydanticBaseSettingsSource):
    """Reads the YAML file named by ``PIXELGATE_CONFIG`` (``pixelgate serve --config`` sets it)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get("PIXELGATE_CONFIG")
        if not path:
            return {}
        return load_yaml_config(Path(path))


def load_yaml_config(path: Path) -> dict[str, Any]:
    """Parse the contract's YAML file into settings keys; raises ``ValueError`` on a malformed file."""
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read config file {path}: {exc}") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ValueError(f"config file {path} must hold a mapping at the top level")
    return loaded
