"""Issue 12 item 7: an image store that cannot write, with the real ``pixelgate serve`` in a subprocess.

The server runs under a file-size limit (``RLIMIT_FSIZE``, 16 KiB): a real "file too large"
(``EFBIG``) from the kernel on every result image, while small writes (the readiness probes)
still pass, the way a quota or an almost full disk behaves. Python ignores ``SIGXFSZ``, so the
write fails with an ``OSError`` instead of killing the process.

Asked for ``url``, the answer is a 503 ``image_store_unavailable`` that says what to do, not a
bare 500; with ``x-pixelgate-url-fallback: b64_json`` the same request answers the images inline
with a warning; ``b64_json`` is unaffected; ``/readyz`` reports the store not ready.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import TEST_KEY
from tests.databases import postgres_database
from tests.live import free_port

PIXELGATE = Path(sys.executable).parent / "pixelgate"
FILE_LIMIT = 16 * 1024  # a 1024x1024 sandbox result is about 24 KB


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with postgres_database("pixelgate_small_files") as database:
        yield from _serve(tmp_path_factory.mktemp("small-files"), database)


def _serve(data_dir: Path, database: str) -> Iterator[str]:
    # The file-size limit applies to every file the process writes: the usage ledger goes to PostgreSQL
    # (a SQLite file would hit the limit too), so that only the image store meets it.
    port = free_port()
    env = {
        **os.environ,
        "PIXELGATE_DATABASE_URL": database,
        "PIXELGATE_API_KEYS": TEST_KEY,
        "PIXELGATE_DATA_DIR": str(data_dir),
        "PIXELGATE_SIGNING_SECRET": "store-failure-test-signing-secret",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    proc = subprocess.Popen(
        [str(PIXELGATE), "serve", "--port", str(port)],
        env=env,
        cwd=data_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_limit_file_size,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "pixelgate serve did not start"
            time.sleep(0.1)
        yield base_url
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=30)
        assert "Traceback" not in output, output


def sdk(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key=TEST_KEY, max_retries=0, timeout=60)


def test_a_url_answer_the_store_cannot_hold_is_a_clear_503(served: str) -> None:
    with sdk(served) as client, pytest.raises(openai.InternalServerError) as caught:
        client.images.generate(model="sandbox-generate", prompt="a lighthouse", size="1024x1024")
    response = caught.value.response
    error = response.json()["error"]
    assert response.status_code == 503
    assert (error["code"], error["param"], error["type"]) == (
        "image_store_unavailable",
        "response_format",
        "server_error",
    )
    assert "file too large (EFBIG)" in error["message"]
    assert "x-pixelgate-url-fallback: b64_json" in error["message"] and "b64_json" in error["message"]
    assert response.headers["x-should-retry"] == "false"
    assert "small-files" not in error["message"]  # no path of the data dir


def test_the_client_may_take_the_images_inline_instead(served: str) -> None:
    with sdk(served) as client:
        raw = client.images.with_raw_response.generate(
            model="sandbox-generate",
            prompt="a lighthouse",
            size="1024x1024",
            n=2,
            extra_headers={"x-pixelgate-url-fallback": "b64_json"},
        )
    result = raw.parse()
    assert result.data and len(result.data) == 2
    assert all(image.b64_json and image.url is None for image in result.data)
    assert "returned inline as b64_json" in raw.headers["x-pixelgate-warnings"]


def test_b64_json_answers_do_not_need_the_store(served: str) -> None:
    with sdk(served) as client:
        result = client.images.generate(
            model="sandbox-generate", prompt="a lighthouse", size="1024x1024", response_format="b64_json"
        )
    assert result.data and result.data[0].b64_json


def test_readyz_reports_the_store_after_it_failed(served: str) -> None:
    with sdk(served) as client, pytest.raises(openai.InternalServerError):
        client.images.generate(model="sandbox-generate", prompt="again", size="1024x1024")
    ready = httpx.get(f"{served}/readyz", timeout=5)
    body = ready.json()
    assert ready.status_code == 503 and body["status"] == "not_ready"
    assert body["checks"]["image_store"] is False and body["checks"]["storage"] is True
    assert body["image_store_problem"] == "file too large (EFBIG)"


def test_small_results_still_fit(served: str) -> None:
    with sdk(served) as client:
        result = client.images.generate(model="sandbox-generate", prompt="a dot", size="64x64")
    assert result.data and result.data[0].url
    assert httpx.get(result.data[0].url, timeout=5).status_code == 200
