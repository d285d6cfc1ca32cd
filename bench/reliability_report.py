"""The result of one load run with injected faults: figures, the problems found, and its Markdown page."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.fault_plan import FAULTS, LoadConfig


@dataclass
class LoadReport:
    config: LoadConfig
    seconds: float = 0.0
    faults: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    fake_attempts: int = 0
    fake_accepted: int = 0
    links_handed_out: int = 0
    links_fetched: int = 0
    files_after_run: int = 0
    files_after_sweep: int = 0
    rss_baseline_mib: float = 0.0
    rss_peak_mib: float = 0.0
    rss_after_mib: float = 0.0
    hung: int = 0
    problems: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        c = self.config
        lines = [
            "# Reliability: load with injected upstream faults",
            "",
            f"`python -m bench.load_faults --requests {c.requests} --concurrency {c.concurrency} --seed {c.seed}` "
            f"(pixelgate as its own process in front of the fake fal on loopback; {c.url_share:.0%} of requests "
            f"ask for `response_format=url`; image TTL {c.ttl_seconds} s, sweep every {c.sweep_seconds:g} s).",
            "",
            f"- requests: {sum(self.faults.values())} in {self.seconds:.1f} s; without an answer within the "
            f"{c.timeout_seconds:g} s per-request timeout: {self.hung}",
            f"- fake fal recorded {self.fake_attempts} submit attempts and {self.fake_accepted} accepted jobs "
            "(both as expected per fault kind)"
            if not self.problems
            else f"- fake fal recorded {self.fake_attempts} submit attempts and {self.fake_accepted} accepted jobs",
            f"- gateway RSS: baseline {self.rss_baseline_mib:.1f} MiB, peak {self.rss_peak_mib:.1f} MiB, "
            f"after the run {self.rss_after_mib:.1f} MiB",
            f"- links handed out: {self.links_handed_out} ({self.links_fetched} downloaded during the run); files in "
            f"the data dir after the run: {self.files_after_run} (only unexpired handed-out links); after the TTL "
            f"and a sweep: {self.files_after_sweep}",
            f"- problems: {len(self.problems)}" + "".join(f"\n  - {p}" for p in self.problems[:20]),
            "",
            "| fault injected | requests | expected answer |",
            "|---|---:|---|",
        ]
        for name, count in sorted(self.faults.items(), key=lambda kv: -kv[1]):
            fault = FAULTS[name]
            answer = "200" if fault.status == 200 else f"{fault.status} `{fault.code}`"
            lines.append(f"| {name} | {count} | {answer} |")
        lines += ["", "| outcome | requests |", "|---|---:|"]
        for outcome, count in sorted(self.outcomes.items(), key=lambda kv: -kv[1]):
            lines.append(f"| {outcome} | {count} |")
        return "\n".join(lines) + "\n"
