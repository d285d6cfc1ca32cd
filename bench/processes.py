"""Start, watch and stop the benchmark's server processes (fake upstream, pixelgate, LiteLLM).

Each server is its own process group, started by this module and stopped by its pid only. Peak
memory is the kernel's high-water mark (``VmHWM``) summed over the process and its descendants,
read just before the process is stopped.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def peak_rss_bytes(self) -> int:
        """Sum of ``VmHWM`` over the process tree (0 for processes already gone)."""
        return sum(_vm_hwm(pid) for pid in _tree(self.process.pid))

    def cpu_seconds(self) -> float:
        """User and system CPU time used so far by the process and its descendants (all threads)."""
        return sum(_cpu_seconds(pid) for pid in _tree(self.process.pid))

    def rss_bytes(self) -> int:
        """The process's resident memory now (``VmRSS``; 0 once it is gone), its children not counted."""
        return _status_kib(self.process.pid, "VmRSS:") * 1024

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def _tree(pid: int) -> list[int]:
    pids, queue = [], [pid]
    while queue:
        current = queue.pop()
        pids.append(current)
        queue.extend(_children(current))
    return pids


def _cpu_seconds(pid: int) -> float:
    """utime + stime of ``/proc/<pid>/stat`` in seconds (0 for a process already gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _vm_hwm(pid: int) -> int:
    return _status_kib(pid, "VmHWM:") * 1024


def _status_kib(pid: int, field: str) -> int:
    """A ``kB`` field of ``/proc/<pid>/status`` (0 for a process already gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


def free_port() -> int:
    """A loopback port that was free a moment ago, for a server started in another process."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(name: str, argv: list[str], env: dict[str, str], log_dir: Path, cwd: Path) -> Server:
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:  # the child has its own copy of the descriptor
        process = subprocess.Popen(
            argv, env={**os.environ, **env}, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Server(name, process, log_path)


def wait_ready(server: Server, url: str, timeout_seconds: float = 90.0) -> None:
    """Poll ``url`` until it answers below 500; raise with the server's log tail otherwise."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        try:
            if httpx.get(url, timeout=2.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    tail = server.log_path.read_text(errors="replace")[-2000:]
    server.stop()
    raise RuntimeError(f"{server.name} did not become ready at {url}:\n{tail}")
