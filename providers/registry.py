"""Provider kinds by name: a dict from kind to adapter factory, filled by explicit registration.

``build_adapters`` makes one adapter per configured provider (``fal``, ``openai``, ``sandbox`` and
every YAML-named one) around the resources the app shares (its single HTTP client, its Pillow pool).
Adding a provider kind is one module and one :func:`register` line below; nothing dispatches on
provider names anywhere else.
"""

from __future__ import annotations

from collections.abc import Mapping

from core.provider_settings import ProviderSettings
from providers.base import AdapterFactory, AdapterResources, ImageAdapter
from providers.fal import FalAdapter
from providers.openai import OpenAIAdapter
from providers.sandbox import SandboxAdapter

_FACTORIES: dict[str, AdapterFactory] = {}


class UnknownProviderKindError(ValueError):
    """A configured provider names a kind no adapter is registered for (a start-up error)."""


def register(kind: str, factory: AdapterFactory) -> None:
    """Make ``kind`` available to provider settings; replaces an earlier registration."""
    _FACTORIES[kind] = factory


def unregister(kind: str) -> None:
    """Forget ``kind`` (tests that register a kind of their own remove it again)."""
    _FACTORIES.pop(kind, None)


def registered_kinds() -> list[str]:
    return sorted(_FACTORIES)


def build_adapters(providers: Mapping[str, ProviderSettings], resources: AdapterResources) -> dict[str, ImageAdapter]:
    """One adapter per provider name. Raises :class:`UnknownProviderKindError` for unknown kinds."""
    adapters: dict[str, ImageAdapter] = {}
    for name, conf in providers.items():
        factory = _FACTORIES.get(conf.kind)
        if factory is None:
            raise UnknownProviderKindError(
                f"provider {name!r} has kind {conf.kind!r}; known kinds: {', '.join(registered_kinds())}"
            )
        adapters[name] = factory(conf, resources)
    return adapters


register("sandbox", SandboxAdapter.from_settings)
register("fal", FalAdapter.from_settings)
register("openai", OpenAIAdapter.from_settings)
