"""``make bench``: pixelgate and LiteLLM side by side in front of the same fast fake upstream.

Starts the fake OpenAI upstream (``tests.fakes.fake_openai``), pixelgate (``pixelgate serve``,
built-in ``gpt-image-1`` on the ``openai`` provider pointed at the fake), LiteLLM proxy
1.106.2 (``bench/start_litellm.sh``, its own venv) and, for scale, a minimal buffering proxy
(``bench.minimal_proxy``) and the same handing answers on as they arrive (``--stream``), then for
each workload (generations, 1 MiB and 4 MiB edits) and concurrency (1, 16, 64) sends a fixed number
of requests to each target (direct, pixelgate, minimal, streaming, litellm), interleaved in rounds
with the order rotating, from one load generator. Writes
``bench/results/results.json``, ``results.md`` and ``chart.png`` (matplotlib, run in the LiteLLM
venv so it is no dependency of pixelgate), and the summary in ``README.md``.
Bounded: a fixed request count per cell.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import uvloop

from bench.load import Samples, Target, make_client, run_batch
from bench.processes import Server, free_port, start, wait_ready
from bench.report import CellResult, summarize, update_readme, write_markdown
from bench.workloads import Workload, build_workloads

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CONCURRENCY = (1, 16, 64)
COUNTS = {1: 100, 16: 240, 64: 384}
ROUNDS = 4
QUIET = ("--log-level", "warning")


def _start_servers(
    log_dir: Path, data_dir: Path, with_litellm: bool, ledger_baseline: bool = False
) -> tuple[dict[str, Server], list[Target]]:
    fake_port, gate_port, lite_port, bare_port = free_port(), free_port(), free_port(), free_port()
    minimal_port, streaming_port = free_port(), free_port()
    upstream = f"http://127.0.0.1:{fake_port}/v1"
    gate_key, lite_key = "sk-bench-" + secrets.token_hex(12), "sk-bench-" + secrets.token_hex(12)
    env_py = {"PYTHONPATH": str(ROOT), "PIXELGATE_CONFIG": ""}
    servers = {
        "fake": start(
            "fake", [sys.executable, "-m", "tests.fakes.fake_openai", "--port", str(fake_port)], env_py, log_dir, ROOT
        ),
        "pixelgate": start(
            "pixelgate",
            [sys.executable, "-m", "app.cli", "serve", "--port", str(gate_port), "--log-level", "warning"],
            {
                **env_py,
                "PIXELGATE_API_KEYS": gate_key,
                "PIXELGATE_DATA_DIR": str(data_dir),
                "OPENAI_API_KEY": "sk-fake-upstream",
                "PIXELGATE_OPENAI_BASE_URL": upstream,
            },
            log_dir,
            ROOT,
        ),
    }
    targets = [
        Target("direct", upstream, "sk-fake-upstream"),
        Target("pixelgate", f"http://127.0.0.1:{gate_port}/v1", gate_key),
    ]
    # For scale, beside the gateways (bench/minimal_proxy.py): the floor under any buffering Python
    # proxy, and under one that hands the answer on as it arrives (no failure answered once it starts).
    for name, port, mode in (("minimal", minimal_port, ()), ("streaming", streaming_port, ("--stream",))):
        argv = [sys.executable, "-m", "bench.minimal_proxy", str(port), upstream, *mode]
        servers[name] = start(name, argv, env_py, log_dir, ROOT)
        targets.append(Target(name, f"http://127.0.0.1:{port}/v1", "sk-fake-upstream"))
    if ledger_baseline:
        # The same server with its ledger off (bench/serve_without_ledger.py), on its own data dir.
        servers["pixelgate-noledger"] = start(
            "pixelgate-noledger",
            [sys.executable, "-m", "bench.serve_without_ledger", "serve", "--port", str(bare_port), *QUIET],
            {
                **env_py,
                "PIXELGATE_API_KEYS": gate_key,
                "PIXELGATE_DATA_DIR": str(data_dir.with_name("data-noledger")),
                "OPENAI_API_KEY": "sk-fake-upstream",
                "PIXELGATE_OPENAI_BASE_URL": upstream,
            },
            log_dir,
            ROOT,
        )
        targets.append(Target("pixelgate-noledger", f"http://127.0.0.1:{bare_port}/v1", gate_key))
    if with_litellm:
        servers["litellm"] = start(
            "litellm",
            [str(ROOT / "bench" / "start_litellm.sh"), str(lite_port), upstream],
            {"LITELLM_MASTER_KEY": lite_key},
            log_dir,
            ROOT,
        )
        targets.append(Target("litellm", f"http://127.0.0.1:{lite_port}/v1", lite_key))
    wait_ready(servers["fake"], f"{upstream}/files/result.png")
    wait_ready(servers["pixelgate"], f"http://127.0.0.1:{gate_port}/healthz")
    for name, port in (("minimal", minimal_port), ("streaming", streaming_port)):
        wait_ready(servers[name], f"http://127.0.0.1:{port}/healthz")
    if ledger_baseline:
        wait_ready(servers["pixelgate-noledger"], f"http://127.0.0.1:{bare_port}/healthz")
    if with_litellm:
        wait_ready(servers["litellm"], f"http://127.0.0.1:{lite_port}/health/liveliness", timeout_seconds=600)
    return servers, targets


def _start_profiler(pid: int, svg: Path) -> subprocess.Popen[bytes]:
    """py-spy attached to ``pid`` (sampling without pausing it); SIGINT makes it write ``svg``.

    An ``.svg`` path gets a flame graph, any other the collapsed stacks (one ``stack count`` a line).
    """
    py_spy = Path(sys.executable).parent / "py-spy"
    if not py_spy.exists():
        raise SystemExit(f"--profile needs py-spy in this venv: {Path(sys.executable).parent / 'pip'} install py-spy")
    kind = "flamegraph" if svg.suffix == ".svg" else "raw"  # raw: collapsed stacks, one per line
    argv = [str(py_spy), "record", "--pid", str(pid), "--nonblocking", "--rate", "200", "-f", kind, "-o", str(svg)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL)


async def _measure(
    targets: list[Target],
    workloads: list[Workload],
    concurrencies: tuple[int, ...],
    counts: dict[int, int],
    rounds: int,
) -> list[CellResult]:
    cells: list[CellResult] = []
    async with make_client(max(concurrencies)) as client:
        for workload in workloads:
            for target in targets:  # warm-up: connections, caches, lazy imports
                warm = await run_batch(client, target, workload, 4, 8)
                if warm.errors:
                    raise RuntimeError(f"{target.name} fails {workload.name}: {warm.first_error}")
            for concurrency in concurrencies:
                per_round = max(1, counts[concurrency] // rounds)
                samples = {t.name: Samples() for t in targets}
                for round_index in range(rounds):
                    order = targets[round_index % len(targets) :] + targets[: round_index % len(targets)]
                    for target in order:
                        samples[target.name].add(await run_batch(client, target, workload, concurrency, per_round))
                cell = summarize(workload.name, concurrency, samples)
                print(cell.line(), flush=True)
                cells.append(cell)
    return cells


def main() -> int:
    parser = argparse.ArgumentParser(description="pixelgate vs LiteLLM added latency and throughput")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the per-cell request counts")
    parser.add_argument(
        "--only",
        metavar="WORKLOAD",
        action="append",
        choices=("generations", "edits1", "edits4"),
        help="measure only this workload (repeatable); a partial run prints its lines and writes nothing",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        action="append",
        choices=CONCURRENCY,
        help="measure only this concurrency (repeatable); a partial run writes nothing",
    )
    parser.add_argument(
        "--without-litellm", action="store_true", help="direct and pixelgate only (iterating; writes nothing)"
    )
    parser.add_argument(
        "--profile",
        metavar="SVG",
        type=Path,
        help="attach py-spy (this venv) to pixelgate: flame graph if .svg, else collapsed stacks (writes nothing else)",
    )
    parser.add_argument(
        "--ledger-cost",
        action="store_true",
        help="pixelgate against itself with the usage ledger off (no LiteLLM; prints the rps ratio, writes nothing)",
    )
    args = parser.parse_args()
    counts = {c: max(ROUNDS, int(n * args.scale)) for c, n in COUNTS.items()}
    concurrencies = tuple(sorted(set(args.concurrency))) if args.concurrency else CONCURRENCY
    short = {"generations": "generations", "edits 1 MiB": "edits1", "edits 4 MiB": "edits4"}
    workloads = [w for w in build_workloads() if not args.only or short[w.name] in args.only]
    partial = bool(args.only or args.concurrency or args.without_litellm or args.profile or args.ledger_cost)
    with tempfile.TemporaryDirectory(prefix="pixelgate-bench-") as tmp:
        log_dir = Path(tmp)
        servers, targets = _start_servers(
            log_dir,
            log_dir / "data",
            with_litellm=not (args.without_litellm or args.ledger_cost),
            ledger_baseline=args.ledger_cost,
        )
        profiler = _start_profiler(servers["pixelgate"].process.pid, args.profile) if args.profile else None
        started = time.monotonic()
        cpu_before = {name: server.cpu_seconds() for name, server in servers.items()}
        try:
            cells = uvloop.run(_measure(targets, workloads, concurrencies, counts, ROUNDS))
            not_gateways = ("fake", "minimal", "streaming")
            rss = {name: server.peak_rss_bytes() for name, server in servers.items() if name not in not_gateways}
            cpu = {name: server.cpu_seconds() - cpu_before[name] for name, server in servers.items()}
        finally:
            if profiler is not None:
                profiler.send_signal(signal.SIGINT)
                profiler.wait(timeout=60)
            for server in servers.values():
                server.stop()
    results = {
        "cells": [asdict(cell) for cell in cells],
        "peak_rss_bytes": rss,
        "counts": counts,
        "rounds": ROUNDS,
        "input_bytes": {w.name: len(w.body) for w in workloads},
        "cpus": os.cpu_count(),
        "seconds": round(time.monotonic() - started, 1),
    }
    if args.ledger_cost:
        for cell in cells:
            on, off = cell.targets["pixelgate"].rps, cell.targets["pixelgate-noledger"].rps
            change = 100 * (on / off - 1)
            label = f"ledger cost, {cell.workload} c={cell.concurrency}"
            print(f"{label}: {on:.1f} rps with the ledger, {off:.1f} without: {change:+.1f}%")
        # Both servers got the same requests: their CPU time is the cost per request, whatever else the
        # host is doing (throughput on a busy host moves by more than the ledger costs).
        on_cpu, off_cpu = cpu["pixelgate"], cpu["pixelgate-noledger"]
        change = 100 * (on_cpu / off_cpu - 1)
        print(f"ledger cost, CPU time: {on_cpu:.2f} s with the ledger, {off_cpu:.2f} s without: {change:+.1f}%")
    if partial:
        print(f"partial run (nothing written): peak RSS {rss}, {results['seconds']} s")
        return 0
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    write_markdown(results, cells, RESULTS / "results.md")
    update_readme(ROOT / "README.md", results, cells)
    chart_python = ROOT / "bench" / ".venv-litellm" / "bin" / "python"
    subprocess.run(
        [
            str(chart_python),
            str(ROOT / "bench" / "chart.py"),
            str(RESULTS / "results.json"),
            str(RESULTS / "chart.png"),
        ],
        check=True,
    )
    print((RESULTS / "results.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
