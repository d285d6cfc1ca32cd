"""Where settings come from besides ``PIXELGATE_*`` variables (:mod:`app.settings` orders them): the
standard ``AWS_*`` variables for the S3 store, and the YAML file of the contract."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic_settings import PydanticBaseSettingsSource

from core.errors import ConfigError

CONFIG_VARIABLE = "PIXELGATE_CONFIG"

AWS_VARIABLES = {
    "endpoint_url": "AWS_ENDPOINT_URL",
    "access_key_id": "AWS_ACCESS_KEY_ID",
    "secret_access_key": "AWS_SECRET_ACCESS_KEY",
    "region": "AWS_REGION",
}
"""The standard AWS variables that configure the S3 store (``s3`` in the YAML file), field -> variable."""


class AwsSource(PydanticBaseSettingsSource):
    """The standard ``AWS_*`` variables as the ``s3`` block; they win over the YAML file's.

    An empty value is no value (docker compose passes ``AWS_REGION=`` for an unset variable).
    """

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        found = {
            field: value
            for field, variable in AWS_VARIABLES.items()
            if (value := os.environ.get(variable)) is not None and value.strip()
        }
        return {"s3": found} if found else {}


class YamlSource(PydanticBaseSettingsSource):
    """Reads the YAML file named by ``PIXELGATE_CONFIG`` (``pixelgate serve --config`` sets it)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get(CONFIG_VARIABLE)
        if not path:
            return {}
        return load_yaml_config(Path(path))


def load_yaml_config(path: Path) -> dict[str, Any]:
    """Parse the contract's YAML file into settings keys; :class:`ConfigError` on a malformed file."""
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        reason = " ".join(str(exc).split())
        raise ConfigError(f"invalid configuration: cannot read config file {path}: {reason}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"invalid configuration: config file {path} must hold a mapping at the top level")
    return loaded
