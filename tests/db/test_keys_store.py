"""The managed-key repository on each database: what is stored, how a secret resolves, revocation."""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

import pytest
from sqlalchemy import event, select, update

from app.db import Database
from app.db.schema import api_keys
from app.keys import KeyRecord, KeyStore, NewKey, RefusedKey
from core.errors import AuthenticationError, NotFoundError


async def test_a_new_key_is_stored_hashed_with_its_settings(database: Database) -> None:
    store = KeyStore(database)
    expires = int(time.time()) + 3600
    created = await store.create(
        NewKey(name="team-a", budget_usd=12.5, models=("sandbox-edit", "hidream-e1-1"), rpm=30, expires_at=expires)
    )
    assert created.key.startswith("sk-pixelgate-") and len(created.key) > 50
    assert created.id.startswith("key_") and created.key.startswith(created.prefix)

    async with database.engine.connect() as connection:
        row = (await connection.execute(select(api_keys))).one()._mapping
    assert all(created.key not in str(value) for value in row.values()), "the secret itself is stored"
    assert row["secret_hash"] == hashlib.sha256(created.key.encode()).hexdigest()
    assert row["budget_micros"] == 12_500_000 and row["spent_micros"] == 0
    assert row["models"] == ["sandbox-edit", "hidream-e1-1"]
    assert row["rpm"] == 30 and row["expires_at"] == expires and row["revoked_at"] is None

    record = await store.get(created.id)
    assert record == KeyRecord(**created.model_dump(exclude={"key"}))
    assert "key" not in record.model_dump()
    assert (await store.list_all()) == [record]


async def test_a_secret_resolves_to_its_key_and_an_unknown_one_to_none(database: Database) -> None:
    store = KeyStore(database)
    created = await store.create(NewKey(name="resolver"))
    found = await store.resolve(created.key)
    assert isinstance(found, KeyRecord) and found.id == created.id
    assert found.models is None and found.budget_usd is None and found.rpm is None
    assert await store.resolve(created.key + "x") is None
    assert await store.resolve("sk-test-pixelgate") is None


async def test_a_revoked_key_is_refused_at_once_and_revoking_again_keeps_the_first_time(database: Database) -> None:
    store = KeyStore(database, cache_seconds=1.0)
    created = await store.create(NewKey(name="to-revoke"))
    assert isinstance(await store.resolve(created.key), KeyRecord)  # cached now
    revoked = await store.revoke(created.id)
    assert revoked.revoked and revoked.revoked_at is not None
    refused = await store.resolve(created.key)
    assert refused == RefusedKey(created.id, "revoked")
    error = refused.error()
    assert isinstance(error, AuthenticationError) and error.code == "key_revoked"
    again = await store.revoke(created.id)
    assert again.revoked_at == revoked.revoked_at


async def test_a_key_revoked_through_another_replica_is_refused_within_a_second(database: Database) -> None:
    here, there = KeyStore(database), KeyStore(database)
    created = await here.create(NewKey(name="shared"))
    assert isinstance(await there.resolve(created.key), KeyRecord)
    await here.revoke(created.id)
    revoked_at = time.monotonic()
    while isinstance(await there.resolve(created.key), KeyRecord):
        assert time.monotonic() - revoked_at < 1.0, "still accepted a second after its revocation"
        await asyncio.sleep(0.02)
    assert await there.resolve(created.key) == RefusedKey(created.id, "revoked")


async def test_an_expired_key_is_refused_as_expired(database: Database) -> None:
    store = KeyStore(database, cache_seconds=1.0)
    created = await store.create(NewKey(name="short-lived", expires_at=int(time.time()) + 3600))
    assert isinstance(await store.resolve(created.key), KeyRecord)
    async with database.engine.begin() as connection:
        await connection.execute(
            update(api_keys).where(api_keys.c.id == created.id).values(expires_at=int(time.time()) - 1)
        )
    fresh = KeyStore(database)
    assert await fresh.resolve(created.key) == RefusedKey(created.id, "expired")


async def test_concurrent_lookups_of_one_secret_make_one_query(database: Database) -> None:
    store = KeyStore(database)
    created = await store.create(NewKey(name="busy"))
    queries: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "api_keys" in statement:
            queries.append(statement)

    event.listen(database.engine.sync_engine, "before_cursor_execute", count)
    try:
        results = await asyncio.gather(*(store.resolve(created.key) for _ in range(20)))
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", count)
    assert all(isinstance(result, KeyRecord) and result.id == created.id for result in results)
    assert len(queries) == 1


async def test_an_unknown_id_is_a_404(database: Database) -> None:
    store = KeyStore(database)
    for action in (store.get, store.revoke):
        with pytest.raises(NotFoundError) as caught:
            await action("key_0000000000000000")
        assert caught.value.code == "key_not_found" and caught.value.status_code == 404


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"name": ""}, "name"),
        ({"name": "x", "budget_usd": -1}, "budget_usd"),
        ({"name": "x", "models": []}, "models"),
        ({"name": "x", "rpm": 0}, "rpm"),
        ({"name": "x", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"name": "x", "owner": "me"}, "owner"),
    ],
)
def test_a_new_key_refuses_bad_fields(fields: dict[str, object], param: str) -> None:
    with pytest.raises(ValueError) as caught:
        NewKey.model_validate(fields)
    assert param in str(caught.value)


def test_expiry_accepts_iso_times_and_unix_seconds() -> None:
    assert NewKey.model_validate({"name": "x", "expires_at": "2031-01-01T00:00:00Z"}).expires_at_seconds() == 1924992000
    assert NewKey.model_validate({"name": "x", "expires_at": "2031-01-01T00:00:00"}).expires_at_seconds() == 1924992000
    assert NewKey.model_validate({"name": "x", "expires_at": 1924992000}).expires_at_seconds() == 1924992000
