"""Render bench/results/results.json as a PNG chart. Run with the LiteLLM venv's python (matplotlib).

Usage: python bench/chart.py results.json chart.png. Imports nothing from pixelgate.
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def main(source: str, target: str) -> None:
    with open(source, encoding="utf-8") as handle:
        results = json.load(handle)
    cells = results["cells"]
    labels = [f"{c['workload']}\nc={c['concurrency']}" for c in cells]
    xs = range(len(cells))
    width = 0.38
    fig, (latency, throughput) = plt.subplots(2, 1, figsize=(13, 8.5), constrained_layout=True)
    for offset, name, color in ((-width / 2, "pixelgate", "#2a7ab8"), (width / 2, "litellm", "#d9822b")):
        added = [max(0.1, c["targets"][name]["p50_ms"] - c["targets"]["direct"]["p50_ms"]) for c in cells]
        added99 = [max(0.1, c["targets"][name]["p99_ms"] - c["targets"]["direct"]["p99_ms"]) for c in cells]
        rps = [c["targets"][name]["rps"] for c in cells]
        shown = "LiteLLM 1.106.2" if name == "litellm" else "pixelgate"
        latency.bar([x + offset for x in xs], added, width, color=color, label=f"{shown} added p50")
        latency.scatter([x + offset for x in xs], added99, color=color, marker="_", s=300, label=f"{shown} added p99")
        throughput.bar([x + offset for x in xs], rps, width, color=color, label=shown)
    floor = [max(0.1, c["targets"]["minimal"]["p50_ms"] - c["targets"]["direct"]["p50_ms"]) for c in cells]
    latency.scatter(list(xs), floor, color="black", marker="o", s=18, label="minimal proxy added p50 (for scale)")
    streamed = [max(0.1, c["targets"]["streaming"]["p50_ms"] - c["targets"]["direct"]["p50_ms"]) for c in cells]
    latency.scatter(list(xs), streamed, color="grey", marker="^", s=18, label="the same, streaming the answer")
    direct = [c["targets"]["direct"]["rps"] for c in cells]
    throughput.scatter(list(xs), direct, color="black", marker="x", label="direct to upstream")
    latency.set_yscale("log")
    latency.set_ylabel("added latency, ms (log)")
    latency.set_title("Added latency over direct (gateway minus direct, same cell)")
    throughput.set_yscale("log")
    throughput.set_ylabel("requests per second (log)")
    throughput.set_title("Throughput")
    for axis in (latency, throughput):
        axis.set_xticks(list(xs), labels, fontsize=8)
        axis.legend(fontsize=8)
        axis.grid(axis="y", alpha=0.3)
    rss = results["peak_rss_bytes"]
    fig.suptitle(
        f"pixelgate vs LiteLLM, fake OpenAI upstream on loopback, {results['cpus']} cores; peak RSS "
        f"pixelgate {rss['pixelgate'] / 1048576:.0f} MiB, LiteLLM {rss['litellm'] / 1048576:.0f} MiB"
    )
    fig.savefig(target, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
