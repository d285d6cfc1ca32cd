"""The YAML ``providers`` block, each kind's variables and catalog defaults, assembled generically.

Nothing here names a kind: every rule goes through :mod:`providers.registry`.

- Providers: every registered kind is a provider of its own name; the YAML block adds more (a name
  that is not a kind must say ``kind``). Each entry is validated by its kind's settings model, so a
  misspelt key is refused with the closest valid one. The variables a kind declares
  (``FAL_KEY``...) are read by :class:`EnvironmentSource` for the provider named after the kind and
  win over the YAML file.
- Models: a configured model gets its provider kind's catalog defaults under the keys it leaves
  out, and must name a provider that exists.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pydantic import JsonValue, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import InitErrorDetails
from pydantic_settings import PydanticBaseSettingsSource

from app.config_errors import did_you_mean, problem, refuse, relocated
from core.provider_settings import ProviderSettings
from providers import registry


def kind_of(name: str, entry: object) -> str | None:
    """The kind a provider entry declares, or its name when that is a kind; None when neither."""
    if isinstance(entry, ProviderSettings):
        return entry.kind
    if isinstance(entry, Mapping):
        declared = entry.get("kind")
        if isinstance(declared, str):
            return declared
    return name if registry.kind(name) is not None else None


def provider_kinds(raw: object) -> dict[str, str]:
    """Provider name -> kind name, for the built-in providers and every entry of ``raw`` that says one."""
    entries: Mapping[object, object] = raw if isinstance(raw, Mapping) else {}
    found = {name: name for name in registry.kinds()}
    for name, entry in entries.items():
        kind = kind_of(str(name), entry)
        if kind is not None:
            found[str(name)] = kind
    return found


def build_providers(raw: object) -> dict[str, ProviderSettings]:
    """Every provider's settings by name, validated by its kind's settings model.

    Raises ``pydantic.ValidationError`` whose errors are located by provider name (the caller's
    field adds ``providers``).
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise refuse("providers", [problem((), "must map provider names to their settings")])
    known = list(registry.kinds())
    result: dict[str, ProviderSettings] = {}
    errors: list[InitErrorDetails] = []
    for name in sorted({*known, *(str(key) for key in raw)}):
        entry = raw.get(name)
        if isinstance(entry, ProviderSettings):
            result[name] = entry
            continue
        if entry is None:
            entry = {}
        if not isinstance(entry, Mapping):
            errors.append(problem((name,), "must be a mapping of settings (api_key, base_url, ...)"))
            continue
        kind_name = kind_of(name, entry)
        if kind_name is None:
            errors.append(
                problem(
                    (name,),
                    f"a provider not named after a kind needs 'kind' (one of: {', '.join(known)})"
                    + did_you_mean(name, known),
                )
            )
            continue
        kind = registry.kind(kind_name)
        if kind is None:
            errors.append(
                problem(
                    (name, "kind"),
                    f"unknown provider kind '{kind_name}'{did_you_mean(kind_name, known)}; known: {', '.join(known)}",
                )
            )
            continue
        values: dict[str, JsonValue] = {str(k): v for k, v in entry.items() if k != "kind"}
        try:
            result[name] = kind.settings(values)
        except ValidationError as exc:
            errors.extend(relocated(exc, (name,), kind.settings_model))
    if errors:
        raise refuse("providers", errors)
    return result


def with_kind_defaults(models: object, providers: object) -> object:
    """The raw ``models`` list with each deployment's kind defaults filled in; unknown providers refused.

    A model is one deployment written flat or ``{id, modes, deployments: [...]}``; each deployment
    gets the defaults of its provider's kind. Raises ``pydantic.ValidationError`` located at
    ``models[i].provider`` (or ``models[i].deployments[j].provider``) for a deployment naming a
    provider that does not exist (otherwise it would start, report ready, and fail every request).
    """
    if not isinstance(models, list):
        return models
    kinds = provider_kinds(providers)
    errors: list[InitErrorDetails] = []

    def fill(entry: object, where: tuple[str | int, ...]) -> object:
        provider = entry.get("provider") if isinstance(entry, Mapping) else None
        if not isinstance(entry, Mapping) or not isinstance(provider, str):
            return entry
        kind = registry.kind(kinds.get(provider, ""))
        if kind is None:
            errors.append(
                problem((*where, "provider"), f"no provider '{provider}' is configured{did_you_mean(provider, kinds)}")
            )
            return entry
        return kind.catalog_defaults.fill(entry)

    filled: list[object] = []
    for index, entry in enumerate(models):
        rows = entry.get("deployments") if isinstance(entry, Mapping) else None
        if isinstance(entry, Mapping) and isinstance(rows, list):
            deployments = [fill(row, ("models", index, "deployments", j)) for j, row in enumerate(rows)]
            filled.append({**entry, "deployments": deployments})
        else:
            filled.append(fill(entry, ("models", index)))
    if errors:
        raise refuse("models", errors)
    return filled


def declared_variables() -> dict[str, tuple[str, str]]:
    """Every variable a kind declares -> (provider name, field), e.g. ``FAL_KEY`` -> (fal, api_key)."""
    return {
        variable: (name, field)
        for name, kind in registry.kinds().items()
        for field, variable in kind.settings_model.environment.items()
    }


class EnvironmentSource(PydanticBaseSettingsSource):
    """The variables the provider kinds declare, as ``{"providers": {name: {field: value}}}``.

    An empty value is no value (docker compose passes ``FAL_KEY=`` for an unset variable).
    """

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        found: dict[str, dict[str, str]] = {}
        for variable, (name, field) in declared_variables().items():
            value = os.environ.get(variable)
            if value is not None and value.strip():
                found.setdefault(name, {})[field] = value
        return {"providers": found} if found else {}
