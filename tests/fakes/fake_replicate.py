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
import functools
import json
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import JsonValue
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes import replicate_scenarios as answers
from tests.fakes.loopback import LoopbackFake, OnceGate, Pick, pick
from tests.fakes.replicate_files import FilesApi, StoredFile
from tests.fakes.replicate_models import Invalid, ModelSpec, load_models, validate_input
from tests.fakes.replicate_predictions import (
    TERMINAL,
    Prediction,
    data_uri_input,
    parse_cancel_after,
    parse_prefer,
    render_run,
)

JsonObject = dict[str, JsonValue]
_TOP_LEVEL = frozenset({"input", "webhook", "webhook_events_filter", "webhook_completed", "stream"})


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
        self.deliveries: list[str] = []
        self.files_api = FilesApi(self.base_url, self._authorized)
        self._predictions: dict[str, Prediction] = {}
        self._once = OnceGate()
        self.app = Starlette(
            routes=[
                Route("/v1/models/{owner}/{name}/predictions", self._create_official, methods=["POST"]),
                Route("/v1/predictions", self._create_version, methods=["POST"]),
                Route("/v1/predictions/{id}", self._get, methods=["GET"]),
                Route("/v1/predictions/{id}/cancel", self._cancel, methods=["POST"]),
                *self.files_api.routes(),
                Route("/delivery/{id}/{name}", self._delivery, methods=["GET"]),
                Route("/{path:path}", self._unknown, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
            ]
        )

    @property
    def base_url(self) -> str:
        """The API root, ``http://127.0.0.1:PORT/v1``."""
        return f"{self.root_url}/v1"

    @property
    def files(self) -> dict[str, StoredFile]:
        """Files uploaded through ``POST /v1/files``, by id."""
        return self.files_api.files

    @property
    def max_file_bytes(self) -> int:
        return self.files_api.max_file_bytes

    @max_file_bytes.setter
    def max_file_bytes(self, value: int) -> None:
        self.files_api.max_file_bytes = value

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
        self.deliveries.clear()
        self.files_api.reset()
        self._predictions.clear()
        self._once.clear()

    def _authorized(self, request: Request) -> Response | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme not in ("Bearer", "Token") or not token.strip():
            return answers.unauthenticated(missing=True)
        if self.token is not None and token.strip() != self.token:
            return answers.unauthenticated(missing=False)
        return None

    # -- creating -------------------------------------------------------------------------------

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
        wait = parse_prefer(request.headers.get("prefer"))
        deadline = parse_cancel_after(request.headers.get("cancel-after"), self.min_cancel_after_seconds)
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
            while time.monotonic() < until and not prediction.settled():
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

    def _start(self, spec: ModelSpec, payload: JsonObject, chosen: Pick, deadline: float | None) -> Prediction:
        latency = chosen.arg_float(2.0) if chosen.name == "slow" else self.latency
        prediction = Prediction(
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
        prediction.start_run(functools.partial(render_run, prediction, self._input_bytes, self.max_output_side))
        self._predictions[prediction.id] = prediction
        return prediction

    def _input_bytes(self, url: str) -> bytes | None:
        if url.startswith("data:"):
            return data_uri_input(url)
        if url.startswith(f"{self.root_url}/delivery/"):
            prediction_id, _, name = url.removeprefix(f"{self.root_url}/delivery/").partition("/")
            prediction = self._predictions.get(prediction_id)
            run = prediction.finished_run() if prediction is not None else None
            image = run.image(name) if run is not None else None
            return image[0] if image is not None else None
        return self.files_api.bytes_at(url)

    def _json(self, prediction: Prediction) -> JsonObject:
        return prediction.as_json(self.base_url, self.root_url)

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
        if prediction.status(time.monotonic()) not in TERMINAL:
            prediction.cancelled_at = time.monotonic()
        return JSONResponse(self._json(prediction))

    async def _delivery(self, request: Request) -> Response:
        """Output files, served without auth as ``replicate.delivery`` serves them."""
        prediction = self._predictions.get(request.path_params["id"])
        self.deliveries.append(request.url.path)
        run = prediction.finished_run() if prediction is not None else None
        image = run.image(request.path_params["name"]) if run is not None else None
        if prediction is None or image is None or prediction.scenario.name in ("output_404", "expired"):
            return Response(b"Not Found", status_code=404, media_type="text/plain")
        return Response(image[0], media_type=image[1])

    async def _unknown(self, request: Request) -> Response:
        return answers.not_found()


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
