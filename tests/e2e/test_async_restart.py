"""Async jobs across restarts and replicas: the real ``pixelgate serve`` in subprocesses, a slow fake fal.

- SIGTERM during a slow job, start again: the job completes once, fal saw one job (the new process
  follows the recorded one), the result survives a further restart;
- two replicas on one database, one killed (SIGKILL) during a job: the other takes the job over
  when the dead one's lease expires, and follows the same fal job.

Each runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from app.db import async_url
from app.db.schema import usage_ledger
from tests.conftest import TEST_KEY
from tests.databases import KINDS, database_url
from tests.fakes.fake_fal import FakeFal
from tests.live import free_port
from tests.polling import wait_until

FAL_KEY = "restart-fal-key:secret"
PIXELGATE = Path(sys.executable).parent / "pixelgate"
AUTH = {"Authorization": f"Bearer {TEST_KEY}"}


@pytest.fixture
def fake() -> Iterator[FakeFal]:
    with FakeFal(api_key=FAL_KEY) as server:
        yield server


@pytest.fixture(params=KINDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with database_url(request.param, tmp_path / "db", label="pixelgate_jobs_restart") as url:
        yield url


class Serve:
    """``pixelgate serve`` on a free loopback port, configured by environment as an operator would.

    Every instance is killed at the end of the test that made it, should the test fail before stopping it.
    """

    started: ClassVar[list[Serve]] = []

    def __init__(self, data_dir: Path, fake: FakeFal, db_url: str, **env: str) -> None:
        self.port = free_port()
        data_dir.mkdir(parents=True, exist_ok=True)
        environment = {
            **os.environ,
            "PIXELGATE_API_KEYS": TEST_KEY,
            "PIXELGATE_DATA_DIR": str(data_dir),
            "PIXELGATE_SIGNING_SECRET": "restart-test-signing-secret",
            "PIXELGATE_DATABASE_URL": db_url,
            "FAL_KEY": FAL_KEY,
            "PIXELGATE_FAL_BASE_URL": fake.base_url,
            "PIXELGATE_FAL_STORAGE_URL": fake.storage_url,
            **env,
        }
        self.proc = subprocess.Popen(
            [str(PIXELGATE), "serve", "--port", str(self.port), "--log-level", "info"],
            env=environment,
            cwd=data_dir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        Serve.started.append(self)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError(f"pixelgate serve did not start: {self.output()}")
            time.sleep(0.1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        out, _ = self.proc.communicate(timeout=30)
        if self in Serve.started:
            Serve.started.remove(self)
        return out

    def job(self, job_id: str) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/v1/images/jobs/{job_id}", headers=AUTH, timeout=10)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def submit(self, prompt: str) -> str:
        response = httpx.post(
            f"{self.url}/v1/images/generations",
            json={"model": "hidream-i1-fast", "prompt": prompt, "size": "64x64"},
            headers={**AUTH, "Prefer": "respond-async"},
            timeout=10,
        )
        assert response.status_code == 202, response.text
        job_id: str = response.json()["id"]
        return job_id

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> str:
        self.proc.send_signal(sig)
        self.proc.wait(timeout=20)
        return self.output()


@pytest.fixture(autouse=True)
def _no_server_left() -> Iterator[None]:
    yield
    while Serve.started:
        server = Serve.started.pop()
        if server.proc.poll() is None:
            server.proc.kill()
        server.proc.communicate(timeout=30)


def _ledger_rows(db_url: str, request_id: str) -> int:
    async def count() -> int:
        engine = create_async_engine(async_url(db_url, Path()))
        try:
            async with engine.connect() as connection:
                query = select(func.count()).select_from(usage_ledger).where(usage_ledger.c.request_id == request_id)
                return int((await connection.execute(query)).scalar_one())
        finally:
            await engine.dispose()

    return asyncio.run(count())


def test_a_job_in_flight_at_sigterm_completes_once_after_the_restart(
    tmp_path: Path, fake: FakeFal, db_url: str
) -> None:
    first = Serve(tmp_path, fake, db_url)
    job_id = first.submit("a lighthouse [fake:never]")  # runs on fal until the test lets it finish
    # The fal job exists and is being followed: its handle was recorded before its status was asked for.
    wait_until(lambda: len(fake.submissions) == 1 and fake.status_requests >= 1, "the job is at fal", timeout=30)
    assert first.job(job_id)["status"] == "in_progress"
    signalled = time.monotonic()
    first_log = first.stop()
    assert time.monotonic() - signalled < 15, first_log
    assert "detached 1 running jobs" in first_log
    assert fake.cancelled == []  # left running on fal for the next process

    # Counted before the new process starts: it may open the job's one status stream while starting.
    asked = fake.status_requests
    second = Serve(tmp_path, fake, db_url)
    wait_until(lambda: fake.status_requests > asked, "the new process follows the fal job", timeout=30)
    fake.finish(str(fake.submissions[0].request_id))
    wait_until(lambda: second.job(job_id)["status"] in ("completed", "failed"), "the job finished", timeout=30)
    finished = second.job(job_id)
    assert finished["status"] == "completed", finished
    assert len(fake.submissions) == 1  # one fal job: the restarted process followed it
    assert fake.cancelled == []
    url = finished["result"]["data"][0]["url"]
    assert httpx.get(url, timeout=10).status_code == 200
    second.stop()

    # The answer survives another restart, and the job was recorded (and charged) once.
    third = Serve(tmp_path, fake, db_url)
    try:
        again = third.job(job_id)
        assert again["status"] == "completed" and again["result"]["size"] == "64x64"
    finally:
        third.stop()
    assert _ledger_rows(db_url, job_id) == 1
    assert len(fake.submissions) == 1


def test_a_replica_killed_during_a_job_leaves_it_to_the_other_once_its_lease_ends(
    tmp_path: Path, fake: FakeFal, db_url: str
) -> None:
    lease = {"PIXELGATE_JOB_LEASE_SECONDS": "2"}
    doomed = Serve(tmp_path / "a", fake, db_url, **lease)
    job_id = doomed.submit("a harbour [fake:never]")  # runs on fal until the test lets it finish
    wait_until(lambda: len(fake.submissions) == 1 and fake.status_requests >= 1, "the job is at fal", timeout=30)
    survivor = Serve(tmp_path / "b", fake, db_url, **lease)
    try:
        assert survivor.job(job_id)["status"] == "in_progress"  # any replica answers for any job
        doomed.stop(signal.SIGKILL)
        asked = fake.status_requests
        wait_until(lambda: fake.status_requests > asked, "the survivor follows the fal job", timeout=30)
        fake.finish(str(fake.submissions[0].request_id))
        wait_until(lambda: survivor.job(job_id)["status"] in ("completed", "failed"), "taken over", timeout=30)
        finished = survivor.job(job_id)
        assert finished["status"] == "completed", finished
        assert len(fake.submissions) == 1 and fake.cancelled == []
    finally:
        survivor_log = survivor.stop()
    assert f"job {job_id}: taken over" in survivor_log
    assert _ledger_rows(db_url, job_id) == 1
