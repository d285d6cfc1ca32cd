"""The load generator: one pooled ``httpx.AsyncClient`` (uvloop) drives every target the same way.

``run_batch`` sends ``count`` copies of a workload's request with at most ``concurrency`` in flight
and returns each request's latency (request start to last response byte, the body decoded as an
SDK would: ``Accept-Encoding: gzip, deflate``). A non-200 answer or a transport error is counted
as an error, not as a latency.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import httpx

from bench.workloads import Workload


@dataclass(frozen=True)
class Target:
    """Where to send: a name, the API root (``.../v1``) and its bearer key."""

    name: str
    api_url: str
    key: str


@dataclass
class Samples:
    """Latencies (seconds) and wall time accumulated for one target in one cell."""

    latencies: list[float] = field(default_factory=list)
    wall_seconds: float = 0.0
    errors: int = 0
    first_error: str | None = None

    def add(self, other: Samples) -> None:
        self.latencies.extend(other.latencies)
        self.wall_seconds += other.wall_seconds
        self.errors += other.errors
        self.first_error = self.first_error or other.first_error


def make_client(max_connections: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(300.0, connect=10.0),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        headers={"Accept-Encoding": "gzip, deflate", "Accept": "application/json"},
    )


async def _one(client: httpx.AsyncClient, target: Target, workload: Workload, samples: Samples) -> None:
    headers = {"Authorization": f"Bearer {target.key}", "Content-Type": workload.content_type}
    started = time.perf_counter()
    try:
        response = await client.post(f"{target.api_url}{workload.path}", content=workload.body, headers=headers)
    except httpx.HTTPError as exc:
        samples.errors += 1
        samples.first_error = samples.first_error or f"{type(exc).__name__}: {exc}"
        return
    elapsed = time.perf_counter() - started
    if response.status_code != 200 or b'"b64_json"' not in response.content:
        samples.errors += 1
        samples.first_error = samples.first_error or f"HTTP {response.status_code}: {response.text[:300]}"
        return
    samples.latencies.append(elapsed)


async def run_batch(
    client: httpx.AsyncClient, target: Target, workload: Workload, concurrency: int, count: int
) -> Samples:
    """``count`` requests, ``concurrency`` at a time; see the module docstring."""
    samples = Samples()
    remaining = count

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await _one(client, target, workload, samples)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, count))))
    samples.wall_seconds = time.perf_counter() - started
    return samples
