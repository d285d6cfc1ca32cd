"""The intake budget end to end: the openai SDK -> a live pixelgate -> the fake fal.

Large uploads read and not yet with their upstream are bounded by ``PIXELGATE_MAX_INTAKE_BYTES``: with
room for one upload, three edits sent at once reach fal one after the other, each as soon as fal has
accepted the one before (its submit answered: the job runs on without the budget); without the bound
they reach it together. The fake answers each submit after ``SUBMIT_SECONDS`` and finishes each job
``JOB_SECONDS`` later, so the two orders are told apart by the gaps between submits.
"""

from __future__ import annotations

import itertools
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar
from urllib.parse import urlsplit

import httpx
import openai
import pytest
from openai.types import ImagesResponse

from tests.conftest import TEST_KEY, upstream_settings
from tests.e2e.conftest import FAL_KEY
from tests.fakes.fake_fal import FakeFal
from tests.images import noise_png
from tests.live import LiveGateway
from tests.polling import wait_until

SUBMIT_SECONDS = 1.0
JOB_SECONDS = 3.0
EDITS = 3


T = TypeVar("T")

IMAGE = noise_png(330, seed=3)  # about 330 kB: over the 256 KiB from which a body counts


@pytest.fixture(scope="module", params=[int(1.5 * len(IMAGE)), 0], ids=["one-upload-at-a-time", "unbounded"])
def fal_gateway(
    request: pytest.FixtureRequest, fal_server: FakeFal, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveGateway]:
    settings = upstream_settings(
        tmp_path_factory.mktemp("intake"), fal=fal_server, fal_key=FAL_KEY, max_intake_bytes=request.param
    )
    with LiveGateway(settings) as live:
        yield live


def _edit(client: openai.OpenAI) -> int:
    result = client.images.edit(
        model="hidream-e1-1",
        image=("in.png", IMAGE, "image/png"),
        prompt=f"make it blue [fake:slow_submit:{SUBMIT_SECONDS}]",
        response_format="b64_json",
    )
    return len(result.data or [])


def test_uploads_reach_the_upstream_as_the_budget_allows(
    fal_gateway: LiveGateway, sdk: openai.OpenAI, fake: FakeFal
) -> None:
    fake.latency = JOB_SECONDS
    with ThreadPoolExecutor(max_workers=EDITS) as pool:
        assert list(pool.map(lambda _: _edit(sdk), range(EDITS))) == [1] * EDITS
    accepted = sorted(submission.at for submission in fake.submissions)
    gaps = [later - earlier for earlier, later in itertools.pairwise(accepted)]
    assert len(accepted) == EDITS
    if fal_gateway.settings.max_intake_bytes:
        # One after the other, each once the one before was accepted, not once its job ended.
        assert all(0.8 * SUBMIT_SECONDS <= gap < SUBMIT_SECONDS + 0.8 * JOB_SECONDS for gap in gaps), gaps
    else:
        assert accepted[-1] - accepted[0] < 0.8 * SUBMIT_SECONDS, gaps
    load = httpx.get(f"{fal_gateway.base_url}/readyz", timeout=5).json()["admission"]
    assert load["intake_bytes"] == 0


