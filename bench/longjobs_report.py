"""The long-job benchmark's figures: one :class:`Cell` per run, its markdown table and README section.

A cell joins what the client saw (:class:`~bench.longjobs_client.Shot`) with what the fake fal
recorded per job (its completion time and the requests it got) through the index in the prompt.
Completion lag is the client's receive time minus the fake's completion time, both read from the
system-wide monotonic clock.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.longjobs_client import ClientOverhead, Shot, index_of

MiB = 1024 * 1024
README_START = "<!-- longjobs-summary:start (written by make bench-longjobs) -->"
README_END = "<!-- longjobs-summary:end -->"


def percentile(values: list[float], q: int) -> float:
    """The q-th percentile (inclusive method); NaN for no values."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(sorted(values), n=100, method="inclusive")[q - 1]


@dataclass
class Cell:
    """One run of the benchmark: its parameters and every figure the report shows."""

    label: str
    kind: str
    jobs: int
    job_seconds: float
    spread_seconds: float
    response_format: str
    transport: str
    photo_sized: bool = False
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    client_p50_s: float = float("nan")
    client_p99_s: float = float("nan")
    lag_p50_ms: float = float("nan")
    lag_p99_ms: float = float("nan")
    lag_max_ms: float = float("nan")
    submit_delay_p50_ms: float = float("nan")
    submit_delay_p99_ms: float = float("nan")
    jobs_seen_upstream: int = 0
    submits_per_job: float = float("nan")
    polls_per_job: float = float("nan")
    streams_per_job: float = 0.0
    """Status streams opened per job (runs stored before the gateway followed fal's stream have none)."""
    results_per_job: float = float("nan")
    cdn_per_job: float = float("nan")
    uploads_per_job: float = float("nan")
    answer_bytes_mean: float = 0.0
    gateway_peak_rss_mib: float = 0.0
    gateway_rss_waiting_mib: float = 0.0
    gateway_rss_idle_mib: float = 0.0
    gateway_cpu_seconds: float = 0.0
    fake_cpu_seconds: float = 0.0
    client_cpu_seconds: float = 0.0
    client_lag_p99_ms: float = 0.0
    client_lag_max_ms: float = 0.0
    wall_seconds: float = 0.0
    load_before: str = ""
    load_after: str = ""
    settings: dict[str, str] = field(default_factory=dict)


def fill(cell: Cell, shots: list[Shot], fake: dict[str, Any], overhead: ClientOverhead) -> None:
    """Client-side and fake-side figures of ``cell``, computed from the run's raw records."""
    jobs = {i: j for j in fake["jobs"] if (i := index_of(j["prompt"])) is not None}
    ok = [s for s in shots if s.ok]
    cell.ok = len(ok)
    cell.errors = dict(Counter(f"{s.status} {s.code}" for s in shots if not s.ok))
    cell.client_p50_s = round(percentile([s.received_at - s.sent_at for s in ok], 50), 2)
    cell.client_p99_s = round(percentile([s.received_at - s.sent_at for s in ok], 99), 2)
    lags = [(s.received_at - jobs[s.index]["completes_at"]) * 1000 for s in ok if s.index in jobs]
    cell.lag_p50_ms = round(percentile(lags, 50), 1)
    cell.lag_p99_ms = round(percentile(lags, 99), 1)
    cell.lag_max_ms = round(max(lags, default=float("nan")), 1)
    delays = [(jobs[s.index]["submitted"] - s.sent_at) * 1000 for s in shots if s.index in jobs]
    cell.submit_delay_p50_ms = round(percentile(delays, 50), 1)
    cell.submit_delay_p99_ms = round(percentile(delays, 99), 1)
    seen = list(jobs.values())
    cell.jobs_seen_upstream = len(seen)
    if seen:
        cell.submits_per_job = round(fake["bench_attempts"] / len(seen), 2)
        cell.polls_per_job = round(statistics.fmean(j["status_polls"] for j in seen), 2)
        cell.streams_per_job = round(statistics.fmean(j.get("status_streams", 0) for j in seen), 2)
        cell.results_per_job = round(statistics.fmean(j["results"] for j in seen), 2)
        cell.cdn_per_job = round(statistics.fmean(j["cdn_fetches"] for j in seen), 2)
        cell.uploads_per_job = round(fake["bench_uploads"] / len(seen), 2)
    cell.answer_bytes_mean = round(statistics.fmean(s.body_bytes for s in ok), 0) if ok else 0.0
    cell.client_cpu_seconds = round(overhead.cpu_seconds, 2)
    cell.client_lag_p99_ms = round(percentile(overhead.lag_ms, 99), 1)
    cell.client_lag_max_ms = round(max(overhead.lag_ms, default=0.0), 1)


