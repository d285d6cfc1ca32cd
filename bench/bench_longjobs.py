"""``make bench-longjobs``: pixelgate in front of a fake fal whose jobs all take exactly J seconds.

Three processes on loopback: the fake fal (``python -m tests.fakes.fake_fal``: a job completes J
seconds after its submit; every job gets the same photo-sized image, rendered once), pixelgate
(``pixelgate serve``, default settings unless ``--set`` says otherwise) and this one, the client
(:mod:`bench.longjobs_client`: aiohttp on uvloop). N requests go out at once (``--spread 0``) or
evenly over S seconds. Reported per run (:mod:`bench.longjobs_report`): successes, errors by status
and code, client latency p50/p99, completion lag p50/p99 (the client's receive time minus the fake's
completion time, one monotonic clock), upstream requests per job as the fake counted them, the
gateway's peak RSS (``VmHWM``), its RSS just before the first job completes (every job then waits
upstream), its CPU seconds over the run (``/proc/<pid>/stat``), and the client's own CPU seconds and
event loop lag.

``make bench-longjobs`` runs the issue's four target cells (1,000 jobs of 20 s, generations and
1 MiB edits, over 20 s and at once) and writes ``bench/results/longjobs.md`` and ``.json`` and the
README's "Long jobs" summary. ``--jobs/--job-seconds/--spread/--kind`` run one cell (printed;
stored under ``--label`` when given). ``--transport`` picks the gateway's upstream pool:
``aiohttp``, ``httpcore`` or ``httpx2`` (httpcore's successor, pydantic's httpx2 fork, put in
place of httpx at the gateway's start). Every run is bounded: each request by J + 120 s, the whole
run by that plus the spread.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvloop

from bench.longjobs_client import Kind, LoadSpec, run_load
from bench.longjobs_report import (
    Cell,
    MiB,
    fill,
    load_cells,
    overhead_table,
    save_cells,
    table,
    update_readme,
    write_markdown,
)
from bench.processes import Server, free_port, start, wait_ready
from bench.run import _start_profiler
from bench.workloads import noise_png

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
MODELS: dict[str, str] = {"generate": "hidream-i1-full", "edit": "hidream-e1-full"}
FAL_KEY = "bench-fal-key:" + secrets.token_hex(8)
TARGETS = (
    ("target: generations over 20 s", "generate", 20.0),
    ("target: 1 MiB edits over 20 s", "edit", 20.0),
    ("target: generations at once", "generate", 0.0),
    ("target: 1 MiB edits at once", "edit", 0.0),
)
HTTPX2_LAUNCH = "import httpx2, sys; httpx2.alias_httpx(); from app.cli import main; sys.exit(main(sys.argv[1:]))"
SAMPLE_SECONDS = 0.25


@dataclass(frozen=True)
class RunOptions:
    jobs: int
    job_seconds: float
    spread_seconds: float
    kind: Kind
    response_format: str
    transport: str
    settings: dict[str, str]
    photo_sized: bool = False
    profile: Path | None = None


class Meter:
    """Samples the gateway's ``VmRSS`` and CPU seconds from ``/proc`` while the load runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, float]] = []  # (monotonic time, RSS bytes)
        self._ticks = os.sysconf("SC_CLK_TCK")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self._ticks  # utime + stime

    def rss_bytes(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024.0
        return 0.0

    async def sample(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.samples.append((time.monotonic(), self.rss_bytes()))
            await asyncio.sleep(SAMPLE_SECONDS)

    def rss_before(self, moment: float) -> float:
        """The last RSS sampled before ``moment`` (0 when none was)."""
        before = [rss for at, rss in self.samples if at < moment]
        return before[-1] if before else 0.0


def _load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _start(tmp: Path, options: RunOptions) -> tuple[Server, Server, str, str]:
    fake_port, gate_port = free_port(), free_port()
    fake_url, gate_url = f"http://127.0.0.1:{fake_port}", f"http://127.0.0.1:{gate_port}"
    env_py = {"PYTHONPATH": str(ROOT), "PIXELGATE_CONFIG": ""}
    fake_argv = [sys.executable, "-m", "tests.fakes.fake_fal", "--port", str(fake_port)]
    fake_argv += ["--latency", str(options.job_seconds), "--key", FAL_KEY, "--reuse-images", "--log-level", "warning"]
    fake_argv += ["--photo-sized"] if options.photo_sized else []
    fake = start("fake-fal", fake_argv, env_py, tmp, ROOT)
    wait_ready(fake, f"{fake_url}/_fake/jobs")
    client_key = "sk-longjobs-" + secrets.token_hex(12)
    env = {
        **env_py,
        "FAL_KEY": FAL_KEY,
        "PIXELGATE_FAL_BASE_URL": fake_url,
        "PIXELGATE_FAL_STORAGE_URL": fake_url,
        "PIXELGATE_API_KEYS": client_key,
        "PIXELGATE_DATA_DIR": str(tmp / "data"),
        "PIXELGATE_UPSTREAM_TRANSPORT": "httpcore" if options.transport == "httpx2" else options.transport,
        **{f"PIXELGATE_{name.upper()}": value for name, value in options.settings.items()},
    }
    serve = ["serve", "--port", str(gate_port), "--log-level", "warning"]
    launch = ["-c", HTTPX2_LAUNCH] if options.transport == "httpx2" else ["-m", "app.cli"]
    gateway = start("pixelgate", [sys.executable, *launch, *serve], env, tmp, ROOT)
    wait_ready(gateway, f"{gate_url}/healthz")
    return fake, gateway, fake_url, f"{gate_url}/v1|{client_key}"


def _warm_up(api: str, key: str, kind: Kind, image: bytes) -> None:
    """A few quick jobs (the fake's ``slow`` scenario at 50 ms) so lazy imports are not measured."""
    headers = {"Authorization": f"Bearer {key}"}
    for _ in range(3):
        prompt = "warm-up [fake:slow:0.05]"
        if kind == "generate":
            body = {"model": MODELS[kind], "prompt": prompt, "response_format": "b64_json"}
            response = httpx.post(f"{api}/images/generations", json=body, headers=headers, timeout=60)
        else:
            data = {"model": MODELS[kind], "prompt": prompt, "response_format": "b64_json"}
            files = {"image": ("input.png", image, "image/png")}
            response = httpx.post(f"{api}/images/edits", data=data, files=files, headers=headers, timeout=60)
        if response.status_code != 200:
            raise RuntimeError(f"warm-up failed: {response.status_code} {response.text[:300]}")


def run_cell(label: str, options: RunOptions) -> Cell:
    """One run: fresh fake and gateway, warm-up, the load, the figures."""
    cell = Cell(
        label=label,
        kind=options.kind,
        jobs=options.jobs,
        job_seconds=options.job_seconds,
        spread_seconds=options.spread_seconds,
        response_format=options.response_format,
        transport=options.transport,
        photo_sized=options.photo_sized,
        settings=dict(options.settings),
        load_before=_load_average(),
    )
    image = noise_png(MiB, 1) if options.kind == "edit" else b""
    with tempfile.TemporaryDirectory(prefix="pixelgate-longjobs-") as tmp:
        fake, gateway, fake_url, target = _start(Path(tmp), options)
        api, key = target.split("|")
        profiler = _start_profiler(gateway.process.pid, options.profile) if options.profile else None
        try:
            _warm_up(api, key, options.kind, image)
            before: dict[str, Any] = httpx.get(f"{fake_url}/_fake/jobs", timeout=30).json()
            meter, fake_meter = Meter(gateway.process.pid), Meter(fake.process.pid)
            idle_rss, cpu_started, fake_cpu_started = meter.rss_bytes(), meter.cpu_seconds(), fake_meter.cpu_seconds()
            spec = LoadSpec(
                api_url=api,
                key=key,
                kind=options.kind,
                jobs=options.jobs,
                spread_seconds=options.spread_seconds,
                response_format=options.response_format,
                model=MODELS[options.kind],
                edit_image=image,
                timeout_seconds=options.job_seconds + 120,
            )

            async def measured() -> tuple[Any, Any]:
                stop = asyncio.Event()
                sampler = asyncio.create_task(meter.sample(stop))
                try:
                    return await run_load(spec)
                finally:
                    stop.set()
                    await sampler

            shots, overhead = uvloop.run(measured())
            cell.gateway_cpu_seconds = round(meter.cpu_seconds() - cpu_started, 1)
            cell.fake_cpu_seconds = round(fake_meter.cpu_seconds() - fake_cpu_started, 1)
            cell.gateway_peak_rss_mib = round(gateway.peak_rss_bytes() / MiB, 1)
            fake_after: dict[str, Any] = httpx.get(f"{fake_url}/_fake/jobs", timeout=60).json()
        finally:
            if profiler is not None:
                profiler.send_signal(signal.SIGINT)
                profiler.wait(timeout=60)
            gateway.stop()
            fake.stop()
    fake_after["bench_attempts"] = fake_after["attempts"] - before["attempts"]
    fake_after["bench_uploads"] = fake_after["uploads"] - before["uploads"]
    fill(cell, shots, fake_after, overhead)
    first_done = min((j["completes_at"] for j in fake_after["jobs"] if "#" in j["prompt"]), default=0.0)
    cell.gateway_rss_idle_mib = round(idle_rss / MiB, 1)
    cell.gateway_rss_waiting_mib = round(meter.rss_before(first_done) / MiB, 1)
    cell.wall_seconds = round(overhead.wall_seconds, 1)
    cell.load_after = _load_average()
    return cell


def _intro() -> str:
    return (
        "# Long jobs (`make bench-longjobs`)\n\n"
        "pixelgate (`pixelgate serve`, its own process) in front of the fake fal (its own process), whose\n"
        "jobs complete exactly J seconds after their submit; the client (aiohttp, uvloop, this process)\n"
        "sends N requests evenly over S seconds or at once, one connection each; answers as `b64_json`.\n"
        "Completion lag: the client's receive time minus the fake's completion time. RSS waiting: the\n"
        "gateway's RSS just before the first job completes. Upstream requests per job as the fake counted\n"
        "them. Results are the fake's flat images (a 1024x1024 PNG of 10 KB for a generation, an edit's\n"
        "the size of its input: 1 MiB of noise PNG in, 591x591 out) unless the run says 1.6 MB results\n"
        f"(`--photo-sized`). Host: {os.cpu_count()} cores, shared with other work; load averages below.\n"
    )


def _summary(cells: dict[str, Cell]) -> str:
    targets = [c for c in cells.values() if c.label.startswith("target")]
    return (
        "Last `make bench-longjobs` (full tables in [bench/results/longjobs.md](bench/results/longjobs.md)):\n\n"
        + table(targets)
        + "\n"
        + overhead_table(targets)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description="pixelgate in front of a fake fal with slow jobs")
    parser.add_argument("--targets", action="store_true", help="run the four target cells; write results + README")
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--job-seconds", type=float, default=5.0)
    parser.add_argument("--spread", type=float, default=5.0, help="seconds over which to send (0: all at once)")
    parser.add_argument("--kind", choices=("generate", "edit"), default="generate")
    parser.add_argument("--response-format", choices=("b64_json", "url"), default="b64_json")
    parser.add_argument("--transport", choices=("aiohttp", "httpcore", "httpx2"), default="aiohttp")
    parser.add_argument(
        "--photo-sized", action="store_true", help="results as large as a photo's (1.6 MB PNG at 1024x1024)"
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="a gateway setting (max_inflight=8)"
    )
    parser.add_argument("--profile", type=Path, metavar="FILE", help="py-spy on pixelgate: .svg or collapsed stacks")
    parser.add_argument("--label", help="store this run in bench/results/longjobs.json under LABEL")
    args = parser.parse_args()
    settings = dict(item.split("=", 1) for item in args.set)
    RESULTS.mkdir(parents=True, exist_ok=True)
    store = RESULTS / "longjobs.json"
    cells = load_cells(store)
    runs: list[tuple[str, RunOptions]] = []
    if args.targets:
        for label, kind, spread in TARGETS:
            runs.append((label, RunOptions(1000, 20.0, spread, kind, "b64_json", args.transport, settings)))  # type: ignore[arg-type]
    else:
        options = RunOptions(
            args.jobs,
            args.job_seconds,
            args.spread,
            args.kind,
            args.response_format,
            args.transport,
            settings,
            args.photo_sized,
            args.profile,
        )
        runs.append((args.label or "ad hoc", options))
    for label, options in runs:
        cell = run_cell(label, options)
        print(json.dumps({k: v for k, v in vars(cell).items() if k != "settings"}), flush=True)
        if args.targets or args.label:
            cells[label] = cell
    if args.targets or args.label:
        save_cells(store, cells)
        write_markdown(RESULTS / "longjobs.md", cells, _intro())
    if args.targets:
        update_readme(ROOT / "README.md", _summary(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