@pytest.fixture(scope="module")
def bounded(fal_server: FakeFal, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    settings = upstream_settings(
        tmp_path_factory.mktemp("intake-dup"),
        fal=fal_server,
        fal_key=FAL_KEY,
        max_intake_bytes=int(1.5 * len(IMAGE)),
        fetch_allow_hosts=[urlsplit(fal_server.storage_url).netloc],  # JSON edits' image_url inputs
    )
    with LiveGateway(settings) as live:
        yield live


def test_a_retry_waiting_on_its_first_try_holds_no_budget(bounded: LiveGateway, fake: FakeFal) -> None:
    # A client's retry with the same Idempotency-Key (what the SDKs send when a proxy cut the first try)
    # waits for the first try's job; meanwhile another client's upload goes through.
    fake.latency = JOB_SECONDS
    with (
        openai.OpenAI(base_url=bounded.api_url, api_key=TEST_KEY, max_retries=0, timeout=30) as client,
        ThreadPoolExecutor(max_workers=3) as pool,
    ):

        def edit(prompt: str, key: str | None) -> int:
            headers = {"Idempotency-Key": key} if key else None
            result = client.images.edit(
                model="hidream-e1-1", image=("in.png", IMAGE, "image/png"), prompt=prompt, extra_headers=headers
            )
            return len(result.data or [])

        first = pool.submit(edit, "first", "retry-me")
        wait_until(lambda: len(fake.submissions) == 1, "the first try reached fal")
        retry = pool.submit(edit, "first", "retry-me")
        time.sleep(0.5)  # the retry's 330 kB read and waiting (nothing to poll for: it is silent)
        other = pool.submit(edit, "another client's edit", None)
        # Long before the first try's job ends (JOB_SECONDS), when the retry would give its share back.
        wait_until(lambda: len(fake.submissions) == 2, "the other edit reached fal", timeout=JOB_SECONDS / 2)
        assert [first.result(), retry.result(), other.result()] == [1, 1, 1]
    assert len(fake.submissions) == 2  # the retry was answered with the first try's result


def _intake(live: LiveGateway) -> int:
    load = httpx.get(f"{live.base_url}/readyz", timeout=5).json()["admission"]
    return int(load["intake_bytes"])


@pytest.fixture
def bounded_sdk(bounded: LiveGateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=bounded.api_url, api_key=TEST_KEY, max_retries=0, timeout=30) as client:
        yield client


def _upload(client: openai.OpenAI, prompt: str) -> ImagesResponse:
    return client.images.edit(model="hidream-e1-1", image=("in.png", IMAGE, "image/png"), prompt=prompt)


@contextmanager
def _budget_held(
    live: LiveGateway, fake: FakeFal, first: Callable[[], T]
) -> Iterator[tuple[ThreadPoolExecutor, Future[T]]]:
    """``first()`` sent from a pool (fal's jobs ``JOB_SECONDS`` long), once its bytes hold the whole budget:
    until fal answers its submit (slow, by its prompt). Yields the pool, for what comes next, and it."""
    fake.latency = JOB_SECONDS
    with ThreadPoolExecutor(max_workers=2) as pool:
        held = pool.submit(first)
        wait_until(lambda: _intake(live) > 0, "the first request's bytes hold the budget")
        yield pool, held


def test_a_body_no_route_reads_is_refused_without_waiting_for_the_budget(
    bounded: LiveGateway, bounded_sdk: openai.OpenAI, fake: FakeFal
) -> None:
    # A declared length beyond every cap used to wait for an empty budget (holding back the uploads
    # behind it) only to be refused once it had it.
    prompt = f"hold [fake:slow_submit:{3 * SUBMIT_SECONDS}]"
    with _budget_held(bounded, fake, lambda: _upload(bounded_sdk, prompt)) as (_, first):
        head = (
            "POST /v1/images/edits HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {TEST_KEY}\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            f"Content-Length: {10**12}\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", bounded.port), timeout=30) as sock:
            sock.sendall(head.encode())
            status = sock.recv(4096).split(b"\r\n", 1)[0]
        assert status == b"HTTP/1.1 413 Request Entity Too Large", status
        assert not fake.submissions  # answered while the first upload still held the budget
        assert len(first.result().data or []) == 1


def _chunked_edit(live: LiveGateway, prompt: str) -> int:
    boundary = "intakeboundary"
    fields = {"model": "hidream-e1-1", "prompt": prompt, "response_format": "b64_json"}
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()
    ]
    parts += [
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="in.png"\r\n'
        "Content-Type: image/png\r\n\r\n".encode(),
        IMAGE,
        f"\r\n--{boundary}--\r\n".encode(),
    ]
    response = httpx.post(
        f"{live.api_url}/images/edits",
        content=iter(parts),  # an iterator: sent chunked, without a Content-Length
        headers={"Authorization": f"Bearer {TEST_KEY}", "Content-Type": f"multipart/form-data; boundary={boundary}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.request.headers.get("transfer-encoding") == "chunked"
    return len(response.json()["data"])


def test_a_chunked_upload_reserves_as_much_as_a_file_may_hold(
    bounded: LiveGateway, bounded_sdk: openai.OpenAI, fake: FakeFal
) -> None:
    # Its length unknown, a chunked body counts as a file at the size cap: here more than the budget,
    # so it waits until the upload before it is with fal (it used to reserve nothing and pass it).
    prompt = f"first [fake:slow_submit:{SUBMIT_SECONDS}]"
    with _budget_held(bounded, fake, lambda: _upload(bounded_sdk, prompt)) as (pool, first):
        chunked = pool.submit(_chunked_edit, bounded, "chunked")
        assert len(first.result().data or []) == 1 and chunked.result() == 1
    assert [str(submission.payload["prompt"]).split()[0] for submission in fake.submissions] == ["first", "chunked"]


def _json_edit(live: LiveGateway, url: str, prompt: str) -> int:
    response = httpx.post(
        f"{live.api_url}/images/edits",
        json={"model": "hidream-e1-1", "prompt": prompt, "images": [{"image_url": url}], "response_format": "b64_json"},
        headers={"Authorization": f"Bearer {TEST_KEY}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return len(response.json()["data"])


def test_a_downloaded_input_counts_in_the_budget_as_an_upload(
    bounded: LiveGateway, bounded_sdk: openai.OpenAI, fake: FakeFal
) -> None:
    # A JSON edit's image_url input, once downloaded, holds the budget until fal has accepted its job,
    # so an upload sent meanwhile waits unread (a download used to reserve nothing: both went at once).
    fake.uploads["input"] = IMAGE  # served by the fake's file store, an allowed loopback host here
    url = f"{fake.storage_url}/files/input/in.png"
    prompt = f"first [fake:slow_submit:{SUBMIT_SECONDS}]"
    with _budget_held(bounded, fake, lambda: _json_edit(bounded, url, prompt)) as (pool, first):
        upload = pool.submit(_upload, bounded_sdk, "second")
        assert first.result() == 1 and len(upload.result().data or []) == 1
    # Accepted in this order: the upload (answered at once) reached fal only once the first job was
    # accepted (SUBMIT_SECONDS after it arrived); unbounded, it is accepted while the first still waits.
    assert [str(submission.payload["prompt"]).split()[0] for submission in fake.submissions] == ["first", "second"]
    assert _intake(bounded) == 0
