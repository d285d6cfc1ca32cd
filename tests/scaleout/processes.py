"""Server processes for the multi-replica tests: started here, watched, stopped by their own pid only.

Each process runs in its own session (its own process group), writes stdout and stderr to a log
file, and is stopped with SIGTERM then SIGKILL to its group; ``kill()`` is the ``kill -9`` of a
crash. A process that does not become ready raises with the tail of its log, so a failure says why.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def kill(self) -> None:
        """SIGKILL, as a crash would: no drain, no lifespan shutdown."""
        self._signal(signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to the group; SIGKILL if it is still there after ``timeout`` seconds."""
        if not self.alive():
            return
        self._signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.popen.wait(timeout=10)

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)


def start_process(name: str, argv: list[str], *, log_dir: Path, env: dict[str, str] | None = None) -> Process:
    """Start ``argv`` with ``env`` added to this environment; output to ``<log_dir>/<name>.log``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:  # the child keeps its own copy of the descriptor
        popen = subprocess.Popen(
            argv,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Process(name, popen, log_path)


def wait_ready(process: Process, ready: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll ``ready()`` (exceptions count as not yet) until true; stop the process and raise otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            break
        try:
            if ready():
                return
        except Exception:  # not listening yet, or answering errors while it starts
            pass
        time.sleep(0.1)
    status = "exited" if not process.alive() else f"not ready after {timeout} s"
    tail = process.log_tail()
    process.stop()
    raise RuntimeError(f"{process.name} ({what}) {status}; its log ends:\n{tail}")
