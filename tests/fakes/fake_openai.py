"""A fast OpenAI-compatible images upstream on loopback, for the adapter tests and the benchmark.

What it does NOT model: validation of the request's parameters (any body gets images), sizes and
formats (always one fixed 1024x1024 PNG), auth, and failures other than the scripted ones below.

:class:`FakeOpenAI` is a raw ASGI app (no framework, so it is never the bottleneck of a benchmark):

- ``POST {prefix}/images/generations`` (JSON) and ``POST {prefix}/images/edits`` (multipart, any
  part names: ``image``, ``image[]``, ``mask``; or urlencoded) answer ``n`` copies of one fixed
  1024x1024 PNG, as ``b64_json`` (the response bodies are precomputed for n = 1..10) or as ``url``
  pointing at ``GET {prefix}/files/result.png`` on the fake itself;
- every request is captured (:class:`Captured`) unless ``capture=False``;
- a request with ``stream: true`` (JSON, or the form field ``stream=true``) is answered as OpenAI's
  image stream (``text/event-stream``, the wire contract section 1.5): ``partial_images`` partial
  events (``image_generation.partial_image`` / ``image_edit.partial_image``, each a small PNG of
  its own, :func:`partial_png`), then ``n`` completed events with the result PNG, each frame its
  own body chunk; :meth:`FakeOpenAI.fail_stream_next` makes the next stream end in an ``error``
  event after some partials (OpenAI's exact error event shape is unconfirmed: nested by default,
  ``flat=True`` for the ``{"type": "error", "message", "code"}`` form);
  :meth:`FakeOpenAI.hold_stream_next` makes it stop after some partials and wait until the client
  disconnects (counted in ``stream_disconnects``);
- :meth:`FakeOpenAI.fail_next` scripts the next answers: any status with an OpenAI error body, extra
  headers (``retry-after``), an optional delay (for timeouts); :meth:`FakeOpenAI.answer_next` any
  status and body (HTML, a cut image); :meth:`FakeOpenAI.reset_next` drops the connection mid-body.
  Scripted answers come first, also for a streamed request.

:class:`FakeOpenAIServer` runs it under uvicorn on a free port in a background thread (tests);
``python -m tests.fakes.fake_openai --port 9000`` runs it as its own process (benchmark).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import io
import random
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

import orjson
import uvicorn
from PIL import Image, ImageChops

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_N_FIELD = re.compile(rb'name="n"\r\n(?:[^\r\n]+\r\n)*\r\n(\d+)\r\n')
_N_URLENCODED = re.compile(rb"(?:^|&)n=(\d+)")


@functools.cache
def result_png() -> bytes:
    """A deterministic 1024x1024 PNG of about 1.8 MB (gradient plus noise: realistic entropy)."""
    rng = random.Random(1024)
    noise = Image.frombytes("RGB", (1024, 1024), bytes(b % 16 for b in rng.randbytes(1024 * 1024 * 3)))
    gradient = Image.linear_gradient("L").resize((1024, 1024)).convert("RGB")
    out = io.BytesIO()
    ImageChops.add(gradient, noise).save(out, format="PNG", compress_level=6)
    return out.getvalue()


@functools.cache
def partial_png() -> bytes:
    """The fake's partial image: a small grey PNG, unlike the result (a preview is told apart)."""
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (128, 128, 128)).save(out, format="PNG")
    return out.getvalue()


@dataclass(frozen=True)
class StreamFailure:
    """How the next stream fails: after ``after_partials`` partial events, one ``error`` event."""

    after_partials: int
    error: dict[str, str | None]
    flat: bool = False
    hold: bool = False
    """Send no error: wait, the stream open, until the client disconnects."""


@dataclass(frozen=True)
class FilePart:
    name: str
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass(frozen=True)
class Form:
    """A parsed multipart body: text fields in order (repeats kept) and file parts in order."""

    fields: list[tuple[str, str]]
    files: list[FilePart]

    def field(self, name: str) -> str | None:
        return next((value for key, value in self.fields if key == name), None)


def parse_multipart(body: bytes, content_type: str) -> Form:
    """Split a ``multipart/form-data`` body (enough for inspecting what a client sent)."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if match is None:
        raise ValueError(f"no boundary in {content_type!r}")
    delimiter = b"--" + match[1].encode()
    fields: list[tuple[str, str]] = []
    files: list[FilePart] = []
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        data = data.removesuffix(b"\r\n")
        headers = {}
        for line in head.decode("utf-8").split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        name_match = re.search(r'\bname="([^"]*)"', disposition)
        file_match = re.search(r'\bfilename="([^"]*)"', disposition)
        name = name_match[1] if name_match else ""
        if file_match is None:
            fields.append((name, data.decode("utf-8")))
        else:
            files.append(FilePart(name, file_match[1], headers.get("content-type"), data))
    return Form(fields, files)


@dataclass(frozen=True)
class Captured:
    """One request as the fake received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)

    def form(self) -> Form:
        return parse_multipart(self.body, self.headers.get("content-type", ""))


