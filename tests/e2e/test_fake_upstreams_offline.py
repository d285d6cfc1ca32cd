"""The README's fake Replicate and fake Gemini blocks, run as documented.

Each block's first line starts the fake as its own process from the checkout (run here with the
test's interpreter, on a free port instead of the README's); the rest of the block (curl) runs
verbatim in bash against it, and its answer is checked.
"""

from __future__ import annotations

import base64
import io
import json
import re
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from PIL import Image

from tests.e2e.test_readme_examples import ROOT, readme_example
from tests.live import free_port

START = re.compile(r"^\.venv/bin/python (-m tests\.fakes\.(fake_\w+) [^&#\n]*)&[^\n]*\n", re.MULTILINE)


@contextmanager
def documented(name: str, readme_port: str) -> Iterator[tuple[int, str]]:
    """Start the fake of README block ``name`` on a free port; yield the port and the rest of the block."""
    block = readme_example(name)
    start = START.match(block)
    assert start, block
    port = free_port()
    args = [arg.replace(readme_port, str(port)) for arg in shlex.split(start.group(1))]
    rest = block[start.end() :].replace(f"127.0.0.1:{readme_port}", f"127.0.0.1:{port}")
    with subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            deadline = time.monotonic() + 15
            while True:
                assert process.poll() is None, process.communicate()[1]
                assert time.monotonic() < deadline, f"{start.group(2)} did not start listening"
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.05)
            yield port, rest
        finally:
            process.terminate()
            process.wait(timeout=10)


def run_bash(script: str, cwd: Path) -> str:
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_readme_fake_replicate(tmp_path: Path) -> None:
    with documented("fake-replicate", "8091") as (port, rest):
        prediction = json.loads(run_bash(rest, tmp_path))
        assert prediction["status"] == "succeeded"
        assert len(prediction["output"]) == 2
        assert prediction["output"][0].startswith(f"http://127.0.0.1:{port}/")
        with Image.open(io.BytesIO(httpx.get(prediction["output"][0]).content)) as image:
            assert image.format == "WEBP"
            assert abs(image.size[0] / image.size[1] - 16 / 9) < 0.05


def test_readme_fake_gemini(tmp_path: Path) -> None:
    with documented("fake-gemini", "8092") as (_, rest):
        run_bash(rest, tmp_path)
    answer = json.loads((tmp_path / "answer.json").read_text())
    part = answer["candidates"][0]["content"]["parts"][0]
    assert part["inlineData"]["mimeType"] == "image/png"
    with Image.open(io.BytesIO(base64.b64decode(part["inlineData"]["data"]))) as image:
        assert image.size == (1344, 768)
