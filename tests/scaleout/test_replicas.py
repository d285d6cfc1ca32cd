"""Two ``pixelgate serve`` replicas behind HAProxy act as one gateway (the compose profile ``scale``, run locally).

Real parts on loopback: HAProxy with deploy/haproxy/haproxy.cfg, the machine's PostgreSQL (a fresh
database) and Redis (a fresh prefix), SeaweedFS as the S3 store; each replica calls its own fake fal,
so the jobs each replica ran are counted apart. Shown: a link minted on one replica is served by the
other; an Idempotency-Key sent to both runs one upstream job; a key revoked on one is refused by the
other within a second; ``kill -9`` of a replica during a burst of SDK requests with Idempotency-Keys
ends with every request answered and no key's job run twice by a live replica.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from tests.fakes.fake_fal import FakeFal
from tests.polling import wait_until
from tests.scaleout.cluster import Cluster, cluster

GENERATION = {"model": "hidream-i1-full", "size": "64x64"}


@pytest.fixture(scope="module")
def scale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with cluster(tmp_path_factory.mktemp("scale")) as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh_fakes(scale: Cluster) -> None:
    for fake in scale.fakes:
        fake.reset()


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _generate(
    scale: Cluster, api_url: str, prompt: str, *, response_format: str = "b64_json", key: str | None = None
) -> httpx.Response:
    headers = _auth(scale.api_key) if key is None else {**_auth(scale.api_key), "Idempotency-Key": key}
    body = {**GENERATION, "prompt": prompt, "response_format": response_format}
    return httpx.post(f"{api_url}/images/generations", json=body, headers=headers, timeout=60)


def _download(url: str) -> httpx.Response:
    """GET a link as a client would: a 502 from the balancer (its replica just died) is tried again."""
    for _ in range(4):
        response = httpx.get(url, timeout=30)
        if response.status_code != 502:
            return response
        time.sleep(0.5)
    return response


def _jobs(fake: FakeFal, prompt: str) -> int:
    return sum(1 for job in fake.submissions if job.payload.get("prompt") == prompt)


def test_a_link_minted_on_one_replica_is_served_by_the_other(scale: Cluster) -> None:
    one, two = scale.replicas
    answer = _generate(scale, one.api_url, "a lighthouse at dusk", response_format="url")
    assert answer.status_code == 200, answer.text
    link = answer.json()["data"][0]["url"]
    assert link.startswith(f"{scale.balancer.base_url}/v1/images/")  # PIXELGATE_PUBLIC_URL: the balancer
    path = link.removeprefix(scale.balancer.base_url)
    from_two = httpx.get(f"{two.base_url}{path}", timeout=10)
    from_balancer = httpx.get(link, timeout=10)
    assert from_two.status_code == 200 and from_balancer.status_code == 200
    assert from_two.content == from_balancer.content and len(from_two.content) > 100
    name = path.split("?")[0].rsplit("/", 1)[1]
    assert f"{scale.store_prefix}/{name}" in scale.seaweed.keys(scale.store_prefix)
    assert not any((one.log_dir.parent / "replica-1" / "images").glob("*"))  # nothing on the replica's disk


def test_an_idempotency_key_sent_to_both_replicas_runs_one_job(scale: Cluster) -> None:
    one, two = scale.replicas
    key, prompt = f"order-{uuid.uuid4().hex[:8]}", "a red bicycle"
    first: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: first.append(_generate(scale, one.api_url, prompt, key=key)))
    thread.start()
    wait_until(lambda: _jobs(scale.fakes[0], prompt) == 1, "the first replica's job reached its fake fal")
    second = _generate(scale, two.api_url, prompt, key=key)
    thread.join(timeout=60)
    assert first[0].status_code == 200 and second.status_code == 200, second.text
    assert second.json()["data"] == first[0].json()["data"]
    assert second.headers["idempotent-replayed"] == "true"
    assert (_jobs(scale.fakes[0], prompt), _jobs(scale.fakes[1], prompt)) == (1, 0)


def test_the_same_key_twice_through_the_balancer_with_the_sdk_runs_one_job(scale: Cluster) -> None:
    client = openai.OpenAI(base_url=scale.api_url, api_key=scale.api_key, max_retries=0, timeout=60)
    key, prompt = f"sdk-{uuid.uuid4().hex[:8]}", "a paper boat"

    def call() -> str:
        result = client.images.generate(
            model="hidream-i1-full",
            prompt=prompt,
            response_format="b64_json",
            extra_body={"size": "64x64"},
            extra_headers={"Idempotency-Key": key},
        )
        assert result.data is not None and result.data[0].b64_json is not None
        return result.data[0].b64_json

    with ThreadPoolExecutor(max_workers=2) as pool:
        images = list(pool.map(lambda _: call(), range(2)))
    assert images[0] == images[1]
    assert sum(_jobs(fake, prompt) for fake in scale.fakes) == 1


def test_a_key_revoked_on_one_replica_is_refused_by_the_other_within_a_second(scale: Cluster) -> None:
    one, two = scale.replicas
    created = httpx.post(
        f"{one.base_url}/admin/keys", json={"name": "revoked-soon"}, headers=_auth(scale.admin_key), timeout=10
    )
    assert created.status_code == 200, created.text
    record = created.json()
    assert httpx.get(f"{two.api_url}/models", headers=_auth(record["key"]), timeout=10).status_code == 200
    revoked = httpx.delete(f"{one.base_url}/admin/keys/{record['id']}", headers=_auth(scale.admin_key), timeout=10)
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    time.sleep(1.0)
    refused = httpx.get(f"{two.api_url}/models", headers=_auth(record["key"]), timeout=10)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "key_revoked"


KEYS = 16


def test_kill_9_of_a_replica_during_a_burst_answers_every_request_and_runs_no_job_twice(scale: Cluster) -> None:
    one, two = scale.replicas
    run = uuid.uuid4().hex[:8]
    # The SDK retries connection errors and HAProxy's 502 for a request cut by the crash; the same
    # Idempotency-Key goes with every retry (the SDK keeps the headers). Each key is sent by two
    # clients at once, so its duplicates meet on both replicas.
    client = openai.OpenAI(base_url=scale.api_url, api_key=scale.api_key, max_retries=8, timeout=90)

    def call(index: int) -> str:
        result = client.images.generate(
            model="hidream-i1-full",
            prompt=f"burst {run} {index}",
            response_format="url",
            extra_body={"size": "64x64"},
            extra_headers={"Idempotency-Key": f"burst-{run}-{index}"},
        )
        assert result.data is not None and len(result.data) == 1 and result.data[0].url is not None
        fetched = _download(result.data[0].url)  # served whichever replica minted it
        assert fetched.status_code == 200, fetched.text
        return result.data[0].url

    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            futures = [(index, pool.submit(call, index)) for index in range(KEYS) for _ in range(2)]
            # Killed once the first answers are out and the next wave runs: keys answered before the
            # crash (their duplicates on both replicas) and keys cut by it are both in the burst.
            wait_until(lambda: sum(future.done() for _, future in futures) >= 4, "the first answers", timeout=60)
            one.kill()
            links: dict[int, list[str]] = {}
            for index, future in futures:
                links.setdefault(index, []).append(future.result(timeout=120))
        reruns = 0
        for index in range(KEYS):
            prompt = f"burst {run} {index}"
            on_killed, on_survivor = _jobs(scale.fakes[0], prompt), _jobs(scale.fakes[1], prompt)
            # Both clients of a key got the one answer; at most one job per replica, and a second job
            # only where the killed replica died before keeping its answer (it never answered then).
            assert links[index][0] == links[index][1], (index, on_killed, on_survivor)
            assert on_killed <= 1 and on_survivor <= 1, (index, on_killed, on_survivor)
            assert on_killed + on_survivor >= 1
            reruns += on_killed + on_survivor - 1
        assert sum(_jobs(scale.fakes[0], f"burst {run} {i}") for i in range(KEYS)) >= 1
        print(f"kill -9 during the burst: {reruns} of {KEYS} keys ran again on the surviving replica")
        assert two.process is not None and two.process.alive()
    except BaseException:
        print(scale.log_tails())
        raise
    finally:
        if one.process is not None and not one.process.alive():
            one.start()  # the next test (if any) gets both replicas back
