"""What the fake Replicate and fake Gemini servers share: running on loopback and picking a scenario.

:class:`LoopbackFake` binds a loopback socket at construction (so ``port`` is known at once), runs the
subclass's ASGI ``app`` under uvicorn in a daemon thread (``with fake:`` or :meth:`~LoopbackFake.start`),
or in the foreground for ``python -m`` (:meth:`~LoopbackFake.serve_forever`).

Scenarios are picked as the fake fal picks them (see :mod:`tests.fakes.fake_fal`): a marker
``[fake:NAME]`` or ``[fake:NAME:ARG]`` in any string of the request body wins; else the next entry of
``next_scenarios`` (one per request, retries included); else a standing scenario per model; else the
default. From a marker or a standing scenario a transient failure fails only the first attempt of an
identical request, so a retry succeeds; ``NAME_always`` fails every attempt (:class:`OnceGate`).
"""

from __future__ import annotations

import re
import socket
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import uvicorn
from pydantic import JsonValue
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

MARKER = re.compile(r"\[fake:([a-z0-9_]+)(?::([^\]]*))?\]")


@dataclass(frozen=True)
class Pick:
    """The scenario a request gets: ``name`` without ``_always``, its ``arg``, and how it was chosen."""

    name: str
    arg: str | None
    always: bool
    """``NAME_always``, or an entry of ``next_scenarios`` (which stands for exactly one request)."""

    def arg_float(self, default: float) -> float:
        try:
            return float(self.arg) if self.arg else default
        except ValueError:
            return default


def find_marker(value: JsonValue) -> tuple[str, str | None] | None:
    """The first ``[fake:NAME(:ARG)]`` in any string of ``value`` (objects in key order, lists in order)."""
    if isinstance(value, str):
        match = MARKER.search(value)
        return (match.group(1), match.group(2)) if match else None
    children: list[JsonValue] = (
        list(value.values()) if isinstance(value, dict) else value if isinstance(value, list) else []
    )
    for child in children:
        if (found := find_marker(child)) is not None:
            return found
    return None


def pick(body: JsonValue, next_scenarios: list[str], standing: str) -> Pick:
    """Choose a request's scenario: marker in ``body``, else ``next_scenarios.pop(0)``, else ``standing``."""
    found = find_marker(body)
    if found is not None:
        name, arg = found
        return Pick(name.removesuffix("_always"), arg, name.endswith("_always"))
    if next_scenarios:
        name, _, arg = next_scenarios.pop(0).partition(":")
        return Pick(name.removesuffix("_always"), arg or None, True)
    name, _, arg = standing.partition(":")
    return Pick(name.removesuffix("_always"), arg or None, name.endswith("_always"))


class OnceGate:
    """Lets a transient failure through once per identical request unless it is ``always``."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def fails(self, chosen: Pick, fingerprint: str) -> bool:
        if chosen.always:
            return True
        key = f"{chosen.name}\n{fingerprint}"
        with self._lock:
            if key in self._seen:
                return False
            self._seen.add(key)
            return True

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()


class ResetResponse(Response):
    """Announces a JSON body, sends its first bytes, then drops the connection."""

    def __init__(self, status_code: int = 200) -> None:
        super().__init__(status_code=status_code)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"400")]
        await send({"type": "http.response.start", "status": self.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"id": "', "more_body": True})
        raise ConnectionResetError("fake upstream: connection reset on purpose")


class LoopbackFake:
    """A fake upstream server: a subclass sets ``self.app`` after calling ``super().__init__``."""

    app: ASGIApp
    name = "fake upstream"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host = host
        self.port: int = self._sock.getsockname()[1]
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def root_url(self) -> str:
        """``http://host:port`` without any API prefix."""
        return f"http://{self.host}:{self.port}"

    def start(self, log_level: str = "critical") -> Self:
        config = uvicorn.Config(self.app, log_level=log_level, lifespan="off", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._sock.close()

    def serve_forever(self, log_level: str = "info") -> None:
        """Serve in this thread until interrupted (the ``python -m tests.fakes.…`` entry points).

        A deep accept backlog: a benchmark may open a thousand connections at once.
        """
        config = uvicorn.Config(self.app, log_level=log_level, lifespan="off", backlog=4096)
        uvicorn.Server(config).run(sockets=[self._sock])

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