def _errors(cell: Cell) -> str:
    return ", ".join(f"{n} x {what}" for what, n in sorted(cell.errors.items())) or "none"


def table(cells: list[Cell]) -> str:
    """The markdown table of ``cells``, one row each."""
    head = (
        "| run | ok | errors | client p50 / p99 s | completion lag p50 / p99 ms | status requests / job |"
        " upstream requests / job | peak RSS MiB | RSS waiting MiB | gateway CPU s |\n"
        "|---|---:|---|---|---|---:|---|---:|---:|---:|\n"
    )
    rows = []
    for c in cells:
        upstream = (
            f"{c.submits_per_job:g} submit, {c.streams_per_job:g} status stream, {c.polls_per_job:g} status poll,"
            f" {c.results_per_job:g} result, {c.cdn_per_job:g} CDN"
        )
        status_requests = round(c.streams_per_job + c.polls_per_job, 2)
        rows.append(
            f"| {c.label} | {c.ok}/{c.jobs} | {_errors(c)} | {c.client_p50_s:.2f} / {c.client_p99_s:.2f}"
            f" | {c.lag_p50_ms:.0f} / {c.lag_p99_ms:.0f} | {status_requests:g} | {upstream}"
            f" | {c.gateway_peak_rss_mib:.0f} | {c.gateway_rss_waiting_mib:.0f} | {c.gateway_cpu_seconds:.1f} |"
        )
    return head + "\n".join(rows) + "\n"


def overhead_table(cells: list[Cell]) -> str:
    head = (
        "| run | client CPU s | client loop lag p99 / max ms | wall s | load average before -> after |\n"
        "|---|---:|---|---:|---|\n"
    )
    rows = [
        f"| {c.label} | {c.client_cpu_seconds:.1f} | {c.client_lag_p99_ms:.1f} / {c.client_lag_max_ms:.1f}"
        f" | {c.wall_seconds:.0f} | {c.load_before} -> {c.load_after} |"
        for c in cells
    ]
    return head + "\n".join(rows) + "\n"


def load_cells(path: Path) -> dict[str, Cell]:
    if not path.exists():
        return {}
    raw = json.loads(path.read_text())
    return {label: Cell(**values) for label, values in raw["cells"].items()}


def save_cells(path: Path, cells: dict[str, Cell]) -> None:
    path.write_text(json.dumps({"cells": {k: asdict(v) for k, v in cells.items()}}, indent=2) + "\n")


def write_markdown(path: Path, cells: dict[str, Cell], intro: str) -> None:
    """``longjobs.md``: the runs of the target matrix first, then any other (transport comparison)."""
    targets = [c for c in cells.values() if c.label.startswith("target")]
    others = [c for c in cells.values() if not c.label.startswith("target")]
    parts = [intro, "## Targets (default settings)\n", table(targets)]
    if others:
        parts += ["\n## Other runs\n", table(others)]
    parts += ["\n## The client's own overhead\n", overhead_table([*targets, *others])]
    path.write_text("\n".join(parts))


def update_readme(readme: Path, summary: str) -> None:
    """Replace the text between the long-job markers of the README (they must exist)."""
    text = readme.read_text()
    start, end = text.index(README_START) + len(README_START), text.index(README_END)
    readme.write_text(text[:start] + "\n" + summary.strip() + "\n" + text[end:])
