"""A prediction of the fake Replicate: its timeline, what it makes, and its JSON as Replicate shows it.

A prediction is ``starting`` for the first half of its latency and ``processing`` for the second,
then ``succeeded`` or ``failed`` (the reference, section 4). ``Cancel-After`` ends it ``aborted``
before it starts and ``canceled`` after; a cancel ends it ``canceled``. Its outputs are rendered
in a worker thread from the create on (:func:`render_run`), so they are ready when it finishes.
"""

from __future__ import annotations

import asyncio
import base64
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import JsonValue

from tests.fakes import replicate_scenarios as answers
from tests.fakes.fal_images import MEDIA_TYPES, data_uri_bytes, image_size, render_as
from tests.fakes.loopback import Pick
from tests.fakes.replicate_models import ModelSpec, output_count, output_format, output_size

JsonObject = dict[str, JsonValue]
TERMINAL = frozenset({"succeeded", "failed", "canceled", "aborted"})
_EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp"}
_PREFER = re.compile(r"^wait(?:=([1-9]|[1-5][0-9]|60))?$")
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


@dataclass
class Run:
    """What a prediction made: its images (bytes, media type, file name), or the error it failed with."""

    images: list[tuple[bytes, str, str]]
    error: str | None = None

    def image(self, name: str) -> tuple[bytes, str] | None:
        return next(((data, media_type) for data, media_type, n in self.images if n == name), None)


@dataclass
class Prediction:
    id: str
    spec: ModelSpec
    version: str
    input: JsonObject
    scenario: Pick
    latency: float
    deadline: float | None
    """``time.monotonic()`` at which ``Cancel-After`` ends it."""
    created_at: datetime
    created: float = field(default_factory=time.monotonic)
    cancelled_at: float | None = None
    poll_failures: int = 0
    run: asyncio.Future[Run] | None = None
    ran_at: float | None = None
    """When ``run`` finished (its outputs exist from then on)."""

    def start_run(self, render: Callable[[], Run]) -> None:
        """Render in a worker thread from now on, as the real model runs while the client waits."""
        self.run = asyncio.get_running_loop().run_in_executor(None, render)
        self.run.add_done_callback(lambda _: setattr(self, "ran_at", time.monotonic()))

    def finished_run(self) -> Run | None:
        return self.run.result() if self.run is not None and self.run.done() else None

    def _outputs_at(self) -> float | None:
        """When its outputs exist: its latency is over and its run has finished."""
        return None if self.ran_at is None else max(self.created + self.latency, self.ran_at)

    def status(self, now: float) -> str:
        start = self.created + self.latency / 2
        # sync_processing: still "processing" for ARG seconds (default 1) after the outputs exist.
        hold = self.scenario.arg_float(1.0) if self.scenario.name == "sync_processing" else 0.0
        outputs_at = self._outputs_at()
        done = self.created + self.latency + hold if outputs_at is None else outputs_at + hold
        never = self.scenario.name == "never"
        if self.cancelled_at is not None:
            return "canceled"
        if self.deadline is not None and now >= self.deadline and (never or self.deadline < done):
            return "aborted" if self.deadline < start else "canceled"
        if now < start:
            return "starting"
        run = self.finished_run()
        if never or now < done or run is None:
            return "processing"
        return "failed" if run.error else "succeeded"

    def output_ready(self, status: str, now: float) -> bool:
        """Succeeded, or (``sync_processing``) still processing with its output already set."""
        if status == "succeeded":
            return True
        outputs_at = self._outputs_at()
        return (
            status == "processing"
            and self.scenario.name == "sync_processing"
            and outputs_at is not None
            and now >= outputs_at
        )

    def settled(self) -> bool:
        """What ``Prefer: wait`` waits for: a terminal status or an output."""
        now = time.monotonic()
        status = self.status(now)
        return status in TERMINAL or self.output_ready(status, now)

    def as_json(self, api_url: str, root_url: str) -> JsonObject:
        """The prediction object (the reference, section 4) as ``GET /v1/predictions/{id}`` shows it now."""
        now = time.monotonic()
        status = self.status(now)
        url = f"{api_url}/predictions/{self.id}"
        body: JsonObject = {
            "id": self.id,
            "model": self.spec.name,
            "version": self.version,
            "input": self.input,
            "logs": "" if status == "starting" else "Running predict()...\n",
            "output": None,
            "data_removed": False,
            "error": None,
            "status": status,
            "created_at": iso(self.created_at),
            "source": "api",
            "urls": {"get": url, "cancel": f"{url}/cancel", "web": f"{root_url}/p/{self.id}"},
        }
        if self.deadline is not None:
            body["deadline"] = self._at(self.deadline)
        if status != "starting":
            body["started_at"] = self._at(self.created + self.latency / 2)
        if status in TERMINAL:
            body["completed_at"] = self._at(min(now, self.created + self.latency))
            body["metrics"] = {"predict_time": round(self.latency / 2, 4), "total_time": round(self.latency, 4)}
        run = self.finished_run()
        if status == "failed" and run is not None:
            body["error"] = run.error
        if self.output_ready(status, now) and run is not None:
            if self.scenario.name == "expired":
                body.update(input={}, output=None, data_removed=True, logs="")
            else:
                body["output"] = self._output(run, root_url)
        return body

    def _at(self, moment: float) -> str:
        return iso(self.created_at + timedelta(seconds=moment - self.created))

    def _output(self, run: Run, root_url: str) -> JsonValue:
        if self.scenario.name == "no_output":
            return [] if self.spec.output_is_list else None
        urls: list[JsonValue] = []
        for data, media_type, name in run.images:
            if self.scenario.name == "data_url":
                urls.append(f"data:{media_type};base64,{_b64(data)}")
            else:
                urls.append(f"{root_url}/delivery/{self.id}/{name}")
        return urls if self.spec.output_is_list else urls[0]


