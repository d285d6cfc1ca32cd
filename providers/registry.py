"""Provider kinds by name: the one place that names them.

Each kind is a folder under ``providers/`` exposing a :class:`~providers.kind.ProviderKind`
(settings model, adapter, catalog defaults) and one :func:`register` line below. Settings,
catalog defaults and adapters are all found through here; nothing else dispatches on a kind's or
a provider's name. Every registered kind is also a provider of the same name, configured by the
variables its settings model declares (``FAL_KEY`` for ``fal``) or by the YAML ``providers`` block.
"""

from __future__ import annotations

from collections.abc import Mapping

from core.provider_settings import ProviderSettings
from providers import fal, gemini, openai, replicate, sandbox
from providers.base import AdapterContext, ImageAdapter
from providers.kind import Kind

_KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> None:
    """Make ``kind`` available under ``kind.name``; replaces an earlier registration of that name."""
    _KINDS[kind.name] = kind


def unregister(name: str) -> None:
    """Forget the kind ``name`` (for tests that register one of their own); no error when absent."""
    _KINDS.pop(name, None)


def kinds() -> Mapping[str, Kind]:
    """Every registered kind by name, in name order."""
    return {name: _KINDS[name] for name in sorted(_KINDS)}


def kind(name: str) -> Kind | None:
    return _KINDS.get(name)


def build_adapters(providers: Mapping[str, ProviderSettings], context: AdapterContext) -> dict[str, ImageAdapter]:
    """One adapter per provider name, each built by its kind around the shared ``context``.

    A kind that is not registered is a ``KeyError``: settings are validated against this registry,
    so that means settings built by hand, not from configuration.
    """
    return {name: _KINDS[conf.kind].build(conf, context) for name, conf in providers.items()}


register(fal.KIND)
register(gemini.KIND)
register(openai.KIND)
register(replicate.KIND)
register(sandbox.KIND)
