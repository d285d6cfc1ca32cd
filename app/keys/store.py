"""The managed-key repository: create, list, get, revoke, and resolve a presented secret.

The database is the truth for every replica. :meth:`KeyStore.resolve` (the per-request lookup)
reuses a lookup for at most ``cache_seconds`` (0.5 s by default, at most 1 s): a key revoked
through another replica is refused here within that time, one revoked through this one at once.
Concurrent lookups of the same secret share one query. Expiry is checked on every call against the
clock, not cached.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select, update

from app.db import Database, unavailable_as_503
from app.db.schema import api_keys
from app.keys.models import CreatedKey, KeyRecord, NewKey, RefusedKey, micros_to_usd, usd_to_micros
from app.keys.secrets import display_prefix, is_key_id, new_key_id, new_secret, secret_hash
from core.errors import NotFoundError

MAX_CACHED = 10_000
"""Lookups kept; past it the cache starts over (random wrong secrets cannot grow it without bound)."""


@dataclass(frozen=True)
class _Cached:
    until: float
    record: KeyRecord | None


class KeyStore:
    """Managed keys in ``database``; see the module docstring for the caching of :meth:`resolve`."""

    def __init__(self, database: Database, *, cache_seconds: float = 0.5) -> None:
        self._database = database
        self._cache_seconds = cache_seconds
        self._cache: dict[str, _Cached] = {}
        self._lookups: dict[str, asyncio.Future[KeyRecord | None]] = {}
        self._usable: tuple[float, bool] | None = None

    async def create(self, new: NewKey) -> CreatedKey:
        """Store a new key; the answer carries its secret, which is not kept anywhere."""
        secret = new_secret()
        row = {
            "id": new_key_id(),
            "name": new.name,
            "secret_hash": secret_hash(secret),
            "prefix": display_prefix(secret),
            "created": int(time.time()),
            "budget_micros": None if new.budget_usd is None else usd_to_micros(new.budget_usd),
            "spent_micros": 0,
            "models": None if new.models is None else list(new.models),
            "rpm": new.rpm,
            "expires_at": new.expires_at_seconds(),
            "revoked_at": None,
        }
        with unavailable_as_503():
            async with self._database.engine.begin() as connection:
                await connection.execute(api_keys.insert().values(**row))
        self._usable = None
        return CreatedKey(**_record(row).model_dump(), key=secret)

    async def list_all(self) -> list[KeyRecord]:
        """Every key, revoked ones included, oldest first."""
        with unavailable_as_503():
            async with self._database.engine.connect() as connection:
                rows = (await connection.execute(select(api_keys).order_by(api_keys.c.created, api_keys.c.id))).all()
        return [_record(row._mapping) for row in rows]

    async def get(self, key_id: str) -> KeyRecord:
        """The key ``key_id``; raises ``NotFoundError`` (404 ``key_not_found``)."""
        _check_id(key_id)
        with unavailable_as_503():
            async with self._database.engine.connect() as connection:
                row = (await connection.execute(select(api_keys).where(api_keys.c.id == key_id))).first()
        if row is None:
            raise _not_found(key_id)
        return _record(row._mapping)

    async def revoke(self, key_id: str) -> KeyRecord:
        """Revoke ``key_id`` (idempotent: a second revocation keeps the first time); 404 if unknown.

        Refused at once by this process; other replicas refuse it once their lookup is older than
        ``cache_seconds``.
        """
        _check_id(key_id)
        with unavailable_as_503():
            async with self._database.engine.begin() as connection:
                await connection.execute(
                    update(api_keys)
                    .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                    .values(revoked_at=int(time.time()))
                )
        self._cache.clear()
        self._usable = None
        return await self.get(key_id)

    async def resolve(self, secret: str) -> KeyRecord | RefusedKey | None:
        """A presented secret's key: the record if usable, :class:`RefusedKey` if revoked or expired,
        None if no managed key has this secret. Raises 503 ``database_unavailable`` when the
        database cannot answer (never a silent 401 for a good key)."""
        digest = secret_hash(secret)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached.until > now:
            record = cached.record
        else:
            record = await self._lookup(digest)
        if record is None:
            return None
        if record.revoked:
            return RefusedKey(record.id, "revoked")
        if record.expired(time.time()):
            return RefusedKey(record.id, "expired")
        return record

    async def any_usable(self) -> bool:
        """Whether any key is neither revoked nor expired, asked at most once per ``cache_seconds``.

        Whether the gateway is open (no key of any kind configured) depends on it: creating the
        first key closes it, within the cache period, on every replica.
        """
        now = time.monotonic()
        if self._usable is not None and self._usable[0] > now:
            return self._usable[1]
        wall = int(time.time())
        query = (
            select(api_keys.c.id)
            .where(api_keys.c.revoked_at.is_(None))
            .where(or_(api_keys.c.expires_at.is_(None), api_keys.c.expires_at > wall))
            .limit(1)
        )
        with unavailable_as_503():
            async with self._database.engine.connect() as connection:
                usable = (await connection.execute(query)).first() is not None
        self._usable = (time.monotonic() + self._cache_seconds, usable)
        return usable

    async def _lookup(self, digest: str) -> KeyRecord | None:
        # The query is a task of its own: a caller that is cancelled (its client left) does not
        # cancel the lookup the others wait for.
        task = self._lookups.get(digest)
        if task is None:
            task = asyncio.ensure_future(self._query(digest))
            self._lookups[digest] = task
            task.add_done_callback(lambda done: self._settled(digest, done))
        return await asyncio.shield(task)

    def _settled(self, digest: str, task: asyncio.Future[KeyRecord | None]) -> None:
        self._lookups.pop(digest, None)
        if task.cancelled() or task.exception() is not None or self._cache_seconds <= 0:
            return
        if len(self._cache) >= MAX_CACHED:
            self._cache.clear()
        self._cache[digest] = _Cached(time.monotonic() + self._cache_seconds, task.result())

    async def _query(self, digest: str) -> KeyRecord | None:
        with unavailable_as_503():
            async with self._database.engine.connect() as connection:
                row = (await connection.execute(select(api_keys).where(api_keys.c.secret_hash == digest))).first()
        return None if row is None else _record(row._mapping)


def _check_id(key_id: str) -> None:
    """Refuse what cannot be an id before asking the database (which may choke on it, e.g. on a NUL)."""
    if not is_key_id(key_id):
        raise _not_found(key_id)


def _not_found(key_id: str) -> NotFoundError:
    shown = key_id if is_key_id(key_id) else key_id[:40].encode("ascii", "backslashreplace").decode()
    return NotFoundError(f"no key with id '{shown}'", param="id", code="key_not_found")


def _record(row: Mapping[Any, Any]) -> KeyRecord:
    """A database row (or the row just inserted) as the record the API answers."""
    budget = row["budget_micros"]
    models = row["models"]
    return KeyRecord(
        id=row["id"],
        name=row["name"],
        prefix=row["prefix"],
        created=row["created"],
        budget_usd=None if budget is None else micros_to_usd(budget),
        spent_usd=micros_to_usd(row["spent_micros"]),
        models=None if models is None else tuple(models),
        rpm=row["rpm"],
        expires_at=row["expires_at"],
        revoked=row["revoked_at"] is not None,
        revoked_at=row["revoked_at"],
    )
