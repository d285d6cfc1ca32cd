"""The cost of the shared state: one pixelgate replica on Redis, PostgreSQL and S3 against the embedded default.

Both runs are one ``pixelgate serve`` in front of the same fake fal (its own process, jobs complete at
the first status poll), driven by httpx at concurrency 16 with generations answered as hosted links
(``response_format=url``: the image store is on the path), each request under the same API key:

- embedded: SQLite ledger, image files in the data dir, rate limits and idempotency in the process;
- shared: the ledger in PostgreSQL (the machine's, a fresh database), rate limits and idempotency in
  Redis (a fresh prefix), images in SeaweedFS over S3 (``weed mini`` on loopback).

Two workloads on both setups, each combination once per round in a shuffled order (seeded), for
``--rounds`` rounds, medians reported (with the range of the rounds' rps): plain generations, and
generations with a fresh ``Idempotency-Key`` each (a lease and an answer in Redis per request).
Every server here shares the machine's cores with the client, as one small host would run them.
Writes bench/results/scaleout.md.

    python -m bench.bench_scaleout [--requests 300] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.databases import postgres_database
from tests.live import free_port
from tests.scaleout.processes import Process, start_process, wait_ready
from tests.scaleout.seaweed import SeaweedS3, seaweed_s3

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "scaleout.md"
PIXELGATE = Path(sys.executable).parent / "pixelgate"
API_KEY = "sk-bench-scaleout"
FAL_KEY = "bench-fal-key"
CONCURRENCY = 16
REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass
class Run:
    setup: str
    workload: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def start_fake_fal(logs: Path) -> tuple[Process, str]:
    port = free_port()
    argv = [sys.executable, "-m", "tests.fakes.fake_fal", "--port", str(port), "--latency", "0", "--key", FAL_KEY]
    process = start_process("fake-fal", argv, log_dir=logs)
    url = f"http://127.0.0.1:{port}"
    wait_ready(process, lambda: httpx.get(f"{url}/", timeout=2).status_code < 500, "fake fal")
    return process, url


@contextlib.contextmanager
def gateway(name: str, logs: Path, environment: dict[str, str]) -> Iterator[str]:
    port = free_port()
    argv = [str(PIXELGATE), "serve", "--port", str(port)]
    process = start_process(name, argv, log_dir=logs, env=environment)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(process, lambda: httpx.get(f"{base}/readyz", timeout=2).status_code == 200, "pixelgate ready")
        yield base
    finally:
        process.stop()


def environments(work: Path, fal_url: str, seaweed: SeaweedS3, database_url: str) -> dict[str, dict[str, str]]:
    common = {
        "PIXELGATE_API_KEYS": API_KEY,
        "PIXELGATE_SIGNING_SECRET": "bench-scaleout-signing-secret-0123456789",
        "PIXELGATE_RATE_LIMIT_RPM": "100000000",  # on, so each request takes from its bucket, never refused
        "FAL_KEY": FAL_KEY,
        "PIXELGATE_FAL_BASE_URL": fal_url,
        "PIXELGATE_FAL_STORAGE_URL": fal_url,
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    return {
        "embedded": {**common, "PIXELGATE_DATA_DIR": str(work / "embedded")},
        "shared": {
            **common,
            **seaweed.environment,
            "PIXELGATE_DATA_DIR": str(work / "shared"),
            "PIXELGATE_DATABASE_URL": database_url,
            "PIXELGATE_STATE_URL": REDIS_URL,
            "PIXELGATE_STATE_PREFIX": f"bench-scaleout-{uuid.uuid4().hex[:8]}:",
            "PIXELGATE_STORE_URL": f"s3://{seaweed.bucket}/bench",
        },
    }


async def load(base: str, requests: int, *, idempotent: bool) -> tuple[float, list[float], int]:
    """``requests`` generations at :data:`CONCURRENCY`; (seconds, latencies, errors)."""
    body = {"model": "hidream-i1-full", "prompt": "a lighthouse", "size": "64x64", "response_format": "url"}
    latencies: list[float] = []
    errors = 0
    queue = iter(range(requests))

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        for _ in queue:
            headers = {"Authorization": f"Bearer {API_KEY}"}
            if idempotent:
                headers["Idempotency-Key"] = uuid.uuid4().hex
            started = time.perf_counter()
            response = await client.post(f"{base}/v1/images/generations", json=body, headers=headers)
            latencies.append(time.perf_counter() - started)
            errors += response.status_code != 200

    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))
        return time.perf_counter() - started, latencies, errors


def measure(base: str, setup: str, workload: str, requests: int) -> Run:
    asyncio.run(load(base, 32, idempotent=workload == "idempotent"))  # warm-up: connections, caches
    seconds, latencies, errors = asyncio.run(load(base, requests, idempotent=workload == "idempotent"))
    latencies.sort()
    return Run(
        setup=setup,
        workload=workload,
        rps=requests / seconds,
        p50_ms=statistics.median(latencies) * 1000,
        p99_ms=latencies[int(len(latencies) * 0.99) - 1] * 1000,
        errors=errors,
    )


def report(runs: list[Run], requests: int, rounds: int, load_before: tuple[float, float, float]) -> str:
    lines = [
        "# The cost of the shared state (python -m bench.bench_scaleout)",
        "",
        f"One replica, concurrency {CONCURRENCY}, {requests} generations per run (response_format=url), "
        f"medians of {rounds} rounds (each combination once per round, shuffled); load average before the run: "
        + ", ".join(f"{value:.2f}" for value in load_before)
        + f" on {os.cpu_count()} cores.",
        "",
        "| workload | setup | rps (median) | rps (min-max) | p50 (ms) | p99 (ms) | errors |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for workload in ("plain", "idempotent"):
        for setup in ("embedded", "shared"):
            chosen = [run for run in runs if run.workload == workload and run.setup == setup]
            lines.append(
                f"| {workload} | {setup} | {statistics.median(r.rps for r in chosen):.1f} "
                f"| {min(r.rps for r in chosen):.1f}-{max(r.rps for r in chosen):.1f} "
                f"| {statistics.median(r.p50_ms for r in chosen):.1f} "
                f"| {statistics.median(r.p99_ms for r in chosen):.1f} | {sum(r.errors for r in chosen)} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-scaleout-") as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        logs = work / "logs"
        fake, fal_url = start_fake_fal(logs)
        stack.callback(fake.stop)
        seaweed = stack.enter_context(seaweed_s3(work / "seaweedfs"))
        database_url = stack.enter_context(postgres_database("pixelgate_bench"))
        envs = environments(work, fal_url, seaweed, database_url)
        bases = {setup: stack.enter_context(gateway(setup, logs, env)) for setup, env in envs.items()}
        runs: list[Run] = []
        combinations = [(workload, setup) for workload in ("plain", "idempotent") for setup in ("embedded", "shared")]
        order = random.Random(7)
        for _ in range(args.rounds):
            order.shuffle(combinations)  # no combination always runs first (warmest or coldest) in a round
            for workload, setup in combinations:
                run = measure(bases[setup], setup, workload, args.requests)
                print(f"{workload:10} {setup:8} {run.rps:7.1f} rps  p50 {run.p50_ms:6.1f} ms  errors {run.errors}")
                runs.append(run)
    text = report(runs, args.requests, args.rounds, load_before)
    RESULTS.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
