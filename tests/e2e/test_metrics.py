"""``GET /metrics`` scraped and parsed (prometheus-client's own parser) after known traffic on a live gateway.

The traffic: sandbox generations, priced ones, a refused key, an unknown model, and a fal model whose
upstream refuses the gateway's key (the fake fal on loopback), so every series has a known value.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.main import create_app
from tests.conftest import TEST_KEY, make_settings, priced_sandbox_generation, upstream_settings
from tests.fakes.fake_fal import FakeFal
from tests.live import LiveGateway

ADMIN_KEY = "admin-metrics-41f0"
PRICED = priced_sandbox_generation("sandbox-priced", per_image=0.25, source="test")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def fal() -> Iterator[FakeFal]:
    with FakeFal(api_key="the-right-key:secret") as fake:
        yield fake


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, fal: FakeFal) -> Iterator[LiveGateway]:
    settings = upstream_settings(
        tmp_path_factory.mktemp("data"),
        fal=fal,
        fal_key="a-wrong-key:nope",
        admin_key=ADMIN_KEY,
        models=[PRICED],
        max_retries=0,
    )
    with LiveGateway(settings) as gateway:
        yield gateway


def scrape(live: LiveGateway, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.get(f"{live.base_url}/metrics", headers=headers, timeout=30)


def samples(text: str) -> Samples:
    parsed: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            parsed[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return parsed


def value(parsed: Samples, name: str, **labels: str) -> float:
    return parsed.get((name, frozenset(labels.items())), 0.0)


def test_the_metrics_count_known_traffic(live: LiveGateway) -> None:
    sdk = openai.OpenAI(base_url=live.api_url, api_key=TEST_KEY, max_retries=0, timeout=30)
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    before = samples(scrape(live, admin).text)
    for _ in range(3):
        sdk.images.generate(model="sandbox-generate", prompt="p", size="64x64", n=2, response_format="b64_json")
    sdk.images.generate(model="sandbox-priced", prompt="p", size="64x64", n=2, response_format="b64_json")
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=live.api_url, api_key="wrong", max_retries=0).images.generate(
            model="sandbox-generate", prompt="p"
        )
    with pytest.raises(openai.NotFoundError):
        sdk.images.generate(model="no-such-model", prompt="p")
    with pytest.raises(openai.APIStatusError) as failed:
        sdk.images.generate(model="hidream-i1-fast", prompt="p", size="64x64")
    assert failed.value.status_code == 502 and failed.value.code == "upstream_auth_failed"

    answer = scrape(live, admin)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    after = samples(answer.text)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    ok = {"model": "sandbox-generate", "provider": "sandbox", "status": "200"}
    assert delta("pixelgate_requests_total", **ok) == 3
    assert delta("pixelgate_requests_total", model="sandbox-priced", provider="sandbox", status="200") == 1
    assert delta("pixelgate_requests_total", model="unknown", provider="unknown", status="401") == 1
    assert delta("pixelgate_requests_total", model="no-such-model", provider="unknown", status="404") == 1
    assert delta("pixelgate_requests_total", model="hidream-i1-fast", provider="unknown", status="502") == 1
    assert delta("pixelgate_request_errors_total", code="invalid_api_key") == 1
    assert delta("pixelgate_request_errors_total", code="model_not_found") == 1
    assert delta("pixelgate_request_errors_total", code="upstream_auth_failed") == 1
    assert delta("pixelgate_images_total", model="sandbox-generate", provider="sandbox") == 6
    assert delta("pixelgate_images_total", model="sandbox-priced", provider="sandbox") == 2
    assert delta("pixelgate_cost_usd_total", model="sandbox-priced", provider="sandbox") == pytest.approx(0.5)
    assert delta("pixelgate_request_duration_seconds_count", model="sandbox-generate") == 3
    assert delta("pixelgate_request_duration_seconds_bucket", model="sandbox-generate", le="+Inf") == 3
    assert delta("pixelgate_upstream_duration_seconds_count", provider="sandbox") == 4
    assert delta("pixelgate_upstream_duration_seconds_count", provider="fal") == 1
    assert delta("pixelgate_upstream_errors_total", provider="fal", code="upstream_auth_failed") == 1
    assert delta("pixelgate_conversion_seconds_count") == 4
    assert value(after, "pixelgate_upstream_calls_inflight", provider="sandbox") == 0
    assert value(after, "pixelgate_inflight_requests") == 0
    assert value(after, "pixelgate_queued_requests") == 0
    assert value(after, "pixelgate_admission_slots_in_use") == 0
    assert value(after, "pixelgate_intake_bytes") == 0
    assert value(after, "pixelgate_admission_slots") == live.settings.max_inflight
    assert value(after, "pixelgate_circuit_breaker_state", provider="fal", state="closed") == 1
    assert value(after, "pixelgate_circuit_breaker_state", provider="fal", state="open") == 0
    assert value(after, "pixelgate_ledger_dropped_rows_total") == 0
    assert value(after, "pixelgate_budget_refusals_total") == 0
    assert ("pixelgate_ledger_pending_rows", frozenset()) in after
    assert value(after, "pixelgate_ledger_written_rows_total") >= value(before, "pixelgate_ledger_written_rows_total")


def test_with_an_admin_key_only_its_bearer_may_scrape(live: LiveGateway) -> None:
    assert scrape(live).status_code == 401
    refused = scrape(live, {"Authorization": f"Bearer {TEST_KEY}"})  # a client key is not enough
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    assert scrape(live, {"Authorization": f"Bearer {ADMIN_KEY}"}).status_code == 200


def test_without_an_admin_key_only_loopback_clients_may_scrape(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    with LiveGateway(settings) as gateway:
        assert scrape(gateway).status_code == 200  # the test client is on 127.0.0.1


async def test_without_an_admin_key_another_address_is_refused(tmp_path: Path) -> None:
    """The app in process, as if a client at a public address asked (ASGI's ``client``)."""
    app = create_app(make_settings(tmp_path))
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as remote:
        refused = await remote.get("/metrics")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "metrics_loopback_only"
