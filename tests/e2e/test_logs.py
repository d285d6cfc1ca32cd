"""The logs of the real ``pixelgate serve``: one line per request in text or JSON, upstream failures with
their cause, the start-up summary, and never a secret.

Each test runs the server in a subprocess configured by environment as a user would, sends known
traffic (a generation, a download of its signed link, a refused key, an upstream that refuses the
gateway's key and echoes it in its error), stops it with SIGTERM and reads everything it printed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import openai
import pytest

from app.auth import key_id_for
from tests.conftest import TEST_KEY
from tests.fakes.fake_openai import FakeOpenAIServer
from tests.live import free_port

PIXELGATE = Path(sys.executable).parent / "pixelgate"
UPSTREAM_KEY = "sk-upstream-logs-9f8e7d6c5b4a"
SIGNING_SECRET = "logs-test-signing-secret-3c2b1a"
ADMIN_KEY = "admin-logs-0a9b8c"


@dataclass
class Traffic:
    """What the test sent and what came back, and everything the server printed."""

    output: str
    generated_id: str
    failed_id: str
    link_path: str
    link_sig: str


def serve_and_send(data_dir: Path, upstream: FakeOpenAIServer, log_format: str | None) -> Traffic:
    port = free_port()
    env = {
        **os.environ,
        "PIXELGATE_API_KEYS": TEST_KEY,
        "PIXELGATE_ADMIN_KEY": ADMIN_KEY,
        "PIXELGATE_DATA_DIR": str(data_dir),
        "PIXELGATE_SIGNING_SECRET": SIGNING_SECRET,
        "OPENAI_API_KEY": UPSTREAM_KEY,
        "PIXELGATE_OPENAI_BASE_URL": upstream.base_url,
    }
    if log_format is not None:
        env["PIXELGATE_LOG_FORMAT"] = log_format
    log_file = data_dir / "server.log"
    with log_file.open("w") as sink:
        proc = subprocess.Popen(
            [str(PIXELGATE), "serve", "--port", str(port)], env=env, cwd=data_dir, stdout=sink, stderr=sink
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log_file.read_text()
            time.sleep(0.1)
        sdk = openai.OpenAI(base_url=f"{base}/v1", api_key=TEST_KEY, max_retries=0, timeout=30)
        made = sdk.images.with_raw_response.generate(
            model="sandbox-generate", prompt="a lighthouse", size="64x64", response_format="url"
        )
        data = made.parse().data
        url = data[0].url if data else None
        assert url is not None
        assert httpx.get(url, timeout=10).status_code == 200
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{base}/v1", api_key="sk-not-a-key", max_retries=0).models.list()
        upstream.app.fail_next(401, message=f"Incorrect API key provided: {UPSTREAM_KEY}", code="invalid_api_key")
        with pytest.raises(openai.APIStatusError) as failed:
            sdk.images.generate(model="gpt-image-1", prompt="p")
        assert failed.value.status_code == 502
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    return Traffic(
        output=log_file.read_text(),
        generated_id=made.headers["x-request-id"],
        failed_id=failed.value.response.headers["x-request-id"],
        link_path=urlsplit(url).path,
        link_sig=parse_qs(urlsplit(url).query)["sig"][0],
    )


@pytest.fixture
def upstream(fake_openai: FakeOpenAIServer) -> Iterator[FakeOpenAIServer]:
    yield fake_openai


def assert_no_secret(traffic: Traffic) -> None:
    for secret in (TEST_KEY, UPSTREAM_KEY, SIGNING_SECRET, ADMIN_KEY, traffic.link_sig, "sk-not-a-key"):
        assert secret not in traffic.output, f"{secret!r} is in the log"


def test_json_logs_are_one_object_per_line_with_the_request_fields(tmp_path: Path, upstream: FakeOpenAIServer) -> None:
    traffic = serve_and_send(tmp_path, upstream, "json")
    lines = [line for line in traffic.output.splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= entry.keys() for entry in entries)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"]) for entry in entries)

    requests = {entry["request_id"]: entry for entry in entries if entry["logger"] == "pixelgate.request"}
    made = requests[traffic.generated_id]
    assert made["level"] == "info" and made["message"].startswith("POST /v1/images/generations 200")
    assert made["method"] == "POST" and made["path"] == "/v1/images/generations" and made["status"] == 200
    assert made["model"] == "sandbox-generate" and made["provider"] == "sandbox" and made["error_code"] is None
    assert made["key_id"] == key_id_for(TEST_KEY) and made["images"] == 1 and made["cost_usd"] == 0
    assert isinstance(made["total_ms"], int) and isinstance(made["upstream_ms"], int) and made["queue_ms"] >= 0

    failed = requests[traffic.failed_id]
    assert failed["status"] == 502 and failed["error_code"] == "upstream_auth_failed"
    assert failed["model"] == "gpt-image-1" and failed["level"] == "warning"
    downloads = [entry for entry in requests.values() if entry["path"] == traffic.link_path]
    assert [entry["status"] for entry in downloads] == [200]
    refused = [entry for entry in requests.values() if entry["path"] == "/v1/models"]
    assert [(entry["status"], entry["error_code"], entry["key_id"]) for entry in refused] == [
        (401, "invalid_api_key", None)
    ]

    causes = [entry for entry in entries if entry["logger"] == "pixelgate.upstream"]
    assert len(causes) == 1
    cause = causes[0]
    assert cause["provider"] == "openai" and cause["upstream"] == "gpt-image-1" and cause["status"] == 502
    assert cause["error_code"] == "upstream_auth_failed"
    assert cause["cause"].startswith("HTTP 401: ") and "Incorrect API key provided: [redacted]" in cause["cause"]

    summary = [entry["message"] for entry in entries if entry["logger"] == "pixelgate"]
    assert any(message.startswith("models on sandbox:") for message in summary)
    assert any(message.startswith("provider openai: kind openai, key set") for message in summary)
    assert any("Uvicorn running" in entry["message"] for entry in entries)  # uvicorn's own lines too
    assert_no_secret(traffic)


def test_text_logs_are_one_readable_line_per_request(tmp_path: Path, upstream: FakeOpenAIServer) -> None:
    traffic = serve_and_send(tmp_path, upstream, None)  # text is the default
    line = next(line for line in traffic.output.splitlines() if f"request_id={traffic.generated_id}" in line)
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT[\d:.]+Z INFO pixelgate\.request: POST /v1/images/generations 200 \d+ ms "
        rf"request_id={traffic.generated_id} key_id={key_id_for(TEST_KEY)} model=sandbox-generate provider=sandbox "
        r"deployments=sandbox:sandbox/generate images=1 megapixels=0\.004 cost_usd=0\.0 queue_ms=\d+ "
        r"upstream_ms=\d+",
        line,
    ), line
    cause = next(line for line in traffic.output.splitlines() if "pixelgate.upstream" in line)
    assert "WARNING pixelgate.upstream: upstream call failed: openai gpt-image-1" in cause
    assert 'cause="HTTP 401: ' in cause and "[redacted]" in cause
    assert f"{traffic.link_path} 200" in traffic.output
    assert "HTTP/1.1" not in traffic.output  # uvicorn's access log is replaced by the request line
    assert_no_secret(traffic)
