"""HAProxy in front of local replicas, with the deployment's own configuration file (deploy/haproxy/haproxy.cfg).

Debian's ``haproxy`` is installed with apt-get when ``/usr/sbin/haproxy`` is missing (:mod:`tests.apt`).
The file takes its addresses from the environment, as the compose profile sets them; here they are
loopback ports.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.apt import ensure_program
from tests.live import free_port
from tests.scaleout.processes import Process, start_process, wait_ready

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
HAPROXY = Path("/usr/sbin/haproxy")


def haproxy_binary() -> Path:
    return ensure_program(HAPROXY, "haproxy")


def environment(bind: str, replicas: list[str]) -> dict[str, str]:
    """The variables deploy/haproxy/haproxy.cfg reads."""
    env = {"PIXELGATE_LB_BIND": bind}
    for index, address in enumerate(replicas, start=1):
        env[f"PIXELGATE_REPLICA_{index}"] = address
    return env


@dataclass
class Balancer:
    base_url: str
    process: Process


@contextmanager
def haproxy(replicas: list[str], log_dir: Path, *, port: int | None = None) -> Iterator[Balancer]:
    """HAProxy on loopback ``port`` (default: a free one) balancing ``replicas`` (``host:port``); stopped on exit."""
    port = port or free_port()
    argv = [str(haproxy_binary()), "-db", "-f", str(CONFIG)]  # -db: foreground, logs to stdout
    process = start_process("haproxy", argv, log_dir=log_dir, env=environment(f"127.0.0.1:{port}", replicas))
    balancer = Balancer(base_url=f"http://127.0.0.1:{port}", process=process)
    try:
        wait_ready(process, lambda: httpx.get(f"{balancer.base_url}/healthz", timeout=2).status_code == 200, "HAProxy")
        yield balancer
    finally:
        process.stop()
