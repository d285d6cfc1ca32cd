"""Fan-out of ``n``: the wall time of ``n=8`` against a single call, through a live pixelgate.

Starts the fake fal server (``tests.fakes.fake_fal``, every job completes ``--latency`` seconds
after its submit, 500 ms by default) and ``pixelgate serve`` in front of it, as separate processes,
with a user model from a YAML config whose upstream makes one image per call (no count field), so
``n=8`` is eight parallel upstream calls. The openai SDK then times ``images.generate`` with
``n=1`` and ``n=8`` (1024x1024, default PNG output), for ``response_format=url`` (the default:
stored and linked) and ``b64_json``, interleaved with alternating order, and compares medians.
Target: n=8 takes at most 1.3 times a single call.

Run: ``python -m bench.bench_fanout [--runs 7] [--latency 0.5]``; writes ``bench/results/fanout.md``.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import openai

from bench.processes import Server, free_port, start, wait_ready

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
MODEL = "bench-one-per-call"
TARGET_RATIO = 1.3
N = 8

CONFIG = f"""\
models:
  - id: {MODEL}
    provider: fal
    upstream: fal-ai/bench-one-per-call
    modes: [generate]
    description: One image per call (no count field), for the fan-out benchmark.
    size: {{kind: dimensions, field: image_size, encoding: object, min_side: 64, max_side: 4096}}
    output_format: {{field: output_format, values: [jpeg, png], default: jpeg}}
    params:
      seed: {{type: integer}}
"""

ResponseFormat = Literal["url", "b64_json"]


@dataclass(frozen=True)
class Row:
    response_format: ResponseFormat
    single: list[float]
    fanned: list[float]

    @property
    def ratio(self) -> float:
        return statistics.median(self.fanned) / statistics.median(self.single)


def _start(tmp: Path, latency: float) -> tuple[list[Server], str, str]:
    fake_port, gate_port = free_port(), free_port()
    fal_key, gate_key = "bench-id:" + secrets.token_hex(8), "sk-bench-" + secrets.token_hex(12)
    config = tmp / "pixelgate.yaml"
    config.write_text(CONFIG)
    env_py = {"PYTHONPATH": str(ROOT), "PIXELGATE_CONFIG": ""}
    fal_url = f"http://127.0.0.1:{fake_port}"
    fake = start(
        "fake_fal",
        [
            sys.executable,
            "-m",
            "tests.fakes.fake_fal",
            "--port",
            str(fake_port),
            "--latency",
            str(latency),
            "--key",
            fal_key,
        ],
        env_py,
        tmp,
        ROOT,
    )
    gate = start(
        "pixelgate",
        [
            sys.executable,
            "-m",
            "app.cli",
            "serve",
            "--port",
            str(gate_port),
            "--config",
            str(config),
            "--log-level",
            "warning",
        ],
        {
            **env_py,
            "PIXELGATE_API_KEYS": gate_key,
            "PIXELGATE_DATA_DIR": str(tmp / "data"),
            "FAL_KEY": fal_key,
            "PIXELGATE_FAL_BASE_URL": fal_url,
            "PIXELGATE_FAL_STORAGE_URL": fal_url,
        },
        tmp,
        ROOT,
    )
    servers = [fake, gate]
    try:
        wait_ready(fake, f"{fal_url}/files/none/none")
        wait_ready(gate, f"http://127.0.0.1:{gate_port}/healthz")
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers, f"http://127.0.0.1:{gate_port}/v1", gate_key


def _call(client: openai.OpenAI, n: int, response_format: ResponseFormat) -> float:
    started = time.perf_counter()
    result = client.images.generate(
        model=MODEL, prompt="a lighthouse", n=n, size="1024x1024", response_format=response_format
    )
    elapsed = time.perf_counter() - started
    data = result.data or []
    if len(data) != n or not all(item.url or item.b64_json for item in data):
        raise RuntimeError(f"n={n} returned {len(data)} image(s)")
    calls = (result.model_extra or {}).get("metadata", {}).get("upstream_calls")
    if calls != n:  # one image per call: anything else would measure something other than fan-out
        raise RuntimeError(f"n={n} made {calls} upstream call(s)")
    return elapsed


def measure(client: openai.OpenAI, runs: int) -> list[Row]:
    rows: list[Row] = []
    for response_format in ("url", "b64_json"):
        _call(client, 1, response_format)  # warm-up: connections, lazy imports, the store
        _call(client, N, response_format)
        single: list[float] = []
        fanned: list[float] = []
        for run in range(runs):
            pair = [(single, 1), (fanned, N)]
            for samples, n in pair if run % 2 == 0 else reversed(pair):
                samples.append(_call(client, n, response_format))
        rows.append(Row(response_format, single, fanned))
        print(f"{response_format}: single {statistics.median(single):.3f} s, n={N} {statistics.median(fanned):.3f} s")
    return rows


def markdown(rows: list[Row], runs: int, latency: float) -> str:
    lines = [
        f"# Fan-out: n={N} against one call ({latency * 1000:.0f} ms upstream latency)",
        "",
        "openai SDK -> live `pixelgate serve` -> fake fal (`tests/fakes/fake_fal.py`), separate processes on "
        f"loopback; a one-image-per-call model, so n={N} is {N} parallel upstream calls; 1024x1024 PNG; "
        f"medians of {runs} interleaved runs (min..max in brackets). Target: n={N} <= {TARGET_RATIO}x a single call.",
        "",
        f"| response_format | n=1 (s) | n={N} (s) | ratio | target |",
        "|---|---:|---:|---:|---|",
    ]
    for row in rows:
        verdict = "met" if row.ratio <= TARGET_RATIO else "NOT met"
        lines.append(
            f"| {row.response_format} | {statistics.median(row.single):.3f} "
            f"[{min(row.single):.3f}..{max(row.single):.3f}] "
            f"| {statistics.median(row.fanned):.3f} [{min(row.fanned):.3f}..{max(row.fanned):.3f}] "
            f"| {row.ratio:.2f} | {verdict} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=7, help="timed calls per case (median)")
    parser.add_argument("--latency", type=float, default=0.5, help="fake fal job latency in seconds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pixelgate-fanout-") as tmp:
        servers, api_url, key = _start(Path(tmp), args.latency)
        try:
            with openai.OpenAI(base_url=api_url, api_key=key, max_retries=0, timeout=60) as client:
                rows = measure(client, args.runs)
        finally:
            for server in reversed(servers):
                server.stop()
    report = markdown(rows, args.runs, args.latency)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "fanout.md").write_text(report)
    print(report)
    return 0 if all(row.ratio <= TARGET_RATIO for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
