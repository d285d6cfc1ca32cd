"""Managed keys as a :class:`~app.auth.KeyResolver`: the request guards' view of the key store.

A usable key becomes a :class:`~app.auth.Principal` carrying its own limits (allowed models, rpm,
budget); a revoked or expired one raises its 401 (``key_revoked`` / ``key_expired``) so the client
is told why, and a database that cannot answer raises its 503: a good key is never refused as
unknown because the database was away.
"""

from __future__ import annotations

from decimal import Decimal

from app.auth import Principal
from app.keys.models import RefusedKey
from app.keys.store import KeyStore


class ManagedKeyResolver:
    """Resolves bearer secrets against the managed keys of ``store`` (cached as the store caches)."""

    def __init__(self, store: KeyStore) -> None:
        self._store = store

    async def resolve(self, presented_secret: str) -> Principal | None:
        found = await self._store.resolve(presented_secret)
        if found is None:
            return None
        if isinstance(found, RefusedKey):
            raise found.error()
        return Principal(
            key_id=found.id,
            name=found.name,
            models=None if found.models is None else frozenset(found.models),
            rpm=found.rpm,
            budget_usd=None if found.budget_usd is None else Decimal(str(found.budget_usd)),
        )

    async def any_usable(self) -> bool:
        """Whether at least one managed key may be used now (not revoked, not expired)."""
        return await self._store.any_usable()
