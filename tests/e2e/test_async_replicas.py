"""Two gateways on one database act as one for async jobs: each job runs once, on one of them, whichever
was asked; a job cancelled on one is stopped on the other (its fal job too). SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import TEST_KEY, upstream_settings
from tests.databases import KINDS, database_url
from tests.e2e.conftest import FAL_KEY
from tests.fakes.fake_fal import FakeFal
from tests.live import LiveGateway
from tests.polling import wait_until

AUTH = {"Authorization": f"Bearer {TEST_KEY}"}


@pytest.fixture(params=KINDS)
def replicas(request: pytest.FixtureRequest, tmp_path: Path, fal_server: FakeFal) -> Iterator[list[LiveGateway]]:
    with database_url(request.param, tmp_path / "db", label="pixelgate_jobs_replicas") as url:
        gateways = [
            LiveGateway(
                upstream_settings(tmp_path / name, fal=fal_server, fal_key=FAL_KEY, database_url=url, job_concurrency=4)
            )
            for name in ("a", "b")
        ]
        try:
            yield gateways  # started by the test
        finally:
            for gateway in gateways:
                if gateway.started:
                    gateway.stop()


def _submit(gateway: LiveGateway, prompt: str) -> str:
    response = httpx.post(
        f"{gateway.api_url}/images/generations",
        json={"model": "hidream-i1-fast", "prompt": prompt, "size": "64x64", "response_format": "b64_json"},
        headers={**AUTH, "Prefer": "respond-async"},
        timeout=10,
    )
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def _job(gateway: LiveGateway, job_id: str) -> dict[str, Any]:
    response = httpx.get(f"{gateway.api_url}/images/jobs/{job_id}", headers=AUTH, timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_each_job_runs_once_whichever_replica_took_it(replicas: list[LiveGateway], fake: FakeFal) -> None:
    fake.latency = 0.3
    for gateway in replicas:
        gateway.start()
    jobs = [_submit(replicas[i % 2], f"job {i}") for i in range(12)]
    for i, job_id in enumerate(jobs):

        def completed(job_id: str = job_id) -> bool:
            return bool(_job(replicas[0], job_id)["status"] == "completed")

        wait_until(completed, f"job {i} completed", timeout=30)
        assert _job(replicas[1], job_id)["result"]["data"][0]["b64_json"]  # the same answer on either
    prompts = sorted(str(s.payload["prompt"]) for s in fake.submissions)
    assert prompts == sorted(f"job {i}" for i in range(12))  # every job once, none twice


def test_a_job_cancelled_on_one_replica_is_stopped_on_the_one_running_it(
    replicas: list[LiveGateway], fake: FakeFal
) -> None:
    fake.latency = 30
    running_on, asked = replicas
    running_on.start()
    job_id = _submit(running_on, "long")
    wait_until(lambda: len(fake.submissions) == 1, "the job is at fal")
    asked.start()  # after the first took the job: the second never ran it
    cancelled = httpx.delete(f"{asked.api_url}/images/jobs/{job_id}", headers=AUTH, timeout=10)
    assert cancelled.json()["status"] == "cancelled"
    wait_until(lambda: fake.cancelled == [fake.submissions[0].request_id], "the fal job cancelled", timeout=10)
    assert _job(running_on, job_id)["status"] == "cancelled"
