"""What :mod:`app.idempotency` keeps: stored answers and leases, behind protocols with in-process versions.

The Redis versions, shared by replicas, are in :mod:`app.redis_state`.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from fastapi.responses import Response

REPLAYED_HEADER = "idempotent-replayed"


@dataclass(frozen=True)
class StoredResponse:
    """An answer as it can be sent again: status, the headers that belong to it, body."""

    fingerprint: str
    status_code: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    expires_at: float

    @property
    def size(self) -> int:
        return len(self.body) + 256

    def render(self, *, replayed: bool) -> Response:
        headers = dict(self.headers)
        if replayed:
            headers[REPLAYED_HEADER] = "true"
        return Response(self.body, status_code=self.status_code, headers=headers)


class IdempotencyStore(Protocol):
    """Where stored answers live, by scoped key. Implementations drop entries once expired."""

    async def get(self, key: str) -> StoredResponse | None: ...

    async def put(self, key: str, response: StoredResponse) -> None: ...


class MemoryIdempotencyStore:
    """:class:`IdempotencyStore` in this process, at most ``max_entries`` answers and ``max_bytes``
    of bodies; the oldest go first. An answer larger than ``max_bytes`` is not stored."""

    def __init__(self, *, max_entries: int, max_bytes: int, clock: Callable[[], float] = time.time) -> None:
        self._entries: OrderedDict[str, StoredResponse] = OrderedDict()
        self._bytes = 0
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock

    @property
    def bytes_used(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> StoredResponse | None:
        entry = self._entries.get(key)
        if entry is not None and entry.expires_at <= self._clock():
            self._drop(key)
            return None
        return entry

    async def put(self, key: str, response: StoredResponse) -> None:
        self._drop(key)
        if response.size > self.max_bytes:
            return
        self._entries[key] = response
        self._bytes += response.size
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry.size


@dataclass(frozen=True)
class Claim:
    """What :meth:`Leases.claim` found: ``token`` when the lease is now ours, else the holder's fingerprint."""

    token: str | None
    holder: str | None = None


class Leases(Protocol):
    """Who runs the request of a scoped key right now, across processes. Expiring, renewed by the holder."""

    async def claim(self, key: str, fingerprint: str, ttl_seconds: float) -> Claim: ...

    async def renew(self, key: str, token: str, ttl_seconds: float) -> bool: ...

    async def release(self, key: str, token: str) -> None: ...

    async def holder(self, key: str) -> str | None:
        """The fingerprint of the request holding the lease, None when nobody does."""
        ...


class LocalLeases:
    """:class:`Leases` for one process: its map of running requests already admits one per key."""

    async def claim(self, key: str, fingerprint: str, ttl_seconds: float) -> Claim:
        return Claim(token="local")

    async def renew(self, key: str, token: str, ttl_seconds: float) -> bool:
        return True

    async def release(self, key: str, token: str) -> None:
        return None

    async def holder(self, key: str) -> str | None:
        return None
