"""The upstream client alone: N pollers on one client, each polling a loopback server in a loop.

This isolates what the long-job benchmark measures inside the gateway: the cost of one upstream
request when many wait. For each client (httpx on httpcore's pool, httpx on aiohttp's pool through
``app.upstream_http``, httpx2 on httpcore2, bare aiohttp) it runs ``--pollers`` tasks for
``--seconds`` against the fake fal's status endpoint (its own process) and reports requests per
second and the client's CPU milliseconds per request. The server is the same for every client, so
a client whose CPU per request is higher is the one that costs the gateway more.

    python -m bench.bench_transport --pollers 100 --pollers 1000 --seconds 10

writes its table to ``bench/results/transport.md`` as well.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx
import uvloop

from app.upstream_http import build_upstream_client
from bench.processes import free_port, start, wait_ready

ROOT = Path(__file__).resolve().parent.parent
Get = Callable[[str], Awaitable[int]]


async def _poll(get: Get, url: str, pollers: int, seconds: float) -> tuple[int, float, float]:
    count = 0
    stop = time.monotonic() + seconds

    async def poller() -> None:
        nonlocal count
        while time.monotonic() < stop:
            if await get(url) != 202:
                raise RuntimeError("unexpected status")
            count += 1

    cpu, wall = time.process_time(), time.monotonic()
    await asyncio.gather(*(poller() for _ in range(pollers)))
    return count, time.process_time() - cpu, time.monotonic() - wall


async def _with_httpx(client: httpx.AsyncClient, url: str, pollers: int, seconds: float) -> tuple[int, float, float]:
    async with client:

        async def get(target: str) -> int:
            return (await client.get(target)).status_code

        return await _poll(get, url, pollers, seconds)


async def _with_httpx2(url: str, pollers: int, seconds: float) -> tuple[int, float, float]:
    import httpx2  # the openai SDK's dependency; not one of pixelgate's

    limits = httpx2.Limits(max_connections=256, max_keepalive_connections=64)
    async with httpx2.AsyncClient(limits=limits, timeout=httpx2.Timeout(120.0, connect=10.0)) as client:

        async def get(target: str) -> int:
            return (await client.get(target)).status_code

        return await _poll(get, url, pollers, seconds)


async def _with_aiohttp(url: str, pollers: int, seconds: float) -> tuple[int, float, float]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:

        async def get(target: str) -> int:
            async with session.get(target) as response:
                await response.read()
                return response.status

        return await _poll(get, url, pollers, seconds)


CLIENTS: dict[str, Callable[[str, int, float], Awaitable[tuple[int, float, float]]]] = {
    "httpx (httpcore pool)": lambda u, p, s: _with_httpx(build_upstream_client("httpcore", 256), u, p, s),
    "httpx + aiohttp pool (pixelgate)": lambda u, p, s: _with_httpx(build_upstream_client("aiohttp", 256), u, p, s),
    "httpx2 (httpcore2 pool)": _with_httpx2,
    "aiohttp alone": _with_aiohttp,
}


def main() -> int:
    parser = argparse.ArgumentParser(description="upstream client cost per request with many waiting")
    parser.add_argument("--pollers", type=int, action="append", help="concurrent pollers (repeatable)")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pixelgate-transport-") as tmp:
        port = free_port()
        argv = [sys.executable, "-m", "tests.fakes.fake_fal", "--port", str(port), "--latency", "3600"]
        fake = start("fake-fal", [*argv, "--log-level", "warning"], {"PYTHONPATH": str(ROOT)}, Path(tmp), ROOT)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(fake, f"{base}/_fake/jobs")
            submitted = httpx.post(f"{base}/fal-ai/hidream-i1-full", json={"prompt": "x"}, timeout=30).json()
            url = submitted["status_url"]
            lines = ["| client | pollers | requests/s | client CPU ms / request |", "|---|---:|---:|---:|"]
            print("\n".join(lines), flush=True)
            for pollers in args.pollers or [1000]:
                for name, run in CLIENTS.items():
                    count, cpu, wall = uvloop.run(run(url, pollers, args.seconds))
                    lines.append(f"| {name} | {pollers} | {count / wall:.0f} | {1000 * cpu / max(count, 1):.2f} |")
                    print(lines[-1], flush=True)
        finally:
            fake.stop()
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    intro = f"# Upstream client cost (`python -m bench.bench_transport`, {args.seconds:g} s per row, load {load})\n\n"
    (ROOT / "bench" / "results" / "transport.md").write_text(intro + "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
