"""What a provider kind declares: its settings model, its adapter, its catalog defaults.

A kind is one folder under ``providers/`` whose ``__init__`` exposes a :class:`ProviderKind`, and
one :func:`providers.registry.register` line. The registry is the only place that names kinds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from pydantic import JsonValue

from core.model_shape import CatalogDefaults
from core.provider_settings import ProviderSettings
from providers.base import AdapterContext, ImageAdapter

SettingsT = TypeVar("SettingsT", bound=ProviderSettings)


@dataclass(frozen=True)
class ProviderKind(Generic[SettingsT]):
    """One provider kind.

    - ``name``: the kind's name; a provider of that name exists by default (``fal``, ``openai``...).
    - ``settings_model``: a :class:`ProviderSettings` subclass with the kind's fields, default URLs
      and :attr:`~ProviderSettings.environment` variables.
    - ``adapter``: builds the adapter for one configured provider of this kind.
    - ``catalog_defaults``: what a configured model served by this kind may leave out.
    """

    name: str
    settings_model: type[SettingsT]
    adapter: Callable[[SettingsT, AdapterContext], ImageAdapter]
    catalog_defaults: CatalogDefaults = field(default_factory=CatalogDefaults)

    def settings(self, values: Mapping[str, JsonValue]) -> SettingsT:
        """``values`` (a YAML ``providers`` entry, environment merged in) as this kind's settings.

        Raises ``pydantic.ValidationError`` (an unknown key, a wrong type).
        """
        return self.settings_model.model_validate({**values, "kind": self.name})

    def build(self, settings: ProviderSettings, context: AdapterContext) -> ImageAdapter:
        """The adapter for ``settings``, which must be this kind's settings model."""
        if not isinstance(settings, self.settings_model):
            raise TypeError(f"provider kind {self.name!r} needs {self.settings_model.__name__}, not {type(settings)}")
        return self.adapter(settings, context)


class Kind(Protocol):
    """A :class:`ProviderKind` of any settings model, as the registry holds it."""

    @property
    def name(self) -> str: ...

    @property
    def settings_model(self) -> type[ProviderSettings]: ...

    @property
    def catalog_defaults(self) -> CatalogDefaults: ...

    def settings(self, values: Mapping[str, JsonValue]) -> ProviderSettings: ...

    def build(self, settings: ProviderSettings, context: AdapterContext) -> ImageAdapter: ...
