"""A real pixelgate server on a free loopback port, for tests that drive it like a user would.

``LiveGateway(settings)`` runs ``create_app(settings)`` under uvicorn in a background thread (its
own event loop), exposes ``base_url`` (``http://127.0.0.1:<port>``) and stops cleanly. Tests talk
to it only over HTTP: the OpenAI SDKs, curl, httpx.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from types import TracebackType

import pytest
import uvicorn

from app.http_protocol import guarded_protocol
from app.main import create_app
from app.settings import Settings


def free_port() -> int:
    """A loopback port that was free a moment ago, for a server started in another process."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LiveGateway:
    def __init__(self, settings: Settings, *, startup_timeout: float = 15.0) -> None:
        self.settings = settings
        self._startup_timeout = startup_timeout
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(settings),
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=5,
            http=guarded_protocol(settings.header_timeout_seconds),  # as `pixelgate serve` runs it
            timeout_keep_alive=settings.keepalive_timeout_seconds,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/v1"

    @property
    def started(self) -> bool:
        """Whether :meth:`start` was called (a server never started needs no stop)."""
        return self._thread.ident is not None

    def start(self) -> LiveGateway:
        self._thread.start()
        deadline = time.monotonic() + self._startup_timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("pixelgate test server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)
        self._sock.close()

    def __enter__(self) -> LiveGateway:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


PROVIDER_VARIABLES = ("FAL_KEY", "REPLICATE_API_TOKEN", "GEMINI_API_KEY", "OPENAI_API_KEY", "PIXELGATE_STATE_URL")
"""Variables of the machine that a YAML-configured test gateway must not pick up."""


def settings_from_yaml(folder: Path, text: str) -> Settings:
    """Settings as ``pixelgate serve --config`` reads them from ``text`` (written to ``folder``), with the
    data dir under ``folder`` and none of the machine's provider variables."""
    path = folder / "pixelgate.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PIXELGATE_CONFIG", str(path))
        env.setenv("PIXELGATE_DATA_DIR", str(folder / "data"))
        for variable in PROVIDER_VARIABLES:
            env.delenv(variable, raising=False)
        return Settings.load()
