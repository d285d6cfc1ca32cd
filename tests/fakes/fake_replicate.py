"""A fake Replicate: a real HTTP server on loopback speaking Replicate's prediction and Files APIs.

What it does NOT model: webhooks (accepted, recorded, never sent), deployments
(``/v1/deployments/...`` is a 404), streaming (no ``urls.stream``), listing predictions, the
model and version metadata routes, signed file downloads (``/v1/files/{id}/download`` takes the
bearer token instead), data removal after an hour (only the ``expired`` scenario), rate limiting by
count (429 only from a scenario), fetching input images from other hosts (an input URL that is not a
``data:`` URI, a file of this fake or one of its outputs is taken on trust, and the output size
falls back to the model's default), the safety-tolerance rule of kontext with input images, and
per-model image-count limits (they are in the schema descriptions only).

Run it standalone for offline development::

    python -m tests.fakes.fake_replicate --port 8091            # --token T, --latency S

In tests, ``with FakeReplicate(token="r8_test") as fake:`` gives ``fake.base_url`` (the API root,
``http://127.0.0.1:PORT/v1``, what ``PIXELGATE_REPLICATE_BASE_URL`` takes) and records
``fake.attempts`` (every create request, failed ones too), ``fake.creates`` (accepted ones),
``fake.polls`` (prediction ids per ``GET``), ``fake.cancels``, ``fake.files`` and ``fake.deliveries``.

Protocol (the Replicate reference, sections 1-7 and 11): ``POST /v1/models/{owner}/{name}/predictions``
(official models; a community model there is a 404) and ``POST /v1/predictions`` with ``version``
(``owner/name:ID``, a bare 64-hex ``ID``, or ``owner/name`` for an official model); the body is
strict (unknown top-level keys are a 422) and ``input`` is validated against the model's schema
(:mod:`tests.fakes.replicate_models`). ``Authorization: Bearer|Token <token>`` is required (401
problem+json otherwise). Creates answer 201 with the prediction; without ``Prefer`` it is
``starting``; ``Prefer: wait`` / ``wait=N`` (1-60) holds the answer until the prediction settles or
N seconds pass, so a waited answer can still be ``starting`` or ``processing``, and says
``Preference-Applied``. ``Cancel-After`` (``30s``, ``5m``, ``1h30m``, seconds; at least 5 s) ends a
prediction as ``aborted`` (not started yet) or ``canceled``. A prediction is ``starting`` for half
of ``fake.latency``, ``processing`` for the other half, then ``succeeded`` (or ``failed``).
``GET /v1/predictions/{id}`` polls, ``POST /v1/predictions/{id}/cancel`` cancels (a finished one is
left as it is). Outputs are real images (PNG, JPEG or WebP per ``output_format``; the size per
:func:`~tests.fakes.replicate_models.output_size`) at ``/delivery/{id}/out-N.ext`` on this server,
served without auth, as one URL string or a list as the model's schema says. ``POST /v1/files``
(multipart ``content``, ``filename``, ``type``, ``metadata``) stores a file (413 from
``fake.max_file_bytes``); its ``urls.get`` works as a model input, like a ``data:`` URI.

Scenarios (see :mod:`tests.fakes.loopback` for how one is picked: a ``[fake:NAME]`` or
``[fake:NAME:ARG]`` marker in any string of ``input``, ``fake.next_scenarios``,
``fake.model_scenarios[owner/name]``, ``fake.scenario``). At create: ``429`` (``Retry-After`` ARG,
default 1; ``none`` for no header), ``500``, ``502``, ``503``, ``504`` and ``reset`` (connection
dropped) fail once per identical request, every time as ``NAME_always``; ``401``, ``402``
(insufficient credit), ``404``, ``422`` (``invalid_fields`` for ``input.ARG``, default ``seed``).
On polls: ``poll_503`` (or ``poll_429``/``poll_500``/``poll_502``/``poll_504``): the first ARG (default 1)
``GET``s of the prediction fail. In the run: ``sensitive`` (failed, Replicate's E005 text),
``nsfw`` (failed, the flux cog's NSFW text), ``failed`` (failed with ARG or an E1001 text),
``never`` (processing until canceled), ``slow`` (ARG seconds, default 2), ``sync_processing`` (a
waited create answers ``processing`` with the output already set; ``succeeded`` ARG seconds later,
default 1), ``fewer_outputs`` (one image fewer than asked, as flux drops NSFW images),
``no_output`` (succeeded without output), ``data_url`` (outputs as ``data:`` URIs), ``output_404``
(the output URLs 404), ``expired`` (``output: null``, ``data_removed: true``), ``truncated`` (cut
images), ``not_image`` (HTML served as the image).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import random
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pydantic import JsonValue
from starlette.applications import Starlette
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes import replicate_scenarios as answers
from tests.fakes.fal_images import MEDIA_TYPES, data_uri_bytes, image_size, render_as
from tests.fakes.loopback import LoopbackFake, OnceGate, Pick, pick
from tests.fakes.replicate_models import (
    Invalid,
    ModelSpec,
    load_models,
    output_count,
    output_format,
    output_size,
    validate_input,
)

JsonObject = dict[str, JsonValue]
TERMINAL = frozenset({"succeeded", "failed", "canceled", "aborted"})
_PREFER = re.compile(r"^wait(?:=([1-9]|[1-5][0-9]|60))?$")
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_TOP_LEVEL = frozenset({"input", "webhook", "webhook_events_filter", "webhook_completed", "stream"})
_EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp"}


@dataclass
class CreateAttempt:
    """One create request as received, and what the fake answered."""

    route: str
    """``models`` or ``predictions`` (the version route)."""
    model: str | None
    body: JsonValue
    headers: dict[str, str]
    scenario: str
    status_code: int = 0
    prediction_id: str | None = None
    at: float = field(default_factory=time.monotonic)

    @property
    def input(self) -> JsonObject:
        value = self.body.get("input") if isinstance(self.body, dict) else None
        return value if isinstance(value, dict) else {}


@dataclass
class StoredFile:
    id: str
    name: str
    content_type: str
    data: bytes
    metadata: JsonValue
    created_at: datetime


@dataclass
class _Run:
    """What a prediction made: its images (bytes, media type, file name), or the error it failed with."""

    images: list[tuple[bytes, str, str]]
    error: str | None = None


@dataclass
class _Prediction:
    id: str
    spec: ModelSpec
    version: str
    input: JsonObject
    scenario: Pick
    latency: float
    deadline: float | None
    created_at: datetime
    created: float = field(default_factory=time.monotonic)
    cancelled_at: float | None = None
    poll_failures: int = 0
    run: asyncio.Future[_Run] | None = None


class FakeReplicate(LoopbackFake):
    """The fake server and its knobs; see the module docstring. Start with ``with`` or :meth:`start`."""

    name = "fake Replicate"

    def __init__(self, *, token: str | None = None, latency: float = 0.05, host: str = "127.0.0.1", port: int = 0):
        super().__init__(host, port)
        self.token = token
        """Required bearer token; None accepts any token (a missing header is still a 401)."""
        self.latency = latency
        self.strict_input = True
        """Unknown keys inside ``input`` are a 422 (Replicate's own behaviour is unconfirmed)."""
        self.max_output_side: int | None = None
        """Scale outputs down to this longest side (keeping the ratio), to keep tests fast."""
        self.max_file_bytes = 100 * 1024 * 1024
        self.min_cancel_after_seconds = 5.0
        """Replicate's minimum ``Cancel-After``; tests may lower it to see a deadline pass quickly."""
        self.scenario = "ok"
        self.next_scenarios: list[str] = []
        self.model_scenarios: dict[str, str] = {}
        self.models = load_models()
        self.attempts: list[CreateAttempt] = []
        self.creates: list[CreateAttempt] = []
        self.polls: list[str] = []
        self.cancels: list[str] = []
        self.files: dict[str, StoredFile] = {}
        self.deliveries: list[str] = []
        self._predictions: dict[str, _Prediction] = {}
        self._once = OnceGate()
        self.app = Starlette(
            routes=[
                Route("/v1/models/{owner}/{name}/predictions", self._create_official, methods=["POST"]),
                Route("/v1/predictions", self._create_version, methods=["POST"]),
                Route("/v1/predictions/{id}", self._get, methods=["GET"]),
                Route("/v1/predictions/{id}/cancel", self._cancel, methods=["POST"]),
                Route("/v1/files", self._files, methods=["GET", "POST"]),
                Route("/v1/files/{id}", self._file, methods=["GET", "DELETE"]),
                Route("/v1/files/{id}/download", self._download, methods=["GET"]),
                Route("/delivery/{id}/{name}", self._delivery, methods=["GET"]),
                Route("/{path:path}", self._unknown, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
            ]
        )

    @property
    def base_url(self) -> str:
        """The API root, ``http://127.0.0.1:PORT/v1``."""
        return f"{self.root_url}/v1"

    def versions(self) -> dict[str, str]:
        """The version id the version route accepts, per ``owner/name``."""
        return {name: spec.version for name, spec in self.models.items()}

    def reset(self) -> None:
        """Forget predictions, files, recorded requests and scripted scenarios (for a shared server)."""
        self.scenario = "ok"
        self.strict_input = True
        self.max_output_side = None
        self.min_cancel_after_seconds = 5.0
        self.next_scenarios.clear()
        self.model_scenarios.clear()
        self.attempts.clear()
        self.creates.clear()
        self.polls.clear()
        self.cancels.clear()
        self.files.clear()
        self.deliveries.clear()
        self._predictions.clear()
        self._once.clear()

    # -- creating -------------------------------------------------------------------------------

    def _authorized(self, request: Request) -> Response | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme not in ("Bearer", "Token") or not token.strip():
            return answers.unauthenticated(missing=True)
        if self.token is not None and token.strip() != self.token:
            return answers.unauthenticated(missing=False)
        return None

    async def _create_official(self, request: Request) -> Response:
        name = f"{request.path_params['owner']}/{request.path_params['name']}"
        spec = self.models.get(name)
        return await self._create(request, "models", spec if spec is not None and spec.official else None)

    async def _create_version(self, request: Request) -> Response:
        return await self._create(request, "predictions", None)

    async def _create(self, request: Request, route: str, spec: ModelSpec | None) -> Response:
        if (denied := self._authorized(request)) is not None:
            return denied
        raw = await request.body()
        try:
            body: JsonValue = json.loads(raw)
        except ValueError:
            return answers.problem(400, "The request body is not valid JSON.", "Invalid JSON")
        headers = {k: v for k, v in request.headers.items() if k in ("prefer", "cancel-after", "user-agent")}
        attempt = CreateAttempt(route, spec.name if spec else None, body, headers, "ok")
        self.attempts.append(attempt)
        response = await self._create_checked(request, route, spec, body, raw, attempt)
        attempt.status_code = response.status_code
        return response

    async def _create_checked(
        self, request: Request, route: str, spec: ModelSpec | None, body: JsonValue, raw: bytes, attempt: CreateAttempt
    ) -> Response:
        if route == "models" and spec is None:
            return answers.not_found()
        if not isinstance(body, dict):
            return answers.invalid([], ["- Invalid type. Expected: object"])
        allowed = _TOP_LEVEL | ({"version"} if route == "predictions" else set())
        missing = [key for key in ("version", "input") if key in allowed and key not in body]
        problems = [Invalid("required", "(root)", f"{key} is required") for key in missing]
        problems += [
            Invalid("additional_property_not_allowed", "(root)", f"Additional property {key} is not allowed")
            for key in body
            if key not in allowed
        ]
        if problems:
            return answers.invalid([p.as_json() for p in problems], [p.detail_line() for p in problems])
        if spec is None:
            spec = self._by_version(body.get("version"))
            if spec is None:
                return answers.invalid_version()
            attempt.model = spec.name
        wait = _prefer(request.headers.get("prefer"))
        deadline = _cancel_after(request.headers.get("cancel-after"), self.min_cancel_after_seconds)
        if wait == -1.0 or deadline == -1.0:
            header = "Prefer" if wait == -1.0 else "Cancel-After"
            item = Invalid("invalid_header", header, f"{header} header is not valid")
            return answers.invalid([item.as_json()], [item.detail_line()], "Invalid request header")
        chosen = pick(body.get("input"), self.next_scenarios, self.model_scenarios.get(spec.name, self.scenario))
        attempt.scenario = chosen.name
        if chosen.name not in answers.KNOWN:  # a typo in a test's marker should not pass as "ok"
            return answers.problem(400, f"fake Replicate: unknown scenario {chosen.name!r}", "Unknown scenario")
        if chosen.name in answers.CREATE_FAILURES:
            transient = chosen.name in answers.TRANSIENT
            fingerprint = f"{request.url.path}\n{raw.decode('utf-8', 'replace')}"
            if not transient or self._once.fails(chosen, fingerprint):
                failure = answers.create_failure(chosen)
                assert failure is not None
                return failure
            chosen = Pick("ok", None, False)
        payload = body.get("input")
        invalid = validate_input(spec, payload, strict=self.strict_input)
        if invalid:
            return answers.invalid([p.as_json() for p in invalid], [p.detail_line() for p in invalid])
        assert isinstance(payload, dict)
        prediction = self._start(spec, payload, chosen, deadline)
        attempt.prediction_id = prediction.id
        self.creates.append(attempt)
        extra = {"ratelimit-remaining": "599", "ratelimit-reset": "1"}
        if wait is not None:
            until = time.monotonic() + wait
            while time.monotonic() < until and not self._settled(prediction):
                await asyncio.sleep(0.01)
            extra["preference-applied"] = request.headers["prefer"]
        return JSONResponse(self._json(prediction), status_code=201, headers=extra)

    def _by_version(self, version: JsonValue) -> ModelSpec | None:
        if not isinstance(version, str):
            return None
        name, _, version_id = version.rpartition(":") if ":" in version else ("", "", version)
        if "/" in version_id and not name:  # "owner/name": official models only
            spec = self.models.get(version_id)
            return spec if spec is not None and spec.official else None
        for spec in self.models.values():
            if spec.version == version_id and name in ("", spec.name):
                return spec
        return None

    def _start(self, spec: ModelSpec, payload: JsonObject, chosen: Pick, deadline: float | None) -> _Prediction:
        latency = chosen.arg_float(2.0) if chosen.name == "slow" else self.latency
        prediction = _Prediction(
            id=base64.b32encode(os.urandom(16)).decode().lower()[:26],
            spec=spec,
            version="hidden" if spec.official else spec.version,  # official models hide their version
            input=payload,
            scenario=chosen,
            latency=latency,
            deadline=None if deadline is None else time.monotonic() + deadline,
            created_at=datetime.now(UTC),
        )
        if chosen.name.startswith("poll_"):
            prediction.poll_failures = int(chosen.arg_float(1))
        prediction.run = asyncio.get_running_loop().run_in_executor(None, self._run, prediction)
        self._predictions[prediction.id] = prediction
        return prediction

    # -- running --------------------------------------------------------------------------------

    def _run(self, prediction: _Prediction) -> _Run:
        """Render the outputs (in a worker thread, while the prediction "runs")."""
        name, spec, payload = prediction.scenario.name, prediction.spec, prediction.input
        if name == "sensitive":
            return _Run([], answers.SENSITIVE)
        if name == "nsfw":
            return _Run([], answers.NSFW_ONE if spec.name.endswith("kontext-dev") else answers.NSFW_ALL)
        if name == "failed":
            return _Run([], prediction.scenario.arg or answers.OUT_OF_MEMORY)
        input_size = None
        for image_field in spec.image_fields():
            value = payload.get(image_field)
            first = value[0] if isinstance(value, list) and value else value
            data = self._input_bytes(first) if isinstance(first, str) else None
            if data is not None:
                if (input_size := image_size(data)) is None:
                    return _Run([], answers.CORRUPT_INPUT)
                break
        width, height = output_size(spec, payload, input_size)
        if self.max_output_side and max(width, height) > self.max_output_side:
            scale = self.max_output_side / max(width, height)
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
        return _Run(images)

    def _input_bytes(self, url: str) -> bytes | None:
        if url.startswith("data:"):
            try:
                return data_uri_bytes(url)
            except ValueError:
                return b""
        if url.startswith(f"{self.base_url}/files/"):
            stored = self.files.get(url.removeprefix(f"{self.base_url}/files/").split("/")[0])
            return stored.data if stored is not None else None
        if url.startswith(f"{self.root_url}/delivery/"):
            prediction_id, _, name = url.removeprefix(f"{self.root_url}/delivery/").partition("/")
            prediction = self._predictions.get(prediction_id)
            if prediction is not None and prediction.run is not None and prediction.run.done():
                return next((data for data, _, n in prediction.run.result().images if n == name), None)
        return None

    def _status(self, p: _Prediction, now: float) -> str:
        start = p.created + p.latency / 2
        done = p.created + p.latency + (p.scenario.arg_float(1.0) if p.scenario.name == "sync_processing" else 0)
        if p.cancelled_at is not None:
            return "canceled"
        if p.deadline is not None and now >= p.deadline and (p.scenario.name == "never" or p.deadline < done):
            return "aborted" if p.deadline < start else "canceled"
        if now < start:
            return "starting"
        if p.scenario.name == "never" or now < done or p.run is None or not p.run.done():
            return "processing"
        return "failed" if p.run.result().error else "succeeded"

    def _output_ready(self, p: _Prediction, status: str) -> bool:
        if status == "succeeded":
            return True
        return (
            status == "processing"
            and p.scenario.name == "sync_processing"
            and time.monotonic() >= p.created + p.latency
            and p.run is not None
            and p.run.done()
        )

    def _settled(self, p: _Prediction) -> bool:
        status = self._status(p, time.monotonic())
        return status in TERMINAL or self._output_ready(p, status)

    def _json(self, p: _Prediction) -> JsonObject:
        now = time.monotonic()
        status = self._status(p, now)
        url = f"{self.base_url}/predictions/{p.id}"
        body: JsonObject = {
            "id": p.id,
            "model": p.spec.name,
            "version": p.version,
            "input": p.input,
            "logs": "" if status == "starting" else "Running predict()...\n",
            "output": None,
            "data_removed": False,
            "error": None,
            "status": status,
            "created_at": _iso(p.created_at),
            "source": "api",
            "urls": {"get": url, "cancel": f"{url}/cancel", "web": f"{self.root_url}/p/{p.id}"},
        }
        if p.deadline is not None:
            body["deadline"] = _iso(p.created_at + timedelta(seconds=p.deadline - p.created))
        if status != "starting":
            body["started_at"] = _iso(p.created_at + timedelta(seconds=p.latency / 2))
        if status in TERMINAL:
            body["completed_at"] = _iso(p.created_at + timedelta(seconds=min(now, p.created + p.latency) - p.created))
            body["metrics"] = {"predict_time": round(p.latency / 2, 4), "total_time": round(p.latency, 4)}
        if status == "failed" and p.run is not None:
            body["error"] = p.run.result().error
        if self._output_ready(p, status):
            if p.scenario.name == "expired":
                body.update(input={}, output=None, data_removed=True, logs="")
            else:
                body["output"] = self._output(p)
        return body

    def _output(self, p: _Prediction) -> JsonValue:
        assert p.run is not None
        if p.scenario.name == "no_output":
            return [] if p.spec.output_is_list else None
        urls: list[JsonValue] = []
        for data, media_type, name in p.run.result().images:
            if p.scenario.name == "data_url":
                urls.append(f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}")
            else:
                urls.append(f"{self.root_url}/delivery/{p.id}/{name}")
        return urls if p.spec.output_is_list else urls[0]

    # -- reading and cancelling -----------------------------------------------------------------

    async def _get(self, request: Request) -> Response:
        if (denied := self._authorized(request)) is not None:
            return denied
        prediction = self._predictions.get(request.path_params["id"])
        if prediction is None:
            return answers.not_found()
        self.polls.append(prediction.id)
        if prediction.poll_failures > 0:
            prediction.poll_failures -= 1
            return answers.server_error(int(prediction.scenario.name.removeprefix("poll_")))
        return JSONResponse(self._json(prediction))

    async def _cancel(self, request: Request) -> Response:
        if (denied := self._authorized(request)) is not None:
            return denied
        prediction = self._predictions.get(request.path_params["id"])
        if prediction is None:
            return answers.not_found()
        self.cancels.append(prediction.id)
        if self._status(prediction, time.monotonic()) not in TERMINAL:
            prediction.cancelled_at = time.monotonic()
        return JSONResponse(self._json(prediction))

    async def _delivery(self, request: Request) -> Response:
        prediction = self._predictions.get(request.path_params["id"])
        self.deliveries.append(request.url.path)
        if prediction is None or prediction.run is None or not prediction.run.done():
            return Response(b"Not Found", status_code=404, media_type="text/plain")
        if prediction.scenario.name in ("output_404", "expired"):
            return Response(b"Not Found", status_code=404, media_type="text/plain")
        for data, media_type, name in prediction.run.result().images:
            if name == request.path_params["name"]:
                return Response(data, media_type=media_type)
        return Response(b"Not Found", status_code=404, media_type="text/plain")

    async def _unknown(self, request: Request) -> Response:
        return answers.not_found()

    # -- files ----------------------------------------------------------------------------------

    async def _files(self, request: Request) -> Response:
        if (denied := self._authorized(request)) is not None:
            return denied
        if request.method == "GET":
            results: list[JsonValue] = [self._file_json(f) for f in self.files.values()]
            return JSONResponse({"next": None, "previous": None, "results": results})
        async with request.form() as form:
            return await self._store(form)

    async def _store(self, form: FormData) -> Response:
        content = form.get("content")
        if not isinstance(content, UploadFile):
            item = Invalid("required", "(root)", "content is required")
            return answers.invalid([item.as_json()], [item.detail_line()])
        data = await content.read()
        if len(data) >= self.max_file_bytes:
            return answers.problem(413, "Files must be less than 100MB in size")
        raw_metadata = form.get("metadata")
        if isinstance(raw_metadata, UploadFile):
            raw_metadata = (await raw_metadata.read()).decode("utf-8")
        try:
            metadata: JsonValue = json.loads(raw_metadata) if raw_metadata else {}
        except ValueError:
            return answers.problem(400, "metadata is not valid JSON")
        name, content_type = form.get("filename"), form.get("type")
        if not isinstance(content_type, str):
            content_type = content.content_type or "application/octet-stream"
        stored = StoredFile(
            id=uuid.uuid4().hex[:24],
            name=name if isinstance(name, str) else content.filename or "file",
            content_type=content_type,
            data=data,
            metadata=metadata,
            created_at=datetime.now(UTC),
        )
        self.files[stored.id] = stored
        return JSONResponse(self._file_json(stored), status_code=201)

    def _file_json(self, stored: StoredFile) -> JsonObject:
        return {
            "id": stored.id,
            "name": stored.name,
            "content_type": stored.content_type,
            "size": len(stored.data),
            "etag": hashlib.md5(stored.data).hexdigest(),
            "checksums": {"sha256": hashlib.sha256(stored.data).hexdigest()},
            "metadata": stored.metadata,
            "created_at": _iso(stored.created_at),
            "expires_at": _iso(stored.created_at + timedelta(hours=1)),
            "urls": {"get": f"{self.base_url}/files/{stored.id}"},
        }

    async def _file(self, request: Request) -> Response:
        if (denied := self._authorized(request)) is not None:
            return denied
        stored = self.files.get(request.path_params["id"])
        if stored is None:
            return answers.problem(404, "File not found")
        if request.method == "DELETE":
            del self.files[stored.id]
            return Response(status_code=204)
        return JSONResponse(self._file_json(stored))

    async def _download(self, request: Request) -> Response:
        if (denied := self._authorized(request)) is not None:
            return denied
        stored = self.files.get(request.path_params["id"])
        if stored is None:
            return answers.problem(404, "File not found")
        return Response(stored.data, media_type=stored.content_type)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _prefer(value: str | None) -> float | None:
    """Seconds to hold a create (``Prefer: wait`` is 60), None without the header, -1 when malformed."""
    if value is None:
        return None
    match = _PREFER.match(value.strip())
    if match is None:
        return -1.0
    return float(match.group(1) or 60)


def _cancel_after(value: str | None, minimum: float) -> float | None:
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


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the fake Replicate API (predictions, files, outputs).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8091)
    parser.add_argument("--latency", type=float, default=1.0, help="seconds from create to a finished prediction")
    parser.add_argument("--token", default=None, help="require 'Authorization: Bearer <TOKEN>' (default: any token)")
    args = parser.parse_args()
    fake = FakeReplicate(token=args.token, latency=args.latency, host=args.host, port=args.port)
    print(f"fake Replicate on {fake.base_url} (Ctrl-C to stop)")
    fake.serve_forever()


if __name__ == "__main__":
    main()
