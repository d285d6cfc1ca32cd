"""The cooling period end to end: a provider that keeps failing is skipped, then tried once, then back.

Its own gateway (two failures open a breaker, two seconds of cooling), so other routing tests cannot
open or close its breakers. Two replicas sharing Redis see one breaker: tests/e2e/test_routing_shared_breaker.py.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import TEST_KEY
from tests.fakes.fake_fal import FakeFal
from tests.fakes.fake_replicate import FakeReplicate
from tests.images import png_bytes
from tests.live import LiveGateway, settings_from_yaml

FAL_KEY = "fal-cooling-key"
TOKEN = "r8_cooling_token_0123456789abcdef"
FAL_EDIT = "fal-ai/hidream-e1-1"
QWEN = "qwen/qwen-image-edit"
COOLDOWN = 2.0  # seconds: the steps that must fit inside one cooling period have room on a loaded host
ADMIN = "admin-cooling-key-0123456789"


def gateway_config(fal: FakeFal, replicate: FakeReplicate, extra: str = "") -> str:
    return f"""
api_keys: [{TEST_KEY}]
admin_key: {ADMIN}
breaker_failures: 2
breaker_cooldown_seconds: {COOLDOWN}
{extra}
providers:
  fal: {{api_key: {FAL_KEY}, base_url: "{fal.base_url}", storage_url: "{fal.storage_url}", max_retries: 0}}
  replicate: {{api_key: {TOKEN}, base_url: "{replicate.base_url}", wait_seconds: 1, max_retries: 0}}
models:
  - id: cooled
    modes: [edit]
    deployments:
      - {{provider: fal, upstream: {FAL_EDIT}, images: {{field: image_url, kind: single}}}}
      - {{provider: replicate, upstream: {QWEN}}}
"""


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeFal, FakeReplicate]]:
    with FakeFal(api_key=FAL_KEY, latency=0.05) as fal, FakeReplicate(token=TOKEN, latency=0.05) as replicate:
        replicate.max_output_side = 96
        yield fal, replicate


def live_gateway(folder: Path, text: str) -> LiveGateway:
    return LiveGateway(settings_from_yaml(folder, text))


def providers_tried(client: openai.OpenAI, model: str = "cooled") -> list[tuple[str, int]]:
    raw = client.images.with_raw_response.edit(
        model=model, image=("in.png", png_bytes(32, 32), "image/png"), prompt="p", response_format="b64_json"
    )
    metadata: dict[str, Any] = (raw.parse().model_extra or {})["metadata"]
    return [(attempt["provider"], attempt["status"]) for attempt in metadata["attempts"]]


def test_a_failing_provider_is_skipped_while_it_cools_then_tried_once_and_back(
    fakes: tuple[FakeFal, FakeReplicate], tmp_path: Path
) -> None:
    fal, replicate = fakes
    fal.reset()
    replicate.reset()
    fal.endpoint_scenarios[FAL_EDIT] = "401"
    with (
        live_gateway(tmp_path, gateway_config(fal, replicate)) as live,
        openai.OpenAI(base_url=live.api_url, api_key=TEST_KEY, max_retries=0, timeout=30) as client,
    ):
        assert providers_tried(client) == [("fal", 502), ("replicate", 200)]
        assert providers_tried(client) == [("fal", 502), ("replicate", 200)]  # the second failure opens it
        submits = len(fal.attempts)
        assert providers_tried(client) == [("replicate", 200)]
        assert len(fal.attempts) == submits, "a cooling provider must not be called"
        shown = httpx.get(f"{live.base_url}/admin/providers", headers={"authorization": f"Bearer {ADMIN}"}).json()
        cooling = {entry["provider"]: entry["cooling"] for entry in shown["data"]}
        assert cooling["replicate"] is None and cooling["fal"]["state"] == "open"
        assert time.time() < cooling["fal"]["until"] <= time.time() + COOLDOWN
        metrics = httpx.get(f"{live.base_url}/metrics", headers={"authorization": f"Bearer {ADMIN}"}).text
        assert 'pixelgate_circuit_breaker_state{provider="fal",state="open"} 1.0' in metrics
        # A forced deployment is called regardless of its cooling period.
        sent = time.monotonic()
        with pytest.raises(openai.APIStatusError):
            providers_tried(client, "fal/cooled")
        assert len(fal.attempts) == submits + 1
        # The forced call's failure counts too: it starts the cooling period anew, at some moment
        # between these two readings (a loaded host can stretch that).
        opened = time.monotonic()
        fal.endpoint_scenarios.clear()  # fal recovers
        while time.monotonic() < sent + COOLDOWN / 2:  # surely still cooling, with half of it to spare
            assert providers_tried(client) == [("replicate", 200)]
            time.sleep(0.1)
        time.sleep(max(0.0, opened + COOLDOWN + 0.05 - time.monotonic()))  # surely over
        # Cooling is over: one trial goes to fal; it succeeds and closes the breaker.
        assert providers_tried(client) == [("fal", 200)]
        assert providers_tried(client) == [("fal", 200)]


def test_a_failed_trial_opens_the_breaker_again(fakes: tuple[FakeFal, FakeReplicate], tmp_path: Path) -> None:
    fal, replicate = fakes
    fal.reset()
    replicate.reset()
    fal.endpoint_scenarios[FAL_EDIT] = "401"
    with (
        live_gateway(tmp_path, gateway_config(fal, replicate)) as live,
        openai.OpenAI(base_url=live.api_url, api_key=TEST_KEY, max_retries=0, timeout=30) as client,
    ):
        providers_tried(client)
        providers_tried(client)
        time.sleep(COOLDOWN + 0.1)
        assert providers_tried(client) == [("fal", 502), ("replicate", 200)]  # the trial, failed
        assert providers_tried(client) == [("replicate", 200)]  # open again at once


def test_replicas_sharing_redis_share_the_cooling_period(fakes: tuple[FakeFal, FakeReplicate], tmp_path: Path) -> None:
    fal, replicate = fakes
    fal.reset()
    replicate.reset()
    fal.endpoint_scenarios[FAL_EDIT] = "401"
    shared = f"state_url: redis://127.0.0.1:6379/0\nstate_prefix: 'pixelgate-cooling-{uuid.uuid4().hex}:'"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        live_gateway(tmp_path / "a", gateway_config(fal, replicate, shared)) as first,
        live_gateway(tmp_path / "b", gateway_config(fal, replicate, shared)) as second,
        openai.OpenAI(base_url=first.api_url, api_key=TEST_KEY, max_retries=0, timeout=30) as on_first,
        openai.OpenAI(base_url=second.api_url, api_key=TEST_KEY, max_retries=0, timeout=30) as on_second,
    ):
        assert providers_tried(on_first) == [("fal", 502), ("replicate", 200)]
        assert providers_tried(on_second) == [("fal", 502), ("replicate", 200)]  # the second failure, counted together
        submits = len(fal.attempts)
        assert providers_tried(on_first) == [("replicate", 200)]
        assert providers_tried(on_second) == [("replicate", 200)]
        assert len(fal.attempts) == submits
