"""Settings: the environment variables and YAML file of the contract, validated once at start-up.

Precedence: explicit keyword arguments > environment > YAML file (``--config`` or
``PIXELGATE_CONFIG``) > defaults. Nothing else in pixelgate reads the environment: everything gets a
:class:`Settings` (or the :class:`ProviderSettings` of its provider) from :func:`app.main.create_app`.

Provider settings are assembled generically from the provider kinds' registry
(:mod:`app.provider_config`): this module names no provider. :meth:`Settings.load` refuses, with one
line naming the key and the closest valid name, an unknown ``PIXELGATE_`` variable, an unknown key
anywhere in the YAML file, and a model naming a provider that does not exist.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from app.config_errors import did_you_mean, one_line
from app.jobs.webhooks import parse_secret
from app.provider_config import EnvironmentSource, build_providers, declared_variables, with_kind_defaults
from app.settings_sources import CONFIG_VARIABLE, AwsSource, YamlSource
from app.upstream_http import UpstreamTransport
from core.errors import ConfigError
from core.provider_settings import ProviderSettings
from normalization.catalog import Model

MiB = 1024 * 1024

ENV_PREFIX = "PIXELGATE_"
CLIENT_VARIABLES = frozenset({"PIXELGATE_URL", "PIXELGATE_API_KEY"})
"""Read by the README's client examples, not by the server; tolerated in the server's environment."""


class S3Settings(BaseModel):
    """How to reach the S3-compatible store of ``PIXELGATE_STORE_URL=s3://bucket/prefix``.

    Set by the standard ``AWS_*`` variables (:data:`AWS_VARIABLES`) or the YAML ``s3`` block. Without
    keys, the S3 client's own credential chain applies (a pod's web identity, an instance role).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoint_url: str | None = Field(default=None, description="an S3-compatible server; unset: AWS itself")
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    region: str = "us-east-1"


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Every setting of the gateway. Field docs name the environment variable of the contract."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

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
    keepalive_timeout_seconds: int = Field(
        # Longer than the clients' own idle expiry (httpx, which the OpenAI Python SDK uses: 5 s) and
        # than a load balancer's idle timeout (60 s on AWS's): the client side then always closes an
        # idle connection first. With equal timeouts (uvicorn's default is 5 s) a request sent on a
        # connection the server is closing at that moment fails on the wire (a reset, no answer).
        default=75,
        gt=0,
        description="how long an idle kept-alive client connection stays open",
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
    max_pixels: int = Field(
        default=64_000_000, gt=0, description="decoded-pixel cap per image: inputs, upstream results, exact sizes"
    )
    max_pixels_per_request: int = Field(
        default=256_000_000,
        gt=0,
        description="cap on n x W x H of an exact size pixelgate makes for one request (400 naming size past it)",
    )
    max_result_bytes: int = Field(default=50 * MiB, gt=0, description="largest upstream result image, per image")
    default_response_format: Literal["url", "b64_json"] = Field(
        default="url",
        description="response_format when a request sends none (a model may have its own default: gpt-image-*)",
    )
    request_timeout_seconds: float = Field(
        default=300.0,
        gt=0,
    )
    breaker_failures: int = Field(
        default=3,
        ge=1,
        description="consecutive failures (after retries) that make routing skip a provider for a cooling period",
    )
    breaker_cooldown_seconds: float = Field(
        default=30.0,
        gt=0,
        description="how long a failing provider is skipped before one trial request may use it again",
    )
    stream_keepalive_seconds: float = Field(
        # Below the idle timeouts of common proxies (nginx's proxy_read_timeout: 60 s, AWS's load
        # balancers: 60 s), which would otherwise cut a stream whose image takes longer to make.
        default=15.0,
        gt=0,
        description="stream=true: seconds between `: keep-alive` comments while the images are being made",
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
    store_url: str | None = Field(
        default=None,
        description="where hosted images live: file:///path or s3://bucket/prefix; unset: <data_dir>/images",
    )
    s3: S3Settings = Field(default_factory=S3Settings, description="the S3 store's endpoint and credentials")
    state_prefix: str = Field(default="pixelgate:")
    database_url: str | None = Field(
        default=None,
        description="sqlite:///path or postgresql://user@host:port/db; unset: SQLite in the data dir",
    )
    admin_key: SecretStr | None = Field(default=None, description="bearer key of /admin/*; unset: /admin/* is 404")
    key_cache_seconds: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="how long a managed key's lookup is reused; a revocation reaches every replica within it",
    )
    ledger_flush_rows: int = Field(default=500, ge=1, description="usage rows written in one batch")
    ledger_flush_ms: int = Field(default=200, ge=1, description="longest wait before pending usage rows are written")
    ledger_max_pending: int = Field(
        default=100_000,
        ge=1,
        description="usage rows held while the database is slow or away; past it new rows are dropped (logged)",
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="text (readable, one line per request) or json (one JSON object per line)",
    )
    drain_timeout_seconds: int = Field(
        default=30,
        ge=0,
        description="on SIGTERM: how long in-flight requests may still run before they are cancelled",
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="whsec_ secret that signs async-job webhooks (Standard Webhooks); unset: generated in the data dir",
    )
    webhook_retry_seconds: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [5.0, 30.0, 120.0, 600.0, 1800.0, 3600.0],
        min_length=0,
        max_length=20,
        description="waits before each retry of an undelivered webhook (comma-separated seconds); then given up",
    )
    job_ttl_seconds: int = Field(
        default=86_400,
        ge=1,
        description="how long a finished async job and its result are kept",
    )
    job_concurrency: int = Field(
        default=32,
        ge=1,
        description="async jobs one process runs at once; the others wait queued",
    )
    job_lease_seconds: float = Field(
        default=30.0,
        ge=1,
        description="a process's claim on a running job, renewed while it runs; a dead process's jobs move on after it",
    )
    job_max_input_bytes: int = Field(
        default=64 * MiB,
        gt=0,
        description="the input images of one async job, all together (they are stored in the database)",
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
    max_intake_bytes: int = Field(
        # About 2.4 times this in memory while fal submits are in flight (an input and its base64).
        default=64 * MiB,
        ge=0,
        description="bytes of large uploads (and downloaded image_url inputs) read and not yet handed to an "
        "upstream; more wait unread in FIFO order with the admission queue (one larger upload goes alone); "
        "0: no bound",
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
    providers: dict[str, ProviderSettings] = Field(
        default_factory=dict,
        validate_default=True,
        description="every upstream by name: one per registered provider kind plus the YAML ones",
    )
    models: list[Model] = Field(default_factory=list, description="user catalog entries, added or overriding")

    @model_validator(mode="before")
    @classmethod
    def _models_get_kind_defaults(cls, data: object) -> object:
        if isinstance(data, Mapping) and "models" in data:
            return {**data, "models": with_kind_defaults(data["models"], data.get("providers"))}
        return data

    @field_validator("providers", mode="before")
    @classmethod
    def _providers_by_kind(cls, value: object) -> dict[str, ProviderSettings]:
        return build_providers(value)

    @field_validator(
        "signing_secret",
        "webhook_secret",
        "public_url",
        "state_url",
        "store_url",
        "database_url",
        "admin_key",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # docker compose passes `PIXELGATE_PUBLIC_URL=` for an unset variable: that is no value, not an empty one.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("api_keys", "fetch_allow_hosts", "webhook_retry_seconds", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_secret(value.get_secret_value(), "the webhook secret")
        return value

    @field_validator("webhook_retry_seconds")
    @classmethod
    def _retry_waits(cls, value: list[float]) -> list[float]:
        if any(wait < 0 or wait > 86_400 for wait in value):
            raise ValueError("each wait must be between 0 and 86400 seconds")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            EnvironmentSource(settings_cls),
            AwsSource(settings_cls),
            YamlSource(settings_cls),
        )

    @classmethod
    def load(cls) -> Settings:
        """Settings from the environment and the YAML file; :class:`ConfigError` (one line) for a mistake."""
        check_environment(os.environ)
        try:
            return cls()
        except ValidationError as exc:
            raise ConfigError(one_line(exc, cls, ENV_PREFIX)) from None


def known_variables() -> frozenset[str]:
    """Every ``PIXELGATE_`` variable the server reads: one per setting, the config file, the kinds' own."""
    return frozenset(
        {
            *(ENV_PREFIX + name.upper() for name in Settings.model_fields),
            CONFIG_VARIABLE,
            *(name.upper() for name in declared_variables()),
        }
    )


def check_environment(environ: Mapping[str, str]) -> None:
    """Refuse an unknown ``PIXELGATE_`` variable (a misspelt one would be ignored silently otherwise)."""
    known = known_variables()
    unknown = sorted(
        name for name in environ if name.upper().startswith(ENV_PREFIX) and name.upper() not in known | CLIENT_VARIABLES
    )
    if unknown:
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        raise ConfigError(
            f"invalid configuration: unknown environment variable {unknown[0]}"
            f"{did_you_mean(unknown[0].upper(), known)}{more}"
        )