def render_run(prediction: Prediction, input_bytes: Callable[[str], bytes | None], max_side: int | None) -> Run:
    """What the model makes for ``prediction`` (called in a worker thread while it "runs").

    ``input_bytes`` resolves an input image URL the fake can read (``data:``, its files, its outputs).
    """
    name, spec, payload = prediction.scenario.name, prediction.spec, prediction.input
    if name == "sensitive":
        return Run([], answers.SENSITIVE)
    if name == "nsfw":
        return Run([], answers.NSFW_ONE if spec.name.endswith("kontext-dev") else answers.NSFW_ALL)
    if name == "failed":
        return Run([], prediction.scenario.arg or answers.OUT_OF_MEMORY)
    input_size = None
    for image_field in spec.image_fields():
        value = payload.get(image_field)
        first = value[0] if isinstance(value, list) and value else value
        data = input_bytes(first) if isinstance(first, str) else None
        if data is not None:
            if (input_size := image_size(data)) is None:
                return Run([], answers.CORRUPT_INPUT)
            break
    width, height = output_size(spec, payload, input_size)
    if max_side and max(width, height) > max_side:
        scale = max_side / max(width, height)
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
    fmt = output_format(spec, payload)
    count = output_count(spec, payload) - (1 if name == "fewer_outputs" else 0)
    seed = payload.get("seed")
    base = seed if isinstance(seed, int) and seed >= 0 else random.randrange(2**31)
    images = []
    for index in range(max(1, count)):
        data = render_as(width, height, base + index, fmt)
        if name == "truncated":
            data = data[: len(data) // 2]
        elif name == "not_image":
            data = answers.CDN_HTML.format("Not an image").encode()
        images.append((data, MEDIA_TYPES[fmt], f"out-{index}.{_EXTENSIONS[fmt]}"))
    return Run(images)


def data_uri_input(url: str) -> bytes | None:
    """A ``data:`` URI's bytes (empty when its base64 is broken: the model then fails to read it)."""
    try:
        return data_uri_bytes(url)
    except ValueError:
        return b""


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_prefer(value: str | None) -> float | None:
    """Seconds to hold a create (``Prefer: wait`` is 60), None without the header, -1 when malformed."""
    if value is None:
        return None
    match = _PREFER.match(value.strip())
    if match is None:
        return -1.0
    return float(match.group(1) or 60)


def parse_cancel_after(value: str | None, minimum: float) -> float | None:
    """``Cancel-After`` in seconds, None without the header, -1 when malformed or under ``minimum``."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        seconds = float(text)
    elif text and (match := _DURATION.match(text)):
        hours, minutes, secs = (int(part) if part else 0 for part in match.groups())
        seconds = float(hours * 3600 + minutes * 60 + secs)
    else:
        return -1.0
    return seconds if seconds >= minimum else -1.0


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
