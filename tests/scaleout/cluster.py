"""The compose profile ``scale`` as local processes: ``pixelgate serve`` replicas behind HAProxy, sharing
the machine's PostgreSQL (a fresh database) and Redis (a fresh key prefix), SeaweedFS as the S3 store.

Each replica's environment is the compose file's replica environment (``x-pixelgate-replica``),
interpolated with the test's secrets, with only the addresses changed from the compose network's
host names to loopback ports: so a variable the compose file gets wrong fails here (pixelgate refuses
an unknown ``PIXELGATE_`` variable at start). HAProxy runs the deployment's own configuration file.
Each replica talks to its own fake fal, so a test can tell which replica ran an upstream job.
"""

from __future__ import annotations

import contextlib
import re
import sys
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis
import yaml

from tests.conftest import TEST_KEY
from tests.databases import postgres_database
from tests.fakes.fake_fal import FakeFal
from tests.live import free_port
from tests.scaleout.haproxy import Balancer, haproxy
from tests.scaleout.processes import Process, start_process, wait_ready
from tests.scaleout.seaweed import ACCESS_KEY, SECRET_KEY, SeaweedS3, seaweed_s3

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
PIXELGATE = Path(sys.executable).parent / "pixelgate"
REDIS_URL = "redis://127.0.0.1:6379/0"
FAL_KEY = "scaleout-fal-key:secret"
ADMIN_KEY = "scaleout-admin-key"
SIGNING_SECRET = "scaleout-shared-signing-secret-0123456789"
_VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)(?::-([^}]*))?\}")
ADDRESSES = frozenset(
    {"PIXELGATE_DATABASE_URL", "PIXELGATE_STATE_URL", "PIXELGATE_STORE_URL", "AWS_ENDPOINT_URL", "PIXELGATE_CONFIG"}
)
"""The replica variables whose compose values name the compose network: replaced by loopback ones."""


def compose_file() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


def interpolate(value: str, variables: Mapping[str, str]) -> str:
    """Compose's ``${NAME}`` and ``${NAME:-default}`` (an unset or empty NAME takes the default)."""
    return _VARIABLE.sub(lambda match: variables.get(match.group(1)) or match.group(2) or "", value)


def replica_environment(variables: Mapping[str, str]) -> dict[str, str]:
    """The compose replicas' environment, as ``docker compose`` would pass it with ``variables`` set."""
    environment = compose_file()["x-pixelgate-replica"]["environment"]
    return {name: interpolate(str(value), variables) for name, value in environment.items()}


@dataclass
class Replica:
    name: str
    port: int
    environment: dict[str, str]
    log_dir: Path
    process: Process | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/v1"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        argv = [str(PIXELGATE), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        self.process = start_process(self.name, argv, log_dir=self.log_dir, env=self.environment)
        wait_ready(
            self.process,
            lambda: httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200,
            "pixelgate serve, ready",
        )

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


@dataclass
class Cluster:
    balancer: Balancer
    replicas: list[Replica]
    fakes: list[FakeFal]
    seaweed: SeaweedS3
    database_url: str
    state_prefix: str
    store_prefix: str
    logs: Path
    api_key: str = TEST_KEY
    admin_key: str = ADMIN_KEY

    @property
    def api_url(self) -> str:
        return f"{self.balancer.base_url}/v1"

    def log_tails(self) -> str:
        """Every process's log tail, for a failing test's message."""
        parts = [f"--- {r.name}\n{r.process.log_tail(1500)}" for r in self.replicas if r.process is not None]
        parts.append(f"--- haproxy\n{self.balancer.process.log_tail(1500)}")
        return "\n".join(parts)


@contextlib.contextmanager
def cluster(directory: Path, *, replicas: int = 2, fal_latency: float = 0.5) -> Iterator[Cluster]:
    """The whole profile, started in order (store, upstreams, replicas, balancer) and stopped in reverse,
    also when a step fails. The database and the Redis keys are removed afterwards."""
    state_prefix = f"pixelgate-scaleout-{uuid.uuid4().hex[:10]}:"
    store_prefix = f"run-{uuid.uuid4().hex[:10]}"
    logs = directory / "logs"
    with contextlib.ExitStack() as stack:
        stack.callback(_forget_redis_keys, state_prefix)
        database_url = stack.enter_context(postgres_database("pixelgate_scaleout"))
        seaweed = stack.enter_context(seaweed_s3(directory / "seaweedfs"))
        fakes = [stack.enter_context(FakeFal(api_key=FAL_KEY, latency=fal_latency)) for _ in range(replicas)]
        lb_port = free_port()
        variables = {
            "PIXELGATE_API_KEYS": TEST_KEY,
            "PIXELGATE_ADMIN_KEY": ADMIN_KEY,
            "PIXELGATE_SCALE_PUBLIC_URL": f"http://127.0.0.1:{lb_port}",
            "PIXELGATE_SIGNING_SECRET": SIGNING_SECRET,
            "PIXELGATE_S3_ACCESS_KEY_ID": ACCESS_KEY,
            "PIXELGATE_S3_SECRET_ACCESS_KEY": SECRET_KEY,
            "FAL_KEY": FAL_KEY,
        }
        shared = replica_environment(variables)
        shared.update(
            {
                "PIXELGATE_DATABASE_URL": database_url,
                "PIXELGATE_STATE_URL": REDIS_URL,
                "PIXELGATE_STATE_PREFIX": state_prefix,
                "PIXELGATE_STORE_URL": f"s3://{seaweed.bucket}/{store_prefix}",
                "AWS_ENDPOINT_URL": seaweed.endpoint_url,
                "PIXELGATE_CONFIG": str(ROOT / "deploy" / "pixelgate.yaml"),
            }
        )
        members: list[Replica] = []
        for index, fake in enumerate(fakes, start=1):
            environment = {
                **shared,
                "PIXELGATE_DATA_DIR": str(directory / f"replica-{index}"),
                "PIXELGATE_FAL_BASE_URL": fake.base_url,
                "PIXELGATE_FAL_STORAGE_URL": fake.storage_url,
                "PYTHONDONTWRITEBYTECODE": "1",
            }
            member = Replica(f"pixelgate-{index}", free_port(), environment, logs)
            stack.callback(member.stop)
            member.start()
            members.append(member)
        balancer = stack.enter_context(haproxy([member.address for member in members], logs, port=lb_port))
        yield Cluster(balancer, members, fakes, seaweed, database_url, state_prefix, store_prefix, logs)


def _forget_redis_keys(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    with contextlib.closing(client):
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
