"""Managed keys as a :class:`~app.auth.KeyResolver`: the request guards' view of the key store.

A usable key becomes a :class:`~app.principal.Principal` carrying its own limits (allowed models, rpm,
budget); a revoked or expired one raises its 401 (``key_revoked`` / ``key_expired``) so the client
is told why, and a database that cannot answer raises its 503: a good key is never refused as
unknown because the database was away.
"""

from __future__ import annotations

from decimal import Decimal

from app.keys.models import KeyRecord, RefusedKey
from app.keys.secrets import is_key_id
from app.keys.store import KeyStore
from app.principal import Principal


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
        return principal_of_record(found)

    async def principal_of(self, key_id: str) -> Principal:
        """The principal whose requests ``key_id`` names (an async job's key, when it runs): a managed
        key with its own limits and budget, or a configured key's or an address's id as it is."""
        if not is_key_id(key_id):
            return Principal(key_id=key_id)
        return principal_of_record(await self._store.get(key_id))

    async def any_usable(self) -> bool:
        """Whether at least one managed key may be used now (not revoked, not expired)."""
        return await self._store.any_usable()


def principal_of_record(record: KeyRecord) -> Principal:
    return Principal(
        key_id=record.id,
        name=record.name,
        models=None if record.models is None else frozenset(record.models),
        rpm=record.rpm,
        budget_usd=None if record.budget_usd is None else Decimal(str(record.budget_usd)),
    )
