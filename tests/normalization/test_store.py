"""DirectoryStore: names, atomic writes, expiry, sweeping, traversal, health."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from typing import cast

import pytest

from core.errors import NotFoundError
from normalization.hosting.store import DirectoryStore, StoreHealth, is_valid_name

TTL = 3600


@pytest.fixture
def store(tmp_path: Path) -> DirectoryStore:
    return DirectoryStore(tmp_path / "images", ttl_seconds=TTL)


def age(path: Path, seconds: float) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past))


async def test_put_then_get_round_trips(store: DirectoryStore) -> None:
    before = time.time()
    stored = await store.put(b"\x89PNG fake", "image/png")
    assert is_valid_name(stored.name) and stored.name.endswith(".png")
    assert stored.size == 9 and stored.media_type == "image/png"
    assert before + TTL - 1 <= stored.expires_at <= time.time() + TTL + 1
    found = await store.get(stored.name, now=time.time())
    assert found.path.read_bytes() == b"\x89PNG fake"
    assert found.path.parent == store.root
    assert (found.etag, found.size, found.media_type) == (stored.etag, 9, "image/png")
    assert stat.S_IMODE(found.path.stat().st_mode) == 0o600
    assert sorted(p.name for p in store.root.iterdir()) == [stored.name]  # no temporary file left


async def test_names_are_unguessable_and_distinct(store: DirectoryStore) -> None:
    names = {(await store.put(b"x", "image/webp")).name for _ in range(20)}
    assert len(names) == 20
    assert all(len(name) == len("x" * 32 + ".webp") for name in names)
    assert (await store.put(b"x", "image/jpeg")).name.endswith(".jpeg")


@pytest.mark.parametrize(
    "name",
    [
        "../signing.key",
        "..",
        "/etc/passwd",
        "a/b.png",
        "..%2f..%2fsigning.key",
        "%2e%2e%2fx.png",
        "A" * 32 + ".png\x00",
        "A" * 32 + ".png/",
        "A" * 32 + ".png\n",
        "A" * 31 + ".png",
        "A" * 32 + ".exe",
        "A" * 30 + "..png",
        "",
    ],
)
async def test_traversal_and_malformed_names_are_rejected(store: DirectoryStore, name: str) -> None:
    assert not is_valid_name(name)
    with pytest.raises(NotFoundError):
        await store.get(name, now=time.time())
    with pytest.raises(NotFoundError):
        await store.delete(name)


async def test_a_valid_but_unknown_name_is_not_found(store: DirectoryStore) -> None:
    with pytest.raises(NotFoundError) as caught:
        await store.get("A" * 32 + ".png", now=time.time())
    assert caught.value.status_code == 404


async def test_expired_image_is_gone_before_the_sweep(store: DirectoryStore) -> None:
    stored = await store.put(b"data", "image/gif")
    with pytest.raises(NotFoundError):
        await store.get(stored.name, now=stored.expires_at)
    assert (await store.get(stored.name, now=stored.expires_at - 1)).name == stored.name


async def test_sweep_deletes_expired_images_and_stray_temporary_files(store: DirectoryStore) -> None:
    old = await store.put(b"old", "image/png")
    fresh = await store.put(b"fresh", "image/png")
    age(store.root / old.name, TTL + 5)
    stray = store.root / ".tmp-crashed"
    stray.write_bytes(b"partial")
    age(stray, 3600)
    writing = store.root / ".tmp-in-progress"
    writing.write_bytes(b"partial")
    foreign = store.root / "README"
    foreign.write_text("not ours")
    age(foreign, 10 * TTL)

    assert await store.sweep(time.time()) == 1
    remaining = sorted(p.name for p in store.root.iterdir())
    assert remaining == sorted([fresh.name, ".tmp-in-progress", "README"])
    assert await store.sweep(time.time()) == 0
    assert await store.sweep(time.time() + TTL + 1) == 1


async def test_delete_removes_and_tolerates_missing(store: DirectoryStore) -> None:
    stored = await store.put(b"x", "image/avif")
    await store.delete(stored.name)
    await store.delete(stored.name)
    with pytest.raises(NotFoundError):
        await store.get(stored.name, now=time.time())


async def test_failed_write_leaves_no_file(store: DirectoryStore) -> None:
    with pytest.raises(TypeError):
        await store.put(cast(bytes, "not bytes"), "image/png")
    assert list(store.root.iterdir()) == []


def test_ttl_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        DirectoryStore(tmp_path, ttl_seconds=0)


async def test_health_is_a_write_probe_that_leaves_nothing_behind(store: DirectoryStore) -> None:
    assert await store.health() == StoreHealth(writable=True)
    assert list(store.root.iterdir()) == []


async def test_health_names_why_the_store_cannot_write_without_its_path(store: DirectoryStore) -> None:
    store.root.rmdir()
    store.root.write_bytes(b"")  # a file where the directory was: every write fails (ENOTDIR)
    health = await store.health()
    assert not health.writable and health.problem is not None
    assert "(ENOTDIR)" in health.problem and str(store.root) not in health.problem
    with pytest.raises(OSError):
        await store.put(b"x", "image/png")
