"""The load test with injected faults (``bench/load_faults.py``), small enough for every CI run.

300 requests at concurrency 50 against the fake fal, every fault kind injected: the run's own
checks (answers per fault, counts reconciled with the fake, no leaked secret, data dir, RSS) must
all hold. ``make load-test`` runs the same code with 2,000 requests at concurrency 100.
"""

from __future__ import annotations

from pathlib import Path

from bench.fault_plan import FAULTS, LoadConfig, plan_faults
from bench.load_faults import run

CONFIG = LoadConfig(requests=300, concurrency=50, seed=11, timeout_seconds=45, ttl_seconds=4, sweep_seconds=0.5)


def test_every_fault_kind_is_in_the_plan() -> None:
    planned = {fault for fault, _ in plan_faults(CONFIG)}
    assert planned == set(FAULTS)


def test_load_with_faults_keeps_every_invariant(tmp_path: Path) -> None:
    report = run(CONFIG, tmp_path)
    assert report.problems == []
    assert report.hung == 0
    assert sum(report.outcomes.values()) == CONFIG.requests
    expected: dict[str, int] = {}
    for fault, count in report.faults.items():
        spec = FAULTS[fault]
        key = "200 success" if spec.status == 200 else f"{spec.status} {spec.code}"
        expected[key] = expected.get(key, 0) + count
    assert report.outcomes == expected
    assert report.links_handed_out > 0 and report.files_after_sweep == 0
