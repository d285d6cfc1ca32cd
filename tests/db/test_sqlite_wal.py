"""Switching a new SQLite database to WAL from several connections at once: the refusal SQLite gives
one of them instead of waiting is retried (``app.db.database.enable_wal``)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from app.db.database import enable_wal


def test_connections_switching_a_fresh_database_at_once_all_get_wal(tmp_path: Path) -> None:
    # Without the retry, about one trial in ten refuses a connection ("database is locked").
    failures: list[str] = []
    modes: list[str] = []
    for trial in range(60):
        path = tmp_path / f"trial-{trial}.db"
        start = threading.Barrier(4)

        def connect(path: Path = path, start: threading.Barrier = start) -> None:
            connection = sqlite3.connect(path, timeout=15, isolation_level=None)
            try:
                start.wait()
                enable_wal(connection.execute)
                modes.append(connection.execute("PRAGMA journal_mode").fetchone()[0])
            except sqlite3.OperationalError as exc:
                failures.append(str(exc))
            finally:
                connection.close()

        threads = [threading.Thread(target=connect) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert failures == []
    assert modes == ["wal"] * 240


def test_only_a_lock_is_retried_and_not_forever() -> None:
    calls: list[str] = []

    def locked_twice(statement: str) -> None:
        calls.append(statement)
        if len(calls) <= 2:
            raise sqlite3.OperationalError("database is locked")

    enable_wal(locked_twice)
    assert calls == ["PRAGMA journal_mode=WAL"] * 3

    def broken(statement: str) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        enable_wal(broken)

    def always_locked(statement: str) -> None:
        raise sqlite3.OperationalError("database is locked")

    with pytest.raises(sqlite3.OperationalError, match="locked"):
        enable_wal(always_locked, within=0.1)
