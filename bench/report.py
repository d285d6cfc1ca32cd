"""Statistics per cell and the markdown table of the benchmark (added latency = gateway - direct)."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.load import Samples

GATEWAYS = ("pixelgate", "litellm")


@dataclass(frozen=True)
class TargetStats:
    p50_ms: float
    p99_ms: float
    rps: float
    ok: int
    errors: int
    first_error: str | None


@dataclass(frozen=True)
class CellResult:
    workload: str
    concurrency: int
    targets: dict[str, TargetStats]

    def added(self, gateway: str, key: str) -> float:
        value: float = getattr(self.targets[gateway], key) - getattr(self.targets["direct"], key)
        return value

    def line(self) -> str:
        parts = [f"{self.workload:12} c={self.concurrency:<3}"]
        for name, s in self.targets.items():
            parts.append(f"{name} p50 {s.p50_ms:7.1f} p99 {s.p99_ms:7.1f} ms {s.rps:6.1f} rps err {s.errors}")
        return " | ".join(parts)


def _stats(samples: Samples) -> TargetStats:
    ms = sorted(x * 1000 for x in samples.latencies)
    if len(ms) >= 2:
        cuts = statistics.quantiles(ms, n=100, method="inclusive")
        p50, p99 = cuts[49], cuts[98]
    else:
        p50 = p99 = ms[0] if ms else float("nan")
    rps = len(ms) / samples.wall_seconds if samples.wall_seconds else 0.0
    return TargetStats(round(p50, 2), round(p99, 2), round(rps, 1), len(ms), samples.errors, samples.first_error)


def summarize(workload: str, concurrency: int, samples: dict[str, Samples]) -> CellResult:
    return CellResult(workload, concurrency, {name: _stats(s) for name, s in samples.items()})


def _cell(cells: list[CellResult], workload: str, concurrency: int) -> CellResult:
    return next(c for c in cells if c.workload == workload and c.concurrency == concurrency)


_RELATIONS: dict[str, Callable[[float, float], bool]] = {
    "<= 1/30": lambda ours, theirs: ours <= theirs / 30,
    "<= 1/10": lambda ours, theirs: ours <= theirs / 10,
    "<= 1/5": lambda ours, theirs: ours <= theirs / 5,
    "<= 1/4": lambda ours, theirs: ours <= theirs / 4,
    ">= 5x": lambda ours, theirs: ours >= 5 * theirs,
    ">= 1/2": lambda ours, theirs: ours >= theirs / 2,
}


def _check(label: str, ours: float, theirs: float, relation: str) -> str:
    ok = _RELATIONS[relation](ours, theirs)
    return f"| {label} | {ours:.1f} | {theirs:.1f} | {relation} | {'met' if ok else 'NOT met'} |"


def write_markdown(results: dict[str, Any], cells: list[CellResult], path: Path) -> None:
    rows = [
        "# pixelgate vs LiteLLM 1.106.2: added latency and throughput",
        "",
        f"One {results['cpus']}-core host, everything on loopback: the fake OpenAI upstream "
        "(`tests/fakes/fake_openai.py`, answers a 1024x1024 PNG as b64_json, ~2.4 MB JSON), pixelgate "
        "(1 process), LiteLLM proxy (1 worker), a minimal buffering proxy for scale (`bench/minimal_proxy.py`: "
        "raw ASGI on uvicorn, aiohttp to the upstream, no checks), the same handing each answer on as it "
        "arrives (`--stream`: streaming) and one httpx load generator (uvloop, "
        f"`Accept-Encoding: gzip, deflate`). Requests per target per cell: {results['counts']}, in {results['rounds']} "
        "interleaved rounds. Added = gateway minus direct, same cell. Input bodies: "
        + ", ".join(f"{k} {v / 1048576:.2f} MiB" for k, v in results["input_bytes"].items())
        + f". Total run {results['seconds']} s.",
        "",
        "| workload | conc | direct p50 / p99 ms | direct rps | pixelgate added p50 / p99 ms | pixelgate rps "
        "| LiteLLM added p50 / p99 ms | LiteLLM rps | minimal proxy added p50 / p99 ms | minimal rps "
        "| streaming added p50 ms | errors (pg / lite / min / str) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        d, p, lite, low = c.targets["direct"], c.targets["pixelgate"], c.targets["litellm"], c.targets["minimal"]
        rows.append(
            f"| {c.workload} | {c.concurrency} | {d.p50_ms:.1f} / {d.p99_ms:.1f} | {d.rps:.0f} "
            f"| {c.added('pixelgate', 'p50_ms'):.1f} / {c.added('pixelgate', 'p99_ms'):.1f} | {p.rps:.1f} "
            f"| {c.added('litellm', 'p50_ms'):.1f} / {c.added('litellm', 'p99_ms'):.1f} | {lite.rps:.1f} "
            f"| {c.added('minimal', 'p50_ms'):.1f} / {c.added('minimal', 'p99_ms'):.1f} | {low.rps:.1f} "
            f"| {c.added('streaming', 'p50_ms'):.1f} "
            f"| {p.errors} / {lite.errors} / {low.errors} / {c.targets['streaming'].errors} |"
        )
    rss = results["peak_rss_bytes"]
    rows += [
        "",
        f"Peak RSS (VmHWM, process tree): pixelgate {rss['pixelgate'] / 1048576:.0f} MiB, "
        f"LiteLLM {rss['litellm'] / 1048576:.0f} MiB.",
        "",
        *target_rows(results, cells),
    ]
    errors = [(c, n, s.first_error) for c in cells for n, s in c.targets.items() if s.first_error]
    if errors:
        rows += ["", "First errors:"] + [f"- {c.workload} c={c.concurrency} {n}: {e}" for c, n, e in errors]
    path.write_text("\n".join(rows) + "\n")


def target_rows(results: dict[str, Any], cells: list[CellResult]) -> list[str]:
    """The targets (issue 3's against LiteLLM, issue 17's tighter latency and its throughput against the
    direct path) as a markdown table, also the README's benchmark summary."""
    rss = results["peak_rss_bytes"]
    rows = [
        "| target | pixelgate | LiteLLM (or direct) | wanted | result |",
        "|---|---|---|---|---|",
    ]
    edit1 = _cell(cells, "edits 1 MiB", 1)
    rows.append(
        _check(
            "added p50, 1 MiB edits, c=1 (ms)",
            edit1.added("pixelgate", "p50_ms"),
            edit1.added("litellm", "p50_ms"),
            "<= 1/30",
        )
    )
    for workload in ("generations", "edits 1 MiB", "edits 4 MiB"):
        cell = _cell(cells, workload, 16)
        rows.append(
            _check(
                f"rps, {workload}, c=16, against direct",
                cell.targets["pixelgate"].rps,
                cell.targets["direct"].rps,
                ">= 1/2",
            )
        )
    for workload in ("generations", "edits 1 MiB", "edits 4 MiB"):
        cell = _cell(cells, workload, 16)
        rows.append(
            _check(f"rps, {workload}, c=16", cell.targets["pixelgate"].rps, cell.targets["litellm"].rps, ">= 5x")
        )
    for workload in ("generations", "edits 1 MiB", "edits 4 MiB"):
        cell = _cell(cells, workload, 64)
        rows.append(
            _check(
                f"added p99, {workload}, c=64 (ms)",
                cell.added("pixelgate", "p99_ms"),
                cell.added("litellm", "p99_ms"),
                "<= 1/5",
            )
        )
    rows.append(_check("peak RSS (MiB)", rss["pixelgate"] / 1048576, rss["litellm"] / 1048576, "<= 1/4"))
    rows += [
        "",
        f"For scale, in the same run: a minimal buffering proxy (`bench/minimal_proxy.py`: no checks, no "
        f"routing, no ledger) added {edit1.added('minimal', 'p50_ms'):.1f} ms at the p50 of a 1 MiB edit at c=1, "
        f"the same handing the answer on as it arrives {edit1.added('streaming', 'p50_ms'):.1f} ms, "
        f"pixelgate {edit1.added('pixelgate', 'p50_ms'):.1f} ms, LiteLLM {edit1.added('litellm', 'p50_ms'):.1f} ms "
        f"(1/30 of it: {edit1.added('litellm', 'p50_ms') / 30:.1f} ms).",
    ]
    return rows


README_START = "<!-- bench-summary:start (written by make bench) -->"
README_END = "<!-- bench-summary:end -->"


def update_readme(readme: Path, results: dict[str, Any], cells: list[CellResult]) -> None:
    """Replace the summary between the README's markers with this run's target table."""
    text = readme.read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"{readme} has no benchmark summary markers")
    summary = [
        README_START,
        f"Last `make bench` ({results['cpus']}-core host, {results['seconds']} s): "
        "full table in [bench/results/results.md](bench/results/results.md), "
        "chart in [bench/results/chart.png](bench/results/chart.png).",
        "",
        *target_rows(results, cells),
        "",
    ]
    readme.write_text(text[:start] + "\n".join(summary) + text[end:])
