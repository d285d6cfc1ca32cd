"""The circuit breaker: a provider that keeps failing is skipped for a cooling period.

Per provider, three states:

- ``closed``: calls go through; ``failures`` consecutive failures (those
  :func:`~normalization.routing.failover.counts_against_provider` counts) open it;
- ``open``: skipped by routed requests until ``cooldown_seconds`` have passed since it opened
  (a forced deployment, ``provider/model``, is still called: the client asked for it);
- ``half_open``: the cooling period is over; exactly one request (across replicas, when the store is
  shared) is let through as a trial. Its success closes the breaker, its failure opens it again for
  another cooling period. While a trial runs, others still skip the provider; a trial that never
  reports (its process died) frees the trial slot after ``trial_seconds``.

A :class:`BreakerStore` keeps the state: :class:`MemoryBreakers` in this process, or the app's Redis
store shared by replicas (``PIXELGATE_STATE_URL``). Stores never raise for an unreachable backend
that they can work around; the Redis one answers ``closed`` when Redis is down (a broken breaker
must not take the gateway down with it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from normalization.metering import BreakerState

Admission = Literal["go", "trial", "skip"]
"""What a breaker says to one request: call the provider, call it as the trial, or skip it."""


@dataclass(frozen=True)
class BreakerPolicy:
    failures: int = 3
    """Consecutive failures that open the breaker."""
    cooldown_seconds: float = 30.0
    """How long an open breaker skips its provider."""
    trial_seconds: float = 300.0
    """How long one trial may hold the half-open slot before another request may try (the request deadline)."""


class BreakerStore(Protocol):
    """Where breaker state lives. ``admit`` before a routed call, ``record`` after it."""

    policy: BreakerPolicy

    async def admit(self, provider: str) -> Admission: ...

    async def record(self, provider: str, *, failed: bool) -> BreakerState:
        """Count one outcome; the provider's state after it."""
        ...

    async def state(self, provider: str) -> tuple[BreakerState, float]:
        """The provider's state and, when open, the seconds of cooling left."""
        ...

    async def abandon(self, provider: str) -> None:
        """Hand back a trial that ended without an outcome (its request was cancelled): the next
        request may try the provider at once."""
        ...


@dataclass
class _Provider:
    failures: int = 0
    open_until: float | None = None
    trial_until: float = 0.0


@dataclass
class MemoryBreakers:
    """:class:`BreakerStore` in this process (one replica, or state not shared)."""

    policy: BreakerPolicy = field(default_factory=BreakerPolicy)
    clock: Callable[[], float] = time.monotonic
    _providers: dict[str, _Provider] = field(default_factory=dict, init=False)

    async def admit(self, provider: str) -> Admission:
        entry = self._providers.get(provider)
        if entry is None or entry.open_until is None:
            return "go"
        now = self.clock()
        if now < entry.open_until or now < entry.trial_until:
            return "skip"
        entry.trial_until = now + self.policy.trial_seconds
        return "trial"

    async def record(self, provider: str, *, failed: bool) -> BreakerState:
        if not failed:
            self._providers.pop(provider, None)
            return "closed"
        entry = self._providers.setdefault(provider, _Provider())
        entry.failures += 1
        if entry.open_until is not None or entry.failures >= self.policy.failures:
            entry.open_until = self.clock() + self.policy.cooldown_seconds
            entry.trial_until = 0.0
            entry.failures = 0
            return "open"
        return "closed"

    async def abandon(self, provider: str) -> None:
        entry = self._providers.get(provider)
        if entry is not None:
            entry.trial_until = 0.0

    async def state(self, provider: str) -> tuple[BreakerState, float]:
        entry = self._providers.get(provider)
        if entry is None or entry.open_until is None:
            return "closed", 0.0
        left = entry.open_until - self.clock()
        return ("open", left) if left > 0 else ("half_open", 0.0)


_SEEN_AS: Mapping[Admission, BreakerState] = {"go": "closed", "trial": "half_open", "skip": "open"}


class ObservedBreakers:
    """A :class:`BreakerStore` with the last state this process saw of each provider, for the metrics.

    Shared stores are read asynchronously; a metrics scrape reads synchronously what the latest
    admission or outcome here showed (other replicas' changes appear once this one routes again).
    """

    def __init__(self, store: BreakerStore, providers: Mapping[str, object] | None = None) -> None:
        self.store = store
        self.policy = store.policy
        self._seen: dict[str, BreakerState] = dict.fromkeys(providers or (), "closed")

    async def admit(self, provider: str) -> Admission:
        admission = await self.store.admit(provider)
        self._seen[provider] = _SEEN_AS[admission]
        return admission

    async def record(self, provider: str, *, failed: bool) -> BreakerState:
        state = await self.store.record(provider, failed=failed)
        self._seen[provider] = state
        return state

    async def state(self, provider: str) -> tuple[BreakerState, float]:
        state, left = await self.store.state(provider)
        self._seen[provider] = state
        return state, left

    async def abandon(self, provider: str) -> None:
        await self.store.abandon(provider)

    def breaker_states(self) -> Mapping[str, BreakerState]:
        """:class:`normalization.metering.ProviderHealth`: each provider's last seen state."""
        return dict(self._seen)
