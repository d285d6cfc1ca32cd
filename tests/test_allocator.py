"""The gateway's allocator upkeep: the heap trimmed from a thread of its own, unless the operator tuned glibc."""

from __future__ import annotations

import platform

import pytest

from app.allocator import start_trimming


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc_trim")
def test_glibc_gets_a_trimming_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
        monkeypatch.delenv(name, raising=False)
    thread = start_trimming(interval_seconds=3600)  # alive and idle: no trimming in the test process
    assert thread is not None and thread.daemon and thread.is_alive()


@pytest.mark.parametrize("name", ["MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"])
def test_an_operators_own_tuning_is_left_alone(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, "65536")
    assert start_trimming() is None