@dataclass(frozen=True)
class Scripted:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    delay_seconds: float = 0.0
    reset: bool = False
    """Announce the whole body, send its first half, then drop the connection."""


@dataclass
class FakeOpenAI:
    """The ASGI app; see the module docstring. ``prefix`` is the API root (``/v1``)."""

    result: Literal["b64_json", "url"] = "b64_json"
    capture: bool = True
    prefix: str = "/v1"
    image: bytes = field(default_factory=result_png)
    revised_prompt: str | None = None
    url_host: str | None = None
    """``host:port`` written into result URLs; None: the request's Host header."""
    requests: list[Captured] = field(default_factory=list)
    script: deque[Scripted] = field(default_factory=deque)
    stream_failures: deque[StreamFailure] = field(default_factory=deque)
    stream_disconnects: int = 0
    """Held streams (:meth:`hold_stream_next`) whose client went away."""

    def __post_init__(self) -> None:
        self._b64 = base64.b64encode(self.image).decode("ascii")
        self._bodies: dict[tuple[str, int], bytes] = {}

    def _body(self, kind: str, count: int, host: str) -> bytes:
        # Cached so a request costs no encoding: only the "n" lookup and one send.
        key = (kind if kind == "b64_json" else host, count)
        body = self._bodies.get(key)
        if body is None:
            item: dict[str, str] = (
                {"b64_json": self._b64}
                if kind == "b64_json"
                else {"url": f"http://{host}{self.prefix}/files/result.png"}
            )
            if self.revised_prompt is not None:
                item["revised_prompt"] = self.revised_prompt
            body = orjson.dumps({"created": 1_700_000_000, "data": [item] * count})
            self._bodies[key] = body
        return body

    def fail_next(
        self,
        status: int,
        *,
        message: str = "scripted failure",
        error_type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        delay_seconds: float = 0.0,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` image requests with ``status`` and an OpenAI error body."""
        body = orjson.dumps({"error": {"message": message, "type": error_type, "param": param, "code": code}})
        self.answer_next(status, body, headers=headers, delay_seconds=delay_seconds, times=times)

    def answer_next(
        self,
        status: int,
        body: bytes,
        *,
        headers: dict[str, str] | None = None,
        delay_seconds: float = 0.0,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` image requests with exactly ``status`` and ``body``."""
        entry = Scripted(status, body, tuple((headers or {}).items()), delay_seconds)
        self.script.extend([entry] * times)

    def reset_next(self, *, times: int = 1) -> None:
        """Drop the connection in the middle of the next ``times`` answers (a 200 cut mid-body)."""
        body = self._body("b64_json", 1, "127.0.0.1")
        self.script.extend([Scripted(200, body, reset=True)] * times)

    def fail_stream_next(
        self,
        *,
        after_partials: int = 0,
        message: str = "scripted stream failure",
        error_type: str = "server_error",
        code: str | None = None,
        param: str | None = None,
        flat: bool = False,
    ) -> None:
        """End the next streamed answer with an ``error`` event after ``after_partials`` partial events."""
        error = {"message": message, "type": error_type, "param": param, "code": code}
        self.stream_failures.append(StreamFailure(after_partials, error, flat))

    def hold_stream_next(self, *, after_partials: int = 1) -> None:
        """Stop the next streamed answer after ``after_partials`` partial events and hold it open until
        the client disconnects (then ``stream_disconnects`` counts it)."""
        self.stream_failures.append(StreamFailure(after_partials, {}, hold=True))

    def reset(self) -> None:
        """Forget captured requests, scripted answers and cached bodies (after changing settings)."""
        self.requests.clear()
        self.script.clear()
        self.stream_failures.clear()
        self.stream_disconnects = 0
        self._bodies.clear()

    async def _stream(self, receive: Receive, send: Send, kind: str, count: int, partials: int) -> None:
        """OpenAI's image stream: ``partials`` partial events, then ``count`` completed ones (or an error)."""
        failure = self.stream_failures.popleft() if self.stream_failures else None
        common = {"created_at": 1_700_000_000, "size": "1024x1024", "quality": "auto", "background": "auto"}
        frames: list[tuple[str, dict[str, object]]] = []
        partial_b64 = base64.b64encode(partial_png()).decode("ascii")
        for index in range(partials if failure is None else min(partials, failure.after_partials)):
            event = f"{kind}.partial_image"
            frames.append(
                (
                    event,
                    {
                        "type": event,
                        "b64_json": partial_b64,
                        "partial_image_index": index,
                        **common,
                        "output_format": "png",
                    },
                )
            )
        if failure is not None and not failure.hold:
            data: dict[str, object] = (
                {"type": "error", **failure.error} if failure.flat else {"type": "error", "error": failure.error}
            )
            frames.append(("error", data))
        elif failure is None:
            event = f"{kind}.completed"
            usage = {
                "total_tokens": 1,
                "input_tokens": 1,
                "output_tokens": 0,
                "input_tokens_details": {"text_tokens": 1, "image_tokens": 0},
            }
            completed = {"type": event, "b64_json": self._b64, **common, "output_format": "png", "usage": usage}
            frames += [(event, completed)] * count
        headers = [
            (b"content-type", b"text/event-stream"),
            (b"cache-control", b"no-cache"),
            (b"x-request-id", b"req_fake"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for name, payload in frames:
            chunk = b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        if failure is not None and failure.hold:
            while (await receive())["type"] != "http.disconnect":
                pass
            self.stream_disconnects += 1
            return
        await send({"type": "http.response.body", "body": b""})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":  # pragma: no cover - websockets are not served
            return
        path: str = scope["path"]
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if path == f"{self.prefix}/files/result.png":
            await _respond(send, 200, self.image, "image/png")
            return
        if path not in (f"{self.prefix}/images/generations", f"{self.prefix}/images/edits"):
            await _respond(send, 404, b'{"error":{"message":"not found","type":"invalid_request_error"}}')
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if self.capture:
            self.requests.append(Captured(scope["method"], path, headers, body))
        if self.script:
            scripted = self.script.popleft()
            if scripted.delay_seconds:
                await asyncio.sleep(scripted.delay_seconds)
            if scripted.reset:
                await _respond_then_reset(send, scripted.body)
            await _respond(send, scripted.status, scripted.body, extra=scripted.headers)
            return
        content_type = headers.get("content-type", "")
        count = _count(body, content_type)
        # A byte search first: the benchmark's requests (never streamed) are not parsed twice.
        stream = _field(body, content_type, "stream") if b"stream" in body else None
        if stream is True or stream == "true":
            partials = _field(body, content_type, "partial_images")
            kind = "image_edit" if path.endswith("/edits") else "image_generation"
            asked = int(partials) if isinstance(partials, int | str) and str(partials).isdigit() else 0
            await self._stream(receive, send, kind, count, min(asked, 3))
            return
        host = self.url_host or headers.get("host", "127.0.0.1")
        await _respond(send, 200, self._body(self.result, count, host))


def _count(body: bytes, content_type: str) -> int:
    if content_type.startswith("application/json"):
        try:
            value = orjson.loads(body).get("n")
        except (orjson.JSONDecodeError, AttributeError):
            value = None
        n = value if isinstance(value, int) else 1
    else:
        pattern = _N_URLENCODED if content_type.startswith("application/x-www-form-urlencoded") else _N_FIELD
        match = pattern.search(body)
        n = int(match[1]) if match else 1
    return min(max(n, 1), 10)


def _field(body: bytes, content_type: str, name: str) -> object:
    """A top-level field of a JSON body, or the text of a form field (multipart or urlencoded); None when absent."""
    if content_type.startswith("application/json"):
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        return parsed.get(name) if isinstance(parsed, dict) else None
    if content_type.startswith("multipart/form-data"):
        # A search, not a parse: the benchmark sends multi-megabyte edits through this fake.
        part = re.search(rb'name="' + re.escape(name.encode()) + rb'"\r\n(?:[^\r\n]+\r\n)*\r\n([^\r\n]*)\r\n', body)
        return part[1].decode() if part else None
    match = re.search(rb"(?:^|&)" + re.escape(name.encode()) + rb"=([^&]*)", body)
    return match[1].decode() if match else None


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: str = "application/json",
    extra: tuple[tuple[str, str], ...] = (),
) -> None:
    # A scripted content-type replaces the default (a scripted event stream).
    default = [] if any(k.lower() == "content-type" for k, _ in extra) else [(b"content-type", content_type.encode())]
    headers = [*default, (b"content-length", str(len(body)).encode())]
    headers += [(b"x-request-id", b"req_fake")]
    headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _respond_then_reset(send: Send, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
    raise ConnectionResetError("fake OpenAI: connection reset on purpose")


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class FakeOpenAIServer:
    """``app`` under uvicorn on a free loopback port in a background thread; a context manager."""

    def __init__(self, app: FakeOpenAI, *, startup_timeout: float = 10.0) -> None:
        self.app = app
        self._startup_timeout = startup_timeout
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", http="httptools")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    @property
    def base_url(self) -> str:
        """The API root, e.g. ``http://127.0.0.1:PORT/v1`` (what ``base_url`` settings take)."""
        return f"http://127.0.0.1:{self.port}{self.app.prefix}"

    def __enter__(self) -> FakeOpenAIServer:
        self._thread.start()
        deadline = time.monotonic() + self._startup_timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("fake OpenAI upstream did not start")
            time.sleep(0.01)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


def main() -> None:
    """Serve the fake as its own process (the benchmark's upstream); runs until killed."""
    parser = argparse.ArgumentParser(description="fast fake OpenAI-compatible images upstream")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--result", choices=["b64_json", "url"], default="b64_json")
    args = parser.parse_args()
    app = FakeOpenAI(result=args.result, capture=False)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        http="httptools",
        loop="uvloop",
    )


if __name__ == "__main__":
    main()
