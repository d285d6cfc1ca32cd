"""The container files, checked without a Docker engine (none runs on these machines).

hadolint lints the Dockerfile; the compose file is parsed; and `pixelgate serve` is started from a
clean virtualenv (`pip install .`, as the image does) with the Dockerfile's exact CMD and ENV.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.images import png_bytes
from tests.live import free_port

ROOT = Path(__file__).resolve().parents[1]
VENV_TIMEOUT_SECONDS = 720
"""A test that builds the clean virtualenv (the first one to use it) pays for ``pip install .`` from the
registry: about two minutes here, more on a loaded machine; the suite's default per-test bound is 120 s."""


def dockerfile_cmd_and_env() -> tuple[list[str], dict[str, str]]:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    final_stage = text.split("\nFROM ")[-1]
    cmd_line = re.findall(r"^CMD (\[.*\])$", final_stage, re.MULTILINE)[-1]
    env: dict[str, str] = {}
    for line in re.findall(r"^ENV (.+)$", final_stage, re.MULTILINE):
        env.update(dict(re.findall(r"(\w+)=(\S+)", line)))
    return json.loads(cmd_line), env


def test_hadolint_is_clean() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "info", "Dockerfile"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_serves_the_dockerfile_on_8080_with_a_data_volume() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    service = compose["services"]["pixelgate"]
    assert service["build"] == "."
    assert any(str(port).endswith(":8080") for port in service["ports"])
    assert any(str(volume).endswith(":/data") for volume in service["volumes"])
    assert service["healthcheck"]["test"][0] == "CMD"
    assert "pixelgate-data" in compose["volumes"]


def test_dockerfile_runs_as_non_root_with_a_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    user = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    assert user and not user[-1].startswith(("root", "0"))
    assert "HEALTHCHECK" in text
    cmd, env = dockerfile_cmd_and_env()
    assert cmd[:4] == ["pixelgate", "serve", "--host", "0.0.0.0"]
    assert env["PIXELGATE_DATA_DIR"] == "/data"


@pytest.fixture(scope="module")
def clean_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", str(ROOT)], check=True, timeout=600, capture_output=True
    )
    return venv


def _run_cmd(venv: Path, data_dir: Path, extra_env: dict[str, str]) -> tuple[subprocess.Popen[str], int]:
    cmd, env = dockerfile_cmd_and_env()
    port = free_port()
    cmd = [str(venv / "bin" / cmd[0]), *cmd[1:]]
    cmd[cmd.index("--port") + 1] = str(port)  # the one change: a free port instead of 8080
    proc_env = {"PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "HOME": str(data_dir), **env}
    proc_env.update({"PIXELGATE_DATA_DIR": str(data_dir), **extra_env})
    proc = subprocess.Popen(
        cmd, env=proc_env, cwd=data_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    return proc, port


@pytest.mark.timeout(VENV_TIMEOUT_SECONDS)
def test_image_cmd_without_keys_refuses_to_serve_openly(clean_venv: Path, tmp_path: Path) -> None:
    proc, _ = _run_cmd(clean_venv, tmp_path, {})
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "refusing to serve on 0.0.0.0 without API keys" in output


@pytest.mark.timeout(VENV_TIMEOUT_SECONDS)
def test_image_cmd_with_compose_environment_serves_sandbox(clean_venv: Path, tmp_path: Path) -> None:
    proc, port = _run_cmd(clean_venv, tmp_path, {"PIXELGATE_ALLOW_OPEN": "1", "FAL_KEY": "", "PIXELGATE_API_KEYS": ""})
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "server did not become healthy"
            time.sleep(0.2)
        response = httpx.post(
            f"{base}/v1/images/edits",
            files={"image": ("a.png", png_bytes(32, 32), "image/png")},
            data={"model": "sandbox-edit", "prompt": "x", "response_format": "b64_json"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        assert response.json()["data"][0]["b64_json"]
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
