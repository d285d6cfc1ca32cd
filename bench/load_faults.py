"""``make load-test``: a bounded load test with injected upstream faults, and its invariants.

pixelgate runs as its own process (``pixelgate serve``, so its RSS is its own) in front of the fake
fal (``tests/fakes/fake_fal.py``, in this process). Each request draws one fault from a seeded RNG
and carries it to the fake as a ``[fake:NAME]`` marker in its prompt: 429 with Retry-After, 503 and
a connection reset mid-body (each once, then the retry succeeds), a connection reset every time,
500, 422, a content-policy refusal, COMPLETED with an error, malformed JSON, a truncated image,
HTML instead of JSON, a slow job, or none. Most requests ask for ``response_format=url``.

Checked, and listed in :attr:`LoadReport.problems` when broken:

- every request ends, within its timeout, in a success or the contract error of its fault (status,
  OpenAI error shape, code); successes + each error class = requests sent;
- what the fake recorded reconciles: submit attempts and accepted jobs per fault kind;
- no upstream key, client key or signing secret in any error body, header or the gateway's output;
- the data dir holds only images whose links were handed out (no temporary files), each link
  that has not expired yet still works, and after the TTL and a sweep nothing is left;
- the gateway's RSS after the run is back near its warmed-up baseline.

``python -m bench.load_faults --requests 2000 --concurrency 100`` writes
``bench/results/reliability.md`` and ``.json``; ``tests/e2e/test_load_faults.py`` runs a smaller
load through the same :func:`run`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from bench.fault_plan import FAULTS, MAX_RETRIES, LoadConfig, plan_faults
from bench.processes import Server, free_port, start, wait_ready
from bench.reliability_report import LoadReport
from tests.fakes.fake_fal import FakeFal

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
MODEL = "hidream-i1-full"


# --- the gateway process ------------------------------------------------------------------------


@dataclass(frozen=True)
class Gateway:
    """``pixelgate serve`` in its own process group, and where it listens."""

    server: Server
    base_url: str


@dataclass(frozen=True)
class Secrets:
    fal_key: str = field(default_factory=lambda: f"loadfal-{secrets.token_hex(6)}:falsecret-{secrets.token_hex(10)}")
    openai_key: str = field(default_factory=lambda: f"sk-loadopenai-{secrets.token_hex(12)}")
    signing_secret: str = field(default_factory=lambda: f"signing-{secrets.token_hex(16)}")
    client_key: str = field(default_factory=lambda: f"sk-loadclient-{secrets.token_hex(12)}")

    def all(self) -> tuple[str, ...]:
        return (self.fal_key, *self.fal_key.split(":"), self.openai_key, self.signing_secret, self.client_key)


def start_gateway(workdir: Path, fake: FakeFal, config: LoadConfig, keys: Secrets) -> Gateway:
    """``pixelgate serve`` on a free loopback port with its own data dir, config file and log."""
    port = free_port()
    config_file = workdir / "pixelgate.yaml"
    config_file.write_text(
        json.dumps({"providers": {"fal": {"max_retries": MAX_RETRIES}}}),
        encoding="utf-8",
    )
    env = {
        "PIXELGATE_DATA_DIR": str(workdir / "data"),
        "PIXELGATE_API_KEYS": keys.client_key,
        "PIXELGATE_SIGNING_SECRET": keys.signing_secret,
        "PIXELGATE_IMAGE_TTL_SECONDS": str(config.ttl_seconds),
        "PIXELGATE_SWEEP_INTERVAL_SECONDS": str(config.sweep_seconds),
        "PIXELGATE_REQUEST_TIMEOUT_SECONDS": "30",
        "FAL_KEY": keys.fal_key,
        "PIXELGATE_FAL_BASE_URL": fake.base_url,
        "PIXELGATE_FAL_STORAGE_URL": fake.storage_url,
        "OPENAI_API_KEY": keys.openai_key,
        "PIXELGATE_CONFIG": str(config_file),
    }
    argv = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    server = start("gateway", [*argv, "--log-level", "info"], env, workdir, ROOT)
    base_url = f"http://127.0.0.1:{port}"
    wait_ready(server, f"{base_url}/healthz", timeout_seconds=60)
    return Gateway(server, base_url)


# --- the load -----------------------------------------------------------------------------------


@dataclass
class _Outcome:
    fault: str
    status: int | None
    code: str | None = None
    links: list[str] = field(default_factory=list)
    fetched: bool = False
    problem: str | None = None


def _error_shape_problem(body: object) -> str | None:
    if not isinstance(body, dict) or set(body) != {"error"} or not isinstance(body["error"], dict):
        return "not an OpenAI error object"
    error = body["error"]
    if set(error) != {"message", "type", "param", "code"} or not isinstance(error["message"], str):
        return f"error object with keys {sorted(error)}"
    return None


async def _one(
    client: httpx.AsyncClient, index: int, fault: str, response_format: str, config: LoadConfig, keys: Secrets
) -> _Outcome:
    expected = FAULTS[fault]
    marker = f" [fake:{expected.marker}]" if expected.marker else ""
    body = {
        "model": MODEL,
        "prompt": f"load request {index}{marker}",
        "size": "128x96",
        "response_format": response_format,
    }
    try:
        response = await client.post("/v1/images/generations", json=body, timeout=config.timeout_seconds)
    except httpx.TimeoutException:
        return _Outcome(fault, None, problem=f"request {index} ({fault}) hung past {config.timeout_seconds} s")
    except httpx.HTTPError as exc:
        return _Outcome(fault, None, problem=f"request {index} ({fault}) failed on the wire: {exc!r}")
    outcome = _Outcome(fault, response.status_code)
    visible = response.text + " " + " ".join(f"{k}: {v}" for k, v in response.headers.items())
    if any(secret in visible for secret in keys.all()):
        outcome.problem = f"request {index} ({fault}): a secret in the response"
        return outcome
    if response.status_code == 200:
        data = response.json()["data"]
        outcome.links = [item["url"] for item in data if "url" in item]
        if response_format == "url" and len(outcome.links) != len(data):
            outcome.problem = f"request {index}: url asked, got {data!r:.100}"
        elif outcome.links and index % config.fetch_every == 0:
            outcome.fetched = True
            outcome.problem = await _fetch_problem(client, outcome.links[0])
    else:
        try:
            payload = response.json()
        except ValueError:
            payload = None
        outcome.problem = _error_shape_problem(payload)
        outcome.code = payload["error"]["code"] if outcome.problem is None and isinstance(payload, dict) else None
    if outcome.problem is None and (response.status_code, outcome.code) != (expected.status, expected.code):
        outcome.problem = (
            f"request {index} ({fault}): expected {expected.status} {expected.code}, "
            f"got {response.status_code} {outcome.code}: {response.text[:200]}"
        )
    return outcome


async def _drive(base_url: str, plan: list[tuple[str, str]], config: LoadConfig, keys: Secrets) -> list[_Outcome]:
    limits = httpx.Limits(max_connections=config.concurrency, max_keepalive_connections=config.concurrency)
    headers = {"Authorization": f"Bearer {keys.client_key}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits) as client:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for index in range(len(plan)):
            queue.put_nowait(index)
        outcomes: list[_Outcome | None] = [None] * len(plan)

        async def worker() -> None:
            while not queue.empty():
                index = queue.get_nowait()
                fault, response_format = plan[index]
                outcomes[index] = await _one(client, index, fault, response_format, config, keys)

        await asyncio.gather(*(worker() for _ in range(config.concurrency)))
    return [outcome for outcome in outcomes if outcome is not None]


async def _fetch_problem(client: httpx.AsyncClient, link: str) -> str | None:
    """Download a link just handed out; the problem, if it does not serve an image."""
    try:
        response = await client.get(link, timeout=30)
    except httpx.HTTPError as exc:
        return f"handed-out link failed: {link}: {exc!r}"
    if response.status_code == 403 and time.time() >= _link_name(link)[1]:
        # A slow run can queue the GET past the link's expiry; refusing an expired link is right.
        return None
    if response.status_code != 200 or not response.headers.get("content-type", "").startswith("image/"):
        return f"handed-out link does not serve an image: {link} -> {response.status_code}"
    return None


def _store_files(data_dir: Path) -> list[str]:
    images = data_dir / "images"
    return sorted(p.name for p in images.rglob("*") if p.is_file()) if images.exists() else []


def _link_name(link: str) -> tuple[str, int]:
    parts = urlsplit(link)
    expires = next(int(v) for k, _, v in (kv.partition("=") for kv in parts.query.split("&")) if k == "expires")
    return parts.path.rsplit("/", 1)[-1], expires


class _RssSampler:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.peak = 0
        self._task: asyncio.Task[None] | None = None

    async def _loop(self) -> None:
        while True:
            self.peak = max(self.peak, self.gateway.server.rss_bytes())
            await asyncio.sleep(0.1)

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self.peak = max(self.peak, self.gateway.server.rss_bytes())


def run(config: LoadConfig, workdir: Path, *, rss_slack_mib: float = 64.0) -> LoadReport:
    """One load run in ``workdir`` (data dir, config file and gateway log go there)."""
    keys = Secrets()
    report = LoadReport(config)
    plan = plan_faults(config)
    report.faults = dict(Counter(fault for fault, _ in plan))
    with FakeFal(api_key=keys.fal_key, latency=0.02) as fake:
        gateway = start_gateway(workdir, fake, config, keys)
        try:
            asyncio.run(_run_load(gateway, fake, plan, config, keys, report, workdir / "data"))
        finally:
            gateway.server.stop()
        _reconcile(fake, plan, report)
    log_text = gateway.server.log_path.read_text(errors="replace")
    for secret in keys.all():
        if secret in log_text:
            report.problems.append("a secret appears in the gateway's output")
    if report.rss_after_mib > report.rss_baseline_mib + rss_slack_mib:
        report.problems.append(
            f"RSS did not return near its baseline: {report.rss_baseline_mib:.1f} -> {report.rss_after_mib:.1f} MiB"
        )
    return report


async def _run_load(
    gateway: Gateway,
    fake: FakeFal,
    plan: list[tuple[str, str]],
    config: LoadConfig,
    keys: Secrets,
    report: LoadReport,
    data_dir: Path,
) -> None:
    warmup = [("none", "url")] * min(config.concurrency, 20)
    # The warm-up's links count as handed out too: on a run shorter than the TTL their files remain.
    warmup_links = [link for outcome in await _drive(gateway.base_url, warmup, config, keys) for link in outcome.links]
    await asyncio.sleep(1.0)
    report.rss_baseline_mib = gateway.server.rss_bytes() / 2**20
    fake.reset()

    sampler = _RssSampler(gateway)
    sampler.start()
    started = time.monotonic()
    outcomes = await _drive(gateway.base_url, plan, config, keys)
    report.seconds = time.monotonic() - started
    await sampler.stop()
    report.rss_peak_mib = sampler.peak / 2**20

    links = [link for outcome in outcomes for link in outcome.links]
    report.links_handed_out = len(links)
    report.links_fetched = sum(outcome.fetched for outcome in outcomes)
    classes: Counter[str] = Counter()
    for outcome in outcomes:
        if outcome.status is None:
            report.hung += 1
            classes["no answer"] += 1
        else:
            classes["200 success" if outcome.status == 200 else f"{outcome.status} {outcome.code}"] += 1
        if outcome.problem:
            report.problems.append(outcome.problem)
    report.outcomes = dict(classes)
    if sum(classes.values()) != config.requests or len(outcomes) != config.requests:
        report.problems.append(f"outcomes {sum(classes.values())} != requests sent {config.requests}")

    _check_store(data_dir, [*warmup_links, *links], report, config)
    await asyncio.sleep(2.0)
    report.rss_after_mib = gateway.server.rss_bytes() / 2**20

    newest_expiry = max((_link_name(link)[1] for link in [*warmup_links, *links]), default=0)
    deadline = time.monotonic() + config.ttl_seconds + 10 * config.sweep_seconds + 10
    while time.time() < newest_expiry + 2 * config.sweep_seconds and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
    await asyncio.sleep(2 * config.sweep_seconds)
    left = _store_files(data_dir)
    report.files_after_sweep = len(left)
    if left:
        report.problems.append(f"{len(left)} files left in the data dir after the TTL and a sweep: {left[:5]}")


def _check_store(data_dir: Path, links: list[str], report: LoadReport, config: LoadConfig) -> None:
    now = time.time()
    files = set(_store_files(data_dir))
    report.files_after_run = len(files)
    handed_out = dict(_link_name(link) for link in links)
    strays = sorted(files - set(handed_out))
    if strays:
        report.problems.append(f"{len(strays)} files in the data dir that no link points to: {strays[:5]}")
    margin = 2 * config.sweep_seconds + 1
    missing = [name for name, expires in handed_out.items() if expires > now + margin and name not in files]
    if missing:
        report.problems.append(f"{len(missing)} unexpired handed-out links lost their file: {missing[:5]}")


def _reconcile(fake: FakeFal, plan: list[tuple[str, str]], report: LoadReport) -> None:
    """What the fake saw per fault kind against what each kind must cause."""
    by_marker = {fault.marker.partition(":")[0] if fault.marker else "ok": name for name, fault in FAULTS.items()}
    attempts: Counter[str] = Counter(by_marker.get(a.scenario, a.scenario) for a in fake.attempts)
    accepted: Counter[str] = Counter(by_marker.get(s.scenario, s.scenario) for s in fake.submissions)
    report.fake_attempts, report.fake_accepted = len(fake.attempts), len(fake.submissions)
    for name, count in report.faults.items():
        fault = FAULTS[name]
        if attempts[name] != count * fault.attempts:
            report.problems.append(
                f"{name}: fake saw {attempts[name]} submit attempts, expected {count * fault.attempts}"
            )
        if accepted[name] != (count if fault.accepted else 0):
            report.problems.append(f"{name}: fake accepted {accepted[name]} jobs, expected {count * fault.accepted}")


def main() -> None:
    parser = argparse.ArgumentParser(description="bounded load test with injected upstream faults")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--ttl", type=int, default=20, help="hosted image TTL in seconds")
    args = parser.parse_args()
    config = LoadConfig(requests=args.requests, concurrency=args.concurrency, seed=args.seed, ttl_seconds=args.ttl)
    with tempfile.TemporaryDirectory(prefix="pixelgate-load-") as workdir:
        report = run(config, Path(workdir))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "reliability.md").write_text(report.markdown(), encoding="utf-8")
    (RESULTS / "reliability.json").write_text(json.dumps(asdict(report), indent=2) + "\n", encoding="utf-8")
    print(report.markdown())
    sys.exit(1 if report.problems else 0)


if __name__ == "__main__":
    main()
