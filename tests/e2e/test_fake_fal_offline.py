"""The README's offline set-up: the fake fal started as its own process, pixelgate pointed at it.

The fake's command line and the environment variables are read from the README's ``fake-fal``
block (port 8090 replaced by a free one), so the documented command is the one that is tested.
"""

from __future__ import annotations

import base64
import io
import re
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from PIL import Image

from app.settings import Settings
from tests.conftest import TEST_KEY
from tests.e2e.test_readme_examples import ROOT, readme_example
from tests.live import LiveGateway, free_port

README_PORT = "8090"


def _wait_for(port: int, process: subprocess.Popen[str], seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1]
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("the fake fal did not start listening")


@pytest.fixture
def documented_fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    block = readme_example("fake-fal")
    command = re.search(r"^\.venv/bin/python (-m tests\.fakes\.fake_fal [^&#\n]*)&", block, re.MULTILINE)
    assert command, block
    port = free_port()
    args = [arg.replace(README_PORT, str(port)) for arg in shlex.split(command.group(1))]
    variables = dict(re.findall(r"\b(FAL_KEY|PIXELGATE_FAL_BASE_URL|PIXELGATE_FAL_STORAGE_URL)=(\S+)", block))
    assert set(variables) == {"FAL_KEY", "PIXELGATE_FAL_BASE_URL", "PIXELGATE_FAL_STORAGE_URL"}
    for name, value in variables.items():
        monkeypatch.setenv(name, value.replace(README_PORT, str(port)))
    # Started exactly as documented: from the checkout, as its own process.
    with subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            _wait_for(port, process)
            yield port
        finally:
            process.terminate()
            process.wait(timeout=10)


def test_readme_fake_fal_serves_hidream_offline(documented_fake: int, tmp_path: Path) -> None:
    # Settings from the environment the README sets, as `make run` would read it.
    settings = Settings(api_keys=[TEST_KEY], data_dir=tmp_path, signing_secret="offline-signing-secret")
    assert settings.providers["fal"].base_url == f"http://127.0.0.1:{documented_fake}"
    with (
        LiveGateway(settings) as live,
        openai.OpenAI(base_url=live.api_url, api_key=TEST_KEY, max_retries=0, timeout=30) as sdk,
    ):
        source = io.BytesIO()
        Image.new("RGB", (80, 60), (10, 120, 200)).save(source, format="PNG")
        result = sdk.images.edit(
            model="hidream-e1-1",
            image=("in.png", source.getvalue(), "image/png"),
            prompt="make it dusk",
            response_format="b64_json",
        )
        assert result.data is not None
        with Image.open(io.BytesIO(base64.b64decode(result.data[0].b64_json or ""))) as image:
            assert image.size == (80, 60)
        with pytest.raises(openai.BadRequestError) as refused:
            sdk.images.edit(
                model="hidream-e1-1",
                image=("in.png", source.getvalue(), "image/png"),
                prompt="[fake:content_policy] anything",
            )
        assert isinstance(refused.value.body, dict) and refused.value.body["code"] == "moderation_blocked"
