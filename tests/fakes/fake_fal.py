"""A fake fal.ai: a real HTTP server on loopback speaking fal's queue and storage protocols.

What it does NOT model: validation of a payload against the endpoint's schema (only the scripted
422s), the sync host (``fal.run``), webhooks, logs,
``/storage/upload/initiate-multipart`` (fal-js's path for files over 90 MB), token expiry, and upload
lifecycles (``X-Fal-Object-Lifecycle`` is ignored).

Run it standalone for offline development::

    python -m tests.fakes.fake_fal --port 8090            # add --key K to require "Key K"
    PIXELGATE_FAL_BASE_URL=http://127.0.0.1:8090 PIXELGATE_FAL_STORAGE_URL=http://127.0.0.1:8090 \\
        FAL_KEY=anything pixelgate serve

In tests, ``with FakeFal() as fake:`` (or the ``fake_fal`` fixture of ``tests/providers/conftest.py``)
gives ``fake.base_url`` and ``fake.storage_url`` (the same server), and records ``fake.submissions``
(accepted jobs: endpoint id and JSON payload), ``fake.attempts`` (every submit request, failed ones
too), ``fake.cancelled`` (request ids), ``fake.status_polls``, ``fake.status_streams`` (status
streams opened; ``fake.status_requests`` is both), ``fake.open_streams``, ``fake.cdn_fetches`` (result images
served from its CDN), ``fake.uploads`` and ``fake.cdn_tokens``. Per job it records when it completes
(``time.monotonic()`` of the submit plus the latency: the system-wide monotonic clock, so another
process on the machine can compare its own readings with it) and the status, result and CDN requests
it got: ``fake.job_records()``, also served as ``GET /_fake/jobs`` for a fake in its own process
(``make bench-longjobs``).

What it serves (the fal reference, section 2): ``POST /{endpoint_id}`` submits and answers
``status_url``/``response_url``/``cancel_url`` with the endpoint's sub-path dropped, as fal does;
``GET .../requests/{id}/status`` answers 202 (IN_QUEUE, then IN_PROGRESS) and 200 once COMPLETED
after ``fake.latency`` seconds; ``GET .../requests/{id}/status/stream`` the same statuses as
server-sent events, one per change until COMPLETED (:mod:`tests.fakes.fal_stream`, with its failure
modes ``stream_drop``, ``stream_end``, ``stream_404``, and ``fake.status_stream = False`` for 405);
``GET .../requests/{id}`` the output; ``PUT .../cancel``;
``POST /storage/upload/initiate`` (``storage_type`` ``fal-cdn-v3``, or ``gcs`` as fal-client's fallback)
+ ``PUT`` the bytes; fal-client's CDN v3 flow, ``POST /storage/auth/token?storage_type=fal-cdn-v3``
(``{token, token_type, base_url, expires_at}``, ``base_url`` being this server) then ``POST
/files/upload`` with ``Authorization: Bearer <token>`` (``{access_url}``) or, for large files,
``/files/upload/multipart`` + ``PUT`` parts + ``complete``; ``GET /files/...`` serves uploads. Outputs are
real Pillow images: an edit keeps its input's size, a generation has its ``image_size`` (preset or
``{width, height}``); JPEG unless ``output_format`` is ``png``; CDN URLs on this server, or
``data:`` URIs with ``sync_mode``. ``seed``, ``prompt``, ``has_nsfw_concepts`` and ``timings``
are filled in like fal's HiDream outputs. Each job's output is rendered in a worker thread from its
submit on, so it is ready when the job completes, as with a real upstream.

Scenarios script failures. Each submit picks one, first match wins: a marker ``[fake:NAME]`` or
``[fake:NAME:ARG]`` in any string of the payload (so end-to-end tests pick one per request through
the prompt); else ``fake.next_scenarios.pop(0)`` (one entry per submit *request*, retries included);
else ``fake.endpoint_scenarios[endpoint_id]``; else ``fake.scenario`` (default ``ok``).

Failures at submit: ``429`` (``Retry-After`` ARG, default 1), ``502``, ``503``, ``504``, ``reset``
(connection dropped mid-answer): from a marker or a standing scenario these fail only the first
attempt of an identical payload, so a retry succeeds; add ``_always`` (``503_always``) to fail every
attempt. ``500`` (not retried by fal clients), ``504_user`` (user start timeout), ``503_no_retry``
(``X-Fal-Retryable: false``), ``401``, ``403``,
``404``, ``422`` (detail list for field ARG, default ``guidance_scale``), ``422_string``,
``content_policy``, ``html`` (a 200 HTML page), ``echo_auth`` (a 422 quoting the Authorization header).
Slow submit: ``slow_submit`` (the submit answers after ARG seconds, default 1; then as ``ok``).
Failures later: ``never`` (the job never finishes), ``slow`` (ARG seconds), ``completed_error``,
``content_policy_late``, ``malformed`` (result not JSON), ``missing_fields`` (result without images),
``result_html``, ``truncated`` / ``not_image`` (the CDN serves a cut image / HTML), ``private_url``
(a result URL on the cloud metadata address). Not failures: ``nsfw`` (the safety checker flags
every image in ``has_nsfw_concepts``), ``exif`` (images stored sideways with EXIF orientation 6 and
metadata, :func:`~tests.fakes.fal_images.render_rotated`).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import random
import threading
import time
import uuid
from dataclasses import dataclass, field

import orjson
from pydantic import JsonValue
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from tests.fakes.fal_images import data_uri_bytes, output_size, render, render_photo_sized, render_rotated
from tests.fakes.fal_scenarios import HTML, RETRYABLE_ONCE, error, policy_detail, submit_failure
from tests.fakes.fal_storage import FalStorage
from tests.fakes.fal_stream import StatusStream
from tests.fakes.loopback import MARKER, LoopbackFake

JsonObject = dict[str, JsonValue]


@dataclass
class Submission:
    """One submit request as received: its endpoint id, payload, what the fake answered, and when."""

    endpoint_id: str
    payload: JsonObject
    scenario: str
    status_code: int
    request_id: str | None = None
    at: float = field(default_factory=time.monotonic)


@dataclass
class _Job:
    request_id: str
    endpoint_id: str
    payload: JsonObject
    scenario: str
    arg: str | None
    latency: float
    created: float = field(default_factory=time.monotonic)
    cancelled: bool = False
    output: asyncio.Future[JsonObject] | None = None
    polls: int = 0
    streams: int = 0
    results: int = 0
    cdn_fetches: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    """Set (on the fake's loop) when :meth:`FakeFal.finish` or a cancel changes the job's state."""
    loop: asyncio.AbstractEventLoop | None = None

    def record(self) -> JsonObject:
        """What a benchmark needs of this job: its prompt, when it completed, the requests it got."""
        prompt = self.payload.get("prompt", self.payload.get("edit_instruction", ""))
        return {
            "request_id": self.request_id,
            "prompt": prompt if isinstance(prompt, str) else "",
            "submitted": self.created,
            "completes_at": self.created + self.latency,
            "status_polls": self.polls,
            "status_streams": self.streams,
            "results": self.results,
            "cdn_fetches": self.cdn_fetches,
        }


class FakeFal(LoopbackFake):
    """The fake server and its knobs; see the module docstring. Start with ``with`` or :meth:`start`."""

    name = "fake fal"

    def __init__(
        self,
        *,
        api_key: str | None = None,
        latency: float = 0.05,
        host: str = "127.0.0.1",
        port: int = 0,
        reuse_images: bool = False,
        photo_sized: bool = False,
    ):
        super().__init__(host, port)
        self.api_key = api_key
        self.latency = latency
        self.reuse_images = reuse_images or photo_sized
        """Hand every job the same image per size and format, rendered once: a benchmark's fake then
        spends no CPU per job on Pillow, which would be charged to the machine the gateway runs on."""
        self.photo_sized = photo_sized
        """With ``reuse_images``: images as large as a model's
        (:func:`~tests.fakes.fal_images.render_photo_sized`: 1.6 MB as a 1024x1024 PNG)."""
        self._rendered: dict[tuple[int, int, bool], bytes] = {}
        self.default_size = (1024, 1024)
        """What a generation without ``image_size`` makes (fal's square_hd); tests may shrink it."""
        self.scenario = "ok"
        self.next_scenarios: list[str] = []
        self.endpoint_scenarios: dict[str, str] = {}
        self.submissions: list[Submission] = []
        self.attempts: list[Submission] = []
        self.cancelled: list[str] = []
        self.status_polls = 0
        self.status_streams = 0
        self.open_streams = 0
        self.status_stream = True
        """Serve ``.../status/stream``; False answers it 405, as an upstream without it might."""
        self.stream_keepalive_seconds: float | None = None
        """Send a ``: keep-alive`` comment on a status stream after this long without an event."""
        self.cdn_fetches = 0
        self.storage = FalStorage(self.base_url, self._authorized)
        self._jobs: dict[str, _Job] = {}
        self._cdn: dict[str, tuple[bytes, str]] = {}
        self._seen: dict[tuple[str, str, bytes], int] = {}
        self._lock = threading.Lock()
        self.app = Starlette(
            routes=[
                *self.storage.routes(),
                Route("/_fake/jobs", self._job_records, methods=["GET"]),
                Route("/cdn/{request_id}/{index:int}/{name}", self._get_cdn, methods=["GET"]),
                Route("/{owner}/{app}/requests/{request_id}/status/stream", self._status_stream, methods=["GET"]),
                Route("/{owner}/{app}/requests/{request_id}/status", self._status, methods=["GET"]),
                Route("/{owner}/{app}/requests/{request_id}/cancel", self._cancel, methods=["PUT"]),
                Route("/{owner}/{app}/requests/{request_id}", self._result, methods=["GET"]),
                Route("/{endpoint_id:path}", self._submit, methods=["POST"]),
            ]
        )

    @property
    def base_url(self) -> str:
        return self.root_url

    @property
    def storage_url(self) -> str:
        return self.base_url

    @property
    def uploads(self) -> dict[str, bytes]:
        """Uploaded bytes, by the token in their file URL."""
        return self.storage.uploads

    @property
    def cdn_tokens(self) -> list[str]:
        return self.storage.cdn_tokens

    def reset(self) -> None:
        """Forget recorded requests and scripted scenarios (for a server shared by several tests)."""
        with self._lock:
            self.scenario = "ok"
            self.next_scenarios.clear()
            self.endpoint_scenarios.clear()
            self.submissions.clear()
            self.attempts.clear()
            self.cancelled.clear()
            self.status_polls = 0
            self.status_streams = 0
            self.status_stream = True
            self.stream_keepalive_seconds = None
            self.cdn_fetches = 0
            self.storage.reset()
            self._seen.clear()

    @property
    def status_requests(self) -> int:
        """Status polls plus status streams opened: how often the jobs' status was asked for."""
        return self.status_polls + self.status_streams

    def finish(self, request_id: str) -> None:
        """Let a job complete now (a ``never`` job included): for a test that decides when a job ends."""
        with self._lock:
            job = self._jobs[request_id]
            job.scenario, job.latency = "ok", 0.0
        if job.loop is not None:
            job.loop.call_soon_threadsafe(job.changed.set)

    # -- scenario choice -----------------------------------------------------------------------

    def _choose(self, endpoint_id: str, payload: JsonObject) -> tuple[str, str | None, bool]:
        """(scenario, arg, standing): standing scenarios fail a retryable kind only once per payload."""
        for value in payload.values():
            if isinstance(value, str) and (match := MARKER.search(value)):
                return match.group(1), match.group(2), True
        with self._lock:
            if self.next_scenarios:
                scenario, _, arg = self.next_scenarios.pop(0).partition(":")
                return scenario, arg or None, False
        name = self.endpoint_scenarios.get(endpoint_id, self.scenario)
        scenario, _, arg = name.partition(":")
        return scenario, arg or None, True

    def _fails_now(self, scenario: str, standing: bool, fingerprint: tuple[str, bytes]) -> bool:
        base = scenario.removesuffix("_always")
        if base not in RETRYABLE_ONCE:
            return True
        if not standing or scenario.endswith("_always"):
            return True
        with self._lock:
            seen = self._seen.get((scenario, *fingerprint), 0)
            self._seen[(scenario, *fingerprint)] = seen + 1
        return seen == 0

    def _authorized(self, request: Request) -> bool:
        return self.api_key is None or request.headers.get("authorization") == f"Key {self.api_key}"

    # -- queue ---------------------------------------------------------------------------------

    async def _submit(self, request: Request) -> Response:
        endpoint_id = request.path_params["endpoint_id"]
        raw = await request.body()
        try:
            payload = orjson.loads(raw)
        except ValueError:
            return error(422, "body is not JSON")
        if not isinstance(payload, dict):
            return error(422, "body must be a JSON object")
        scenario, arg, standing = self._choose(endpoint_id, payload)
        if scenario == "slow_submit":  # the job is queued only after ARG seconds (default 1)
            await asyncio.sleep(float(arg or 1))
        # The payload identifies a retried submit; a tuple key, so a 1 MiB body is not copied to do so.
        failure = self._submit_failure(request, scenario, arg, standing, (endpoint_id, raw))
        record = Submission(endpoint_id, payload, scenario, failure.status_code if failure else 200)
        self.attempts.append(record)
        if failure is not None:
            return failure
        request_id = uuid.uuid4().hex
        record.request_id = request_id
        timed = scenario == "slow" or scenario.startswith("stream_")  # ARG: the job's latency
        latency = float(arg) if timed and arg else self.latency
        job = _Job(request_id, endpoint_id, payload, scenario, arg, latency, loop=asyncio.get_running_loop())
        # Rendered in a worker thread while the job "runs", as a real upstream has its result ready
        # when it says COMPLETED: rendering at the result GET would serialize a fan-out's images on
        # this event loop and charge the fake's own work to the gateway in benchmarks.
        job.output = asyncio.get_running_loop().run_in_executor(None, self._make_output, job)
        self._jobs[request_id] = job
        self.submissions.append(record)
        owner_app = "/".join(endpoint_id.split("/")[:2])
        job_url = f"{self.base_url}/{owner_app}/requests/{request_id}"
        return JSONResponse(
            {
                "status": "IN_QUEUE",
                "request_id": request_id,
                "response_url": job_url,
                "status_url": f"{job_url}/status",
                "cancel_url": f"{job_url}/cancel",
                "queue_position": 0,
                "logs": None,
                "metrics": {},
            },
            headers={"x-fal-request-id": request_id},
        )

    def _submit_failure(
        self, request: Request, scenario: str, arg: str | None, standing: bool, fingerprint: tuple[str, bytes]
    ) -> Response | None:
        if not self._authorized(request):
            return error(401, "No user found for Key ID and Secret")
        base = scenario.removesuffix("_always")
        if base == "ok" or not self._fails_now(scenario, standing, fingerprint):
            return None
        return submit_failure(request, base, arg)

    def _job(self, request: Request) -> _Job | None:
        return self._jobs.get(request.path_params["request_id"])

    def _state(self, job: _Job) -> str:
        if job.scenario == "never" and not job.cancelled:
            return "IN_PROGRESS"
        elapsed = time.monotonic() - job.created
        if job.cancelled or elapsed >= job.latency:
            return "COMPLETED"
        return "IN_QUEUE" if elapsed < job.latency / 2 else "IN_PROGRESS"

    def status_body(self, job: _Job) -> JsonObject:
        """The job's status object now, as the status endpoint and the status stream carry it."""
        state = self._state(job)
        body: JsonObject = {"status": state, "request_id": job.request_id, "logs": None}
        if state == "IN_QUEUE":
            body["queue_position"] = 0
        if state != "COMPLETED":
            return body
        body["metrics"] = {"inference_time": job.latency}
        if job.cancelled:
            body.update(error="Request was cancelled", error_type="client_cancelled")
        elif job.scenario == "completed_error":
            body.update(error="CUDA out of memory on runner 7", error_type="runner_server_error")
        elif job.scenario == "content_policy_late":
            body.update(error="The content was flagged", error_type="content_policy_violation")
        return body

    def next_change_in(self, job: _Job) -> float | None:
        """Seconds until the job's state changes by itself (None: only :meth:`finish` or a cancel)."""
        if job.scenario == "never" and not job.cancelled:
            return None
        elapsed = time.monotonic() - job.created
        return max(0.0, (job.latency / 2 if elapsed < job.latency / 2 else job.latency) - elapsed)

    async def _status(self, request: Request) -> Response:
        if not self._authorized(request):
            return error(401, "No user found for Key ID and Secret")
        job = self._job(request)
        if job is None:
            return error(404, "Request not found")
        self.status_polls += 1
        job.polls += 1
        body = self.status_body(job)
        return JSONResponse(body, status_code=200 if body["status"] == "COMPLETED" else 202)

    async def _status_stream(self, request: Request) -> Response | StatusStream:
        if not self._authorized(request):
            return error(401, "No user found for Key ID and Secret")
        job = self._job(request)
        if job is None:
            return error(404, "Request not found")
        with self._lock:
            self.status_streams += 1  # every stream request, refused ones too
        job.streams += 1
        if not self.status_stream:
            return error(405, "Method Not Allowed")
        if job.scenario == "stream_404":
            return error(404, "Not Found")
        return StatusStream(self, job)

    async def _result(self, request: Request) -> Response:
        if not self._authorized(request):
            return error(401, "No user found for Key ID and Secret")
        job = self._job(request)
        if job is None:
            return error(404, "Request not found")
        job.results += 1
        if self._state(job) != "COMPLETED":
            return error(400, "Request is still in progress")
        if job.cancelled:
            return JSONResponse({"detail": "Request was cancelled", "error_type": "client_cancelled"}, 499)
        if job.scenario == "completed_error":
            return JSONResponse(
                {"detail": "Internal server error", "error_type": "runner_server_error"},
                status_code=500,
                headers={"x-fal-error-type": "runner_server_error"},
            )
        if job.scenario == "content_policy_late":
            return error(422, [policy_detail()])
        if job.scenario == "malformed":
            return Response(b'{"images": [{"url": "', media_type="application/json")
        if job.scenario == "result_html":
            return HTMLResponse(HTML)
        if job.scenario == "missing_fields":
            return JSONResponse({"timings": {}, "seed": 1})
        assert job.output is not None  # set at submit
        return JSONResponse(await job.output, headers={"x-fal-request-id": job.request_id})

    async def _cancel(self, request: Request) -> Response:
        job = self._job(request)
        if job is None:
            return JSONResponse({"status": "NOT_FOUND"}, status_code=404)
        self.cancelled.append(job.request_id)
        if self._state(job) == "COMPLETED" and not job.cancelled:
            return JSONResponse({"status": "ALREADY_COMPLETED"}, status_code=400)
        job.cancelled = True
        job.changed.set()
        return JSONResponse({"status": "CANCELLATION_REQUESTED"}, status_code=202)

    def job_records(self) -> list[JsonObject]:
        """Every accepted job's :meth:`_Job.record`, in submit order."""
        return [job.record() for job in list(self._jobs.values())]

    async def _job_records(self, request: Request) -> Response:
        return JSONResponse(
            {
                "clock": "monotonic",
                "now": time.monotonic(),
                "attempts": len(self.attempts),
                "uploads": len(self.uploads),
                "jobs": self.job_records(),
            }
        )

    # -- outputs -------------------------------------------------------------------------------

    def _make_output(self, job: _Job) -> JsonObject:
        payload = job.payload
        raw_seed = payload.get("seed")
        seed = raw_seed if isinstance(raw_seed, int) else random.randrange(2**31)
        raw_count = payload.get("num_images", 1)
        count = max(1, min(8, raw_count if isinstance(raw_count, int) else 1))
        png = payload.get("output_format") == "png"
        width, height = output_size(payload, self._input_bytes, self.default_size)
        images: list[JsonValue] = []
        for i in range(count):
            if self.reuse_images and job.scenario != "exif":
                data = self._rendered.get((width, height, png)) or (
                    render_photo_sized(width, height, png) if self.photo_sized else render(width, height, 0, png)
                )
                self._rendered.setdefault((width, height, png), data)
            else:
                data = (render_rotated if job.scenario == "exif" else render)(width, height, seed + i, png)
            media_type = "image/png" if png else "image/jpeg"
            name = f"{i}.{'png' if png else 'jpg'}"
            if job.scenario == "private_url":
                url = f"http://169.254.169.254/latest/meta-data/{name}"
            elif payload.get("sync_mode") is True:
                url = f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"
            else:
                url = f"{self.base_url}/cdn/{job.request_id}/{i}/{name}?token=signed-secret"
                self._cdn[f"{job.request_id}/{i}"] = (data, media_type)
            images.append({"url": url, "width": width, "height": height, "content_type": media_type, "file_name": name})
        prompt = payload.get("prompt", payload.get("edit_instruction", ""))
        return {
            "images": images,
            "seed": seed,
            "has_nsfw_concepts": [job.scenario == "nsfw"] * count,
            "prompt": prompt if isinstance(prompt, str) else "",
            "timings": {"inference": job.latency},
        }

    def _input_bytes(self, url: str) -> bytes | None:
        return self.storage.bytes_at(url) if url.startswith(self.base_url) else data_uri_bytes(url)

    async def _get_cdn(self, request: Request) -> Response:
        job = self._job(request)
        stored = self._cdn.get(f"{request.path_params['request_id']}/{request.path_params['index']}")
        if job is None or stored is None:
            return error(404, "Not found")
        data, media_type = stored
        self.cdn_fetches += 1
        job.cdn_fetches += 1
        if job.scenario == "truncated":
            return Response(data[: len(data) // 2], media_type=media_type)
        if job.scenario == "not_image":
            return Response(HTML.encode(), media_type=media_type)
        return Response(data, media_type=media_type)


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the fake fal.ai server (queue + storage + CDN) on loopback.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--latency", type=float, default=0.5, help="seconds until a job completes")
    parser.add_argument("--key", default=None, help="require 'Authorization: Key <KEY>'")
    parser.add_argument("--reuse-images", action="store_true", help="render one image per size for every job")
    parser.add_argument("--photo-sized", action="store_true", help="reused images as large as a photo's")
    parser.add_argument("--log-level", default="info", help="uvicorn's (warning: no line per request)")
    args = parser.parse_args()
    fake = FakeFal(
        api_key=args.key,
        latency=args.latency,
        host=args.host,
        port=args.port,
        reuse_images=args.reuse_images,
        photo_sized=args.photo_sized,
    )
    print(f"fake fal on {fake.base_url} (Ctrl-C to stop)", flush=True)
    fake.serve_forever(log_level=args.log_level)


if __name__ == "__main__":
    main()
