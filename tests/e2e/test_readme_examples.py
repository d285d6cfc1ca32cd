"""The README's curl, Python and Node examples, run verbatim against a live pixelgate.

Each example is the fenced block after an ``<!-- example: NAME -->`` marker in README.md; if the
README changes, this test runs the new text. The Node example uses the official ``openai`` npm
package with ``fs.createReadStream`` (a chunked multipart upload).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TEST_KEY
from tests.images import decode, png_bytes
from tests.live import LiveGateway
from tests.node_client import node_modules

ROOT = Path(__file__).resolve().parents[2]


def readme_example(name: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(rf"<!-- example: {re.escape(name)} -->\s*```\w*\n(.*?)```", text, re.DOTALL)
    assert match, f"README has no example named {name}"
    return match.group(1)


@pytest.fixture
def workdir(tmp_path: Path, gateway: LiveGateway) -> Path:
    (tmp_path / "input.png").write_bytes(png_bytes(300, 180))
    return tmp_path


def _env(gateway: LiveGateway) -> dict[str, str]:
    return {**os.environ, "PIXELGATE_URL": gateway.base_url, "PIXELGATE_API_KEY": TEST_KEY}


def _run(command: list[str], workdir: Path, gateway: LiveGateway, timeout: int = 60) -> str:
    result = subprocess.run(
        command, cwd=workdir, env=_env(gateway), capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _check_output(workdir: Path, stdout: str) -> None:
    assert "300x180" in stdout
    edited = decode((workdir / "edited.png").read_bytes())
    assert edited.size == (300, 180)
    assert edited.convert("RGB").tobytes() != decode(png_bytes(300, 180)).convert("RGB").tobytes()


def test_curl_example(gateway: LiveGateway, workdir: Path) -> None:
    _check_output(workdir, _run(["bash", "-euo", "pipefail", "-c", readme_example("curl")], workdir, gateway))


def test_python_example(gateway: LiveGateway, workdir: Path) -> None:
    script = workdir / "example.py"
    script.write_text(readme_example("python"), encoding="utf-8")
    _check_output(workdir, _run([sys.executable, str(script)], workdir, gateway))


def test_node_example_streams_a_chunked_upload(gateway: LiveGateway, workdir: Path) -> None:
    (workdir / "node_modules").symlink_to(node_modules(), target_is_directory=True)
    script = workdir / "example.mjs"
    script.write_text(readme_example("node"), encoding="utf-8")
    _check_output(workdir, _run(["node", str(script)], workdir, gateway, timeout=120))
