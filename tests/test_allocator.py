"""The gateway's allocator upkeep: the heap trimmed from a thread of its own when much of it is free,
unless the operator tuned glibc."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time

import pytest

from app.allocator import _free_heap_bytes, _rss_bytes, fix_thresholds, start_trimming
from tests.polling import wait_until

GLIBC = platform.libc_ver()[0] == "glibc"
MiB = 1024 * 1024


@pytest.fixture
def untuned(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc_trim")
@pytest.mark.usefixtures("untuned")
def test_glibc_gets_a_trimming_thread() -> None:
    trimmer = start_trimming(check_seconds=3600)  # alive and idle: no trimming in the test process
    assert trimmer is not None and trimmer.thread.daemon and trimmer.thread.is_alive()
    trimmer.stop()
    assert not trimmer.thread.is_alive()


@pytest.mark.skipif(not GLIBC or _free_heap_bytes() is None, reason="glibc 2.33's mallinfo2")
@pytest.mark.usefixtures("untuned")
def test_memory_freed_in_bulk_goes_back_to_the_system_and_a_little_stays() -> None:
    free_bytes = _free_heap_bytes()
    assert free_bytes is not None
    # No steady-schedule trims here (interval_seconds): only the burst rule is under test.
    trimmer = start_trimming(check_seconds=0.02, free_bytes_over=free_bytes() + 32 * MiB, interval_seconds=3600)
    assert trimmer is not None
    try:
        small = [bytearray(64 * 1024) for _ in range(16 * 16)]  # 16 MiB freed: under the bar, kept
        del small
        time.sleep(0.2)
        assert trimmer.trims == 0
        # 96 MiB of 64 KiB blocks (under glibc's mmap threshold: carved from the heap), then one
        # more above them, so that freeing them leaves a hole glibc's own free() does not give back.
        blocks = [bytearray(64 * 1024) for _ in range(96 * 16)]
        sentinel = bytearray(64 * 1024)
        rss_full = _rss_bytes()
        del blocks
        wait_until(lambda: trimmer.trims >= 1, what="a trim", timeout=5)
        assert _rss_bytes() < rss_full - 64 * MiB
        # The trimmed pages still count as free: idle, the next trims give nothing back, so the
        # checks slow down (0.02, 0.04, 0.08, ... s) rather than walk the heap 50 times a second.
        wait_until(lambda: trimmer.wait_seconds >= 0.16, what="the checks slowing down", timeout=5)
        trims = trimmer.trims
        time.sleep(0.3)
        assert trimmer.trims - trims <= 2
    finally:
        trimmer.stop()
    del sentinel


STEADY_CHILD = """
import json, sys, time
from app.allocator import start_trimming
trimmer = start_trimming(check_seconds=0.02, free_bytes_over=1 << 40, interval_seconds=0.05)
blocks = [bytearray(64 * 1024) for _ in range(int(sys.argv[1]) * 16)]
sentinel = bytearray(64 * 1024)  # keeps the freed blocks inside the heap, below its top
del blocks
time.sleep(0.5)  # ten checks, each past the interval
print(json.dumps({"trims": trimmer.trims}))
"""


@pytest.mark.skipif(not GLIBC or _free_heap_bytes() is None, reason="glibc 2.33's mallinfo2")
@pytest.mark.usefixtures("untuned")
@pytest.mark.parametrize(("freed_mib", "trimmed"), [(48, True), (8, False)])
def test_a_steady_load_is_trimmed_on_the_interval_beyond_what_requests_reuse(freed_mib: int, trimmed: bool) -> None:
    # A fresh process (a heap with little free besides what the child frees). 8 MiB is what a few
    # 1 MiB edits leave free between them: the next requests allocate it again, so trimming it would
    # only fault it back in; 48 MiB is a steady load's leftovers, far under the burst bar here.
    done = subprocess.run(
        [sys.executable, "-c", STEADY_CHILD, str(freed_mib)], capture_output=True, text=True, check=True, timeout=60
    )
    trims = json.loads(done.stdout)["trims"]
    assert (trims >= 1) is trimmed, trims


@pytest.mark.parametrize("name", ["MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"])
def test_an_operators_own_tuning_is_left_alone(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, "65536")
    assert start_trimming() is None
    assert fix_thresholds() is False


THRESHOLDS_CHILD = """
import ctypes, json, sys
from app.allocator import _MallInfo2, fix_thresholds
mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = _MallInfo2
fixed = fix_thresholds() if sys.argv[1] == "fix" else False
before = mallinfo2().hblks
block = bytearray(4 * 1024 * 1024)  # over glibc's first (dynamic) mmap threshold of 128 KiB
print(json.dumps({"fixed": fixed, "own_mappings": mallinfo2().hblks - before}))
"""


@pytest.mark.skipif(not GLIBC or _free_heap_bytes() is None, reason="glibc 2.33's mallinfo2")
@pytest.mark.usefixtures("untuned")
@pytest.mark.parametrize(("mode", "fixed", "own_mappings"), [("fix", True, 0), ("default", False, 1)])
def test_fixed_thresholds_keep_large_blocks_in_the_heap(mode: str, fixed: bool, own_mappings: int) -> None:
    # Process-wide, so in a child. glibc's own first threshold gives a 4 MiB block a mapping of its
    # own; pinned at 32 MiB, the block comes from the heap (no fault-in and unmap per request).
    argv = [sys.executable, "-c", THRESHOLDS_CHILD, mode]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"fixed": fixed, "own_mappings": own_mappings}
