"""The long-job benchmark's client: N image requests sent at once or spread over S seconds, with aiohttp.

One aiohttp session on uvloop, no connection limit, one connection per request in flight. Each
request's prompt carries its index (``longjobs #<i>``), so its answer can be matched with the job
the fake fal ran for it. Times are ``time.monotonic()``, the system-wide monotonic clock the fake
(another process) uses for its completion times.

The client measures its own overhead so a reader can tell it was not the bottleneck: its CPU
seconds over the run, and its event loop's lag (how late a 10 ms timer fires: a loop busy with
the client's own work would read answers late and inflate every latency it reports).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Literal

import aiohttp

Kind = Literal["generate", "edit"]
PROMPT_PREFIX = "longjobs #"
LAG_TICK_SECONDS = 0.01


@dataclass(frozen=True)
class LoadSpec:
    """What to send: ``jobs`` requests of ``kind``, the i-th at ``i * spread / jobs`` seconds."""

    api_url: str
    key: str
    kind: Kind
    jobs: int
    spread_seconds: float
    response_format: str
    model: str
    edit_image: bytes = b""
    timeout_seconds: float = 300.0


@dataclass(frozen=True)
class Shot:
    """One request: when it was sent and its answer fully read, and what the answer was."""

    index: int
    sent_at: float
    received_at: float
    status: int
    code: str | None = None
    body_bytes: int = 0

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.code is None


@dataclass
class ClientOverhead:
    """The client's own cost over the run."""

    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    lag_ms: list[float] = field(default_factory=list)


def prompt_of(index: int) -> str:
    return f"{PROMPT_PREFIX}{index}: a lighthouse at dusk, oil painting"


def index_of(prompt: str) -> int | None:
    """The request index carried by ``prompt``, or None for a prompt the benchmark did not send."""
    if not prompt.startswith(PROMPT_PREFIX):
        return None
    head = prompt[len(PROMPT_PREFIX) :].split(":", 1)[0]
    return int(head) if head.isdigit() else None


def _request_kwargs(spec: LoadSpec, index: int) -> dict[str, object]:
    if spec.kind == "generate":
        body = {"model": spec.model, "prompt": prompt_of(index), "response_format": spec.response_format}
        return {"data": json.dumps(body).encode(), "headers": {"Content-Type": "application/json"}}
    form = aiohttp.FormData()
    form.add_field("model", spec.model)
    form.add_field("prompt", prompt_of(index))
    form.add_field("response_format", spec.response_format)
    form.add_field("image", spec.edit_image, filename="input.png", content_type="image/png")
    return {"data": form}


def _error_code(body: bytes) -> str:
    try:
        error = json.loads(body)["error"]
        return str(error.get("code") or error.get("type") or "unknown")
    except (ValueError, KeyError, TypeError, AttributeError):
        return "not an OpenAI error"


async def _one(session: aiohttp.ClientSession, spec: LoadSpec, index: int) -> Shot:
    path = "/images/generations" if spec.kind == "generate" else "/images/edits"
    sent_at = time.monotonic()
    try:
        async with session.post(f"{spec.api_url}{path}", **_request_kwargs(spec, index)) as response:  # type: ignore[arg-type]
            body = await response.read()
            received_at = time.monotonic()
            if response.status != 200:
                return Shot(index, sent_at, received_at, response.status, _error_code(body), len(body))
            marker = b'"b64_json"' if spec.response_format == "b64_json" else b'"url"'
            code = None if marker in body else "answer without an image"
            return Shot(index, sent_at, received_at, 200, code, len(body))
    except (aiohttp.ClientError, TimeoutError) as exc:
        return Shot(index, sent_at, time.monotonic(), 0, type(exc).__name__)


async def _lag_sampler(overhead: ClientOverhead, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        due = loop.time() + LAG_TICK_SECONDS
        await asyncio.sleep(LAG_TICK_SECONDS)
        overhead.lag_ms.append(max(0.0, loop.time() - due) * 1000)


async def run_load(spec: LoadSpec) -> tuple[list[Shot], ClientOverhead]:
    """Send the load of ``spec`` and wait for every answer (each bounded by ``spec.timeout_seconds``)."""
    overhead = ClientOverhead()
    stop = asyncio.Event()
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=spec.timeout_seconds)
    headers = {"Authorization": f"Bearer {spec.key}", "Accept-Encoding": "gzip, deflate"}
    cpu_started, wall_started = time.process_time(), time.monotonic()
    sampler = asyncio.create_task(_lag_sampler(overhead, stop))
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as session:
        tasks: list[asyncio.Task[Shot]] = []
        started = time.monotonic()
        for index in range(spec.jobs):
            due = started + index * spec.spread_seconds / spec.jobs
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            tasks.append(asyncio.create_task(_one(session, spec, index)))
        shots = list(await asyncio.gather(*tasks))
    stop.set()
    await sampler
    overhead.cpu_seconds = time.process_time() - cpu_started
    overhead.wall_seconds = time.monotonic() - wall_started
    return shots, overhead
