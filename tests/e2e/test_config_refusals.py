"""``pixelgate serve`` refuses configuration mistakes with one line on stderr and exit status 2.

Each mistake used to start anyway (ignored, or failing every request later) or print a 20-30 line
traceback. The real command runs as its own process, configured by environment and YAML file as a
user would; a correct configuration starts and logs what it serves, without any secret.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.live import free_port

PIXELGATE = Path(sys.executable).parent / "pixelgate"


def _environment(tmp_path: Path, extra: dict[str, str]) -> dict[str, str]:
    inherited = {name: value for name, value in os.environ.items() if not name.upper().startswith("PIXELGATE_")}
    return {**inherited, "PIXELGATE_DATA_DIR": str(tmp_path / "data"), **extra}


def _serve_refused(tmp_path: Path, config: str | None, env: dict[str, str] | None = None) -> str:
    args = [str(PIXELGATE), "serve", "--port", str(free_port())]
    if config is not None:
        path = tmp_path / "pixelgate.yaml"
        path.write_text(config, encoding="utf-8")
        args += ["--config", str(path)]
    result = subprocess.run(
        args, env=_environment(tmp_path, env or {}), capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    return result.stderr


def _one_line(stderr: str) -> str:
    assert stderr.endswith("\n") and stderr.count("\n") == 1, stderr
    assert "Traceback" not in stderr
    return stderr.rstrip("\n")


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        pytest.param(
            "model:\n  - {id: x, provider: sandbox, upstream: y, modes: [generate]}\n",
            "unknown key 'model' in the configuration (did you mean 'models'?)",
            id="top-level-key",
        ),
        pytest.param(
            "providers:\n  fal: {api_key: k, base_ur: 'http://127.0.0.1:9'}\n",
            "unknown key 'base_ur' in providers.fal (did you mean 'base_url'?)",
            id="provider-key",
        ),
        pytest.param(
            "models:\n  - {id: x, provider: sandbox, upstream: y, modes: [generate], prams: {}}\n",
            "unknown key 'prams' in models[0] (did you mean 'params'?)",
            id="model-key",
        ),
        pytest.param(
            "models:\n  - {id: x, provider: fall, upstream: fal-ai/x, modes: [edit], images: {field: image_url}}\n",
            "models[0].provider: no provider 'fall' is configured (did you mean 'fal'?)",
            id="unknown-provider",
        ),
        pytest.param(
            "providers:\n  local: {api_key: k, base_url: 'http://127.0.0.1:9/v1'}\n",
            "providers.local: a provider not named after a kind needs 'kind' "
            "(one of: fal, gemini, openai, replicate, sandbox)",
            id="second-openai-provider-without-kind",
        ),
    ],
)
def test_a_configuration_mistake_is_one_line(tmp_path: Path, config: str, expected: str) -> None:
    line = _one_line(_serve_refused(tmp_path, config))
    assert line == f"pixelgate: invalid configuration: {expected}"


def test_an_unknown_pixelgate_variable_is_one_line(tmp_path: Path) -> None:
    line = _one_line(_serve_refused(tmp_path, None, {"PIXELGATE_MAX_INFLGHT": "4"}))
    assert line == (
        "pixelgate: invalid configuration: unknown environment variable PIXELGATE_MAX_INFLGHT "
        "(did you mean 'PIXELGATE_MAX_INFLIGHT'?)"
    )


def test_an_unwritable_data_dir_is_one_line(tmp_path: Path) -> None:
    # A path below a regular file: not writable whoever runs the test (root ignores permission bits).
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a directory", encoding="utf-8")
    line = _one_line(_serve_refused(tmp_path, None, {"PIXELGATE_DATA_DIR": str(blocker / "data")}))
    assert line.startswith(f"pixelgate: invalid configuration: data_dir (PIXELGATE_DATA_DIR) {blocker / 'data'} ")
    assert line.endswith("is not writable: Not a directory")


def test_a_database_that_cannot_be_reached_is_one_line_without_its_password(tmp_path: Path) -> None:
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    url = "postgresql://pixelgate:hunter2secret@127.0.0.1:9/pixelgate"
    line = _one_line(_serve_refused(tmp_path, None, {"PIXELGATE_DATABASE_URL": url}))
    assert line.startswith(
        "pixelgate: cannot open the database postgresql+asyncpg://pixelgate:***@127.0.0.1:9/pixelgate"
    )
    assert "hunter2secret" not in line


def test_a_correct_configuration_starts_and_logs_what_it_serves(tmp_path: Path) -> None:
    config = tmp_path / "pixelgate.yaml"
    config.write_text(
        "api_keys: [sk-gate-secret-1, sk-gate-secret-2]\n"
        "providers:\n  local: {kind: openai, api_key: sk-local-secret, base_url: 'http://user:pw@127.0.0.1:9/v1?t=1'}\n"
        "models:\n  - {id: my-local, provider: local, upstream: some-model, modes: [edit]}\n",
        encoding="utf-8",
    )
    port = free_port()
    env = _environment(tmp_path, {"FAL_KEY": "fal-id:fal-secret"})
    process = subprocess.Popen(
        [str(PIXELGATE), "serve", "--port", str(port), "--config", str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "pixelgate serve did not start"
            time.sleep(0.1)
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert "provider fal: kind fal, key set, https://queue.fal.run" in output
    assert "provider openai: kind openai, no key, https://api.openai.com/v1" in output
    assert "provider local: kind openai, key set, http://127.0.0.1:9/v1" in output
    assert "models on local: my-local" in output
    assert "2 API key(s) loaded" in output
    for secret in ("fal-secret", "fal-id", "sk-local-secret", "sk-gate-secret", "pw@", "t=1"):
        assert secret not in output
