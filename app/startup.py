"""What ``create_app`` checks before serving, and what it logs when it starts.

A mistake found here is a :class:`ConfigError` with one line naming the setting; the log names the
configured providers, the models served and how many API keys are loaded, never a secret.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import ConfigError
from core.provider_settings import ProviderSettings
from normalization.catalog import Catalog
from providers.fetch import redact_url

if TYPE_CHECKING:  # app.settings imports what this module does not need at run time
    from app.settings import Settings

log = logging.getLogger("pixelgate")


def check_data_dir(path: Path) -> None:
    """Create ``path`` if needed and prove a file can be written there; ``ConfigError`` otherwise."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check-"):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(
            f"invalid configuration: data_dir (PIXELGATE_DATA_DIR) {path} is not writable: {reason}"
        ) from None


def describe_providers(providers: Mapping[str, ProviderSettings]) -> list[str]:
    """One line per provider: name, kind, whether a key is set, base URL (without credentials or query)."""
    lines = []
    for name, conf in providers.items():
        key = "key set" if conf.key else "no key"
        url = redact_url(conf.base_url) if conf.base_url else "no base URL"
        lines.append(f"provider {name}: kind {conf.kind}, {key}, {url}")
    return lines


def log_configuration(providers: Mapping[str, ProviderSettings], catalog: Catalog, api_keys: int) -> None:
    """Log what this gateway serves (at INFO): providers, models by provider, the number of API keys."""
    for line in describe_providers(providers):
        log.info(line)
    by_provider: dict[str, list[str]] = {}
    for entry in catalog.deployments():
        by_provider.setdefault(entry.provider, []).append(entry.id)
    for provider, ids in sorted(by_provider.items()):
        log.info("models on %s: %s", provider, ", ".join(sorted(set(ids))))
    log.info("%d API key(s) loaded%s", api_keys, "" if api_keys else " (no authentication)")


def log_operations(settings: Settings, database: str) -> None:
    """Log where keys and usage live and who may read the admin API and the metrics (never a secret)."""
    admin = settings.admin_key is not None
    log.info(
        "database %s; admin API %s; /metrics %s; log format %s",
        database,
        "on" if admin else "off (no PIXELGATE_ADMIN_KEY)",
        "for the admin key" if admin else "for loopback clients",
        settings.log_format,
    )
