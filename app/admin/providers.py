"""What ``GET /admin/providers`` answers: each provider's configuration and its recent record.

The configuration half (:class:`ProviderInfo`) is fixed at start and made by :func:`provider_infos`;
the record half comes from the usage ledger (:func:`app.usage.health.provider_activity`) at each call.
A provider found in the ledger but no longer configured is listed too, as not configured. Each entry is
a :class:`ProviderHealth`; more of what the gateway knows about a provider now (its circuit breaker's
state, say) is one more field there, filled in :func:`provider_health`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict

from app.usage.health import ProviderActivity
from core.provider_settings import ProviderSettings
from normalization.catalog import Catalog
from normalization.routing.breaker import BreakerStore
from providers.fetch import redact_url


@dataclass(frozen=True)
class ProviderInfo:
    name: str
    kind: str
    key_set: bool
    base_url: str | None
    """Without credentials, query or fragment."""
    models: tuple[str, ...]
    """The catalog's models this provider serves, by id."""


def provider_infos(providers: Mapping[str, ProviderSettings], catalog: Catalog) -> tuple[ProviderInfo, ...]:
    """The configured providers, by name, with the models each serves."""
    served: dict[str, list[str]] = {}
    for entry in catalog.deployments():
        served.setdefault(entry.provider, []).append(entry.id)
    return tuple(
        ProviderInfo(
            name=name,
            kind=conf.kind,
            key_set=conf.key is not None,
            base_url=redact_url(conf.base_url) if conf.base_url else None,
            models=tuple(sorted(set(served.get(name, ())))),
        )
        for name, conf in sorted(providers.items())
    )


class Cooling(BaseModel):
    """A provider's circuit breaker when it is not closed: ``open`` until ``until`` (Unix seconds),
    or ``half_open`` (cooled down; the next request is its trial)."""

    model_config = ConfigDict(frozen=True)

    state: Literal["open", "half_open"]
    until: float | None


async def cooling_of(breakers: BreakerStore, names: Sequence[str]) -> dict[str, Cooling]:
    """Each named provider's breaker that is not closed, as the shared store says now."""
    found: dict[str, Cooling] = {}
    for name in names:
        state, left = await breakers.state(name)
        if state == "open":
            found[name] = Cooling(state="open", until=round(time.time() + left, 3))
        elif state == "half_open":
            found[name] = Cooling(state="half_open", until=None)
    return found


class ProviderHealth(BaseModel):
    """One provider as ``GET /admin/providers`` answers it. Times are Unix seconds."""

    model_config = ConfigDict(frozen=True)

    provider: str
    kind: str | None
    configured: bool
    key_set: bool
    base_url: str | None
    models: tuple[str, ...]
    requests: int
    """Requests that tried this provider within the window."""
    errors: int
    error_rate: float | None
    """``errors / requests``; None without requests."""
    last_request_at: float | None
    last_error_at: float | None
    last_error_code: str | None
    cooling: Cooling | None = None
    """The circuit breaker when routing skips (``open``) or is about to try (``half_open``) the provider;
    None when closed."""


def provider_health(
    infos: Sequence[ProviderInfo], activity: Mapping[str, ProviderActivity], cooling: Mapping[str, Cooling]
) -> list[ProviderHealth]:
    """The configured providers in name order, then any other the ledger names."""
    known = {info.name for info in infos}
    unknown = sorted(name for name in activity if name not in known)
    entries = [(info.name, info) for info in infos] + [(name, None) for name in unknown]
    return [_health(name, info, activity.get(name) or ProviderActivity(), cooling.get(name)) for name, info in entries]


def _health(name: str, info: ProviderInfo | None, record: ProviderActivity, cooling: Cooling | None) -> ProviderHealth:
    return ProviderHealth(
        provider=name,
        kind=info.kind if info else None,
        configured=info is not None,
        key_set=info.key_set if info else False,
        base_url=info.base_url if info else None,
        models=info.models if info else (),
        requests=record.requests,
        errors=record.errors,
        error_rate=record.error_rate,
        last_request_at=record.last_request_at,
        last_error_at=record.last_error_at,
        last_error_code=record.last_error_code,
        cooling=cooling,
    )
