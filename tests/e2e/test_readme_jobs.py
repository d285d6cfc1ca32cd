"""The README's async-job examples, run verbatim: polling a job with the SDK and httpx, and verifying a
webhook with standardwebhooks as a receiver would."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_KEY, make_settings
from tests.e2e.test_readme_examples import readme_example
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.live import LiveGateway
from tests.polling import wait_until

SECRET = "whsec_" + base64.b64encode(b"readme-webhook-secret-0123456789").decode()


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as server:
        yield server


@pytest.fixture(scope="module")
def jobs_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    settings = make_settings(
        tmp_path_factory.mktemp("readme-jobs"), webhook_secret=SECRET, fetch_allow_hosts=["127.0.0.1"]
    )
    with LiveGateway(settings) as live:
        yield live


def test_the_async_python_example_polls_a_job_to_its_result(jobs_gateway: LiveGateway, tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text(readme_example("async-python"), encoding="utf-8")
    env = {**os.environ, "PIXELGATE_URL": jobs_gateway.base_url, "PIXELGATE_API_KEY": TEST_KEY}
    result = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    submitted, finished = result.stdout.splitlines()
    assert submitted == "202 queued"
    status, url = finished.split(" ")
    assert status == "completed"
    assert httpx.get(url).headers["content-type"] == "image/png"


def test_the_webhook_example_accepts_a_delivery_and_refuses_a_tampered_one(
    jobs_gateway: LiveGateway,
    receiver: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    response = httpx.post(
        f"{jobs_gateway.api_url}/images/generations",
        json={"model": "sandbox-generate", "prompt": "p", "size": "64x64", "webhook_url": receiver.url},
        headers={"Authorization": f"Bearer {TEST_KEY}", "Prefer": "respond-async"},
    )
    assert response.status_code == 202
    wait_until(lambda: len(receiver.delivered()) == 1, "the webhook delivered")
    [delivery] = receiver.received

    monkeypatch.setenv("PIXELGATE_WEBHOOK_SECRET", SECRET)
    namespace: dict[str, object] = {}
    exec(readme_example("webhook-verify"), namespace)  # the README's own code, as a receiver runs it
    handle = namespace["handle"]
    assert callable(handle)
    verify: Callable[[bytes, dict[str, str]], int] = handle
    assert verify(delivery.body, delivery.headers) == 204
    assert capsys.readouterr().out.strip() == f"{response.json()['id']} completed"
    assert verify(delivery.body.replace(b'"completed"', b'"failed"'), delivery.headers) == 400
