"""A job interrupted again and again (each restart or takeover is a run) is given up, not run forever."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from app.db import Database
from app.jobs.models import JobRequest
from app.jobs.runner import MAX_RUNS
from app.jobs.store import JobStore
from tests.conftest import TEST_KEY, make_settings
from tests.live import LiveGateway
from tests.polling import wait_until

JOB_ID = "job_" + "a" * 24


async def _interrupted_job(url: str) -> None:
    """A queued job that processes took over MAX_RUNS times and never finished."""
    database = Database.from_setting(url, Path())
    await database.open()  # and migrated
    try:
        store = JobStore(database)
        request = JobRequest(
            mode="generate",
            fields={"model": "sandbox-generate", "prompt": "p"},
            base_url="http://x/",
            response_format="url",
        )
        from app.auth import key_id_for

        await store.create(
            job_id=JOB_ID,
            key_id=key_id_for(TEST_KEY),
            model="sandbox-generate",
            request=request,
            inputs=[],
            webhook_url=None,
            now_ms=1_000,
        )
        for run in range(MAX_RUNS):
            await store.claim(f"crashed-{run}", 1, now_ms=10_000 * (run + 1), lease_ms=1)
    finally:
        await database.aclose()


def test_a_job_run_too_many_times_fails_instead_of_running_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pixelgate.db'}"
    asyncio.run(_interrupted_job(url))
    with LiveGateway(make_settings(tmp_path, database_url=url)) as live:
        headers = {"Authorization": f"Bearer {TEST_KEY}"}

        def job() -> dict[str, object]:
            body: dict[str, object] = httpx.get(f"{live.api_url}/images/jobs/{JOB_ID}", headers=headers).json()
            return body

        wait_until(lambda: job()["status"] == "failed", "the job given up")
        error = job()["error"]
        assert isinstance(error, dict) and f"interrupted {MAX_RUNS} times" in str(error["message"])
