"""Cost, budgets and model allow-lists through the OpenAI SDK on a live gateway (SQLite and PostgreSQL).

The models are offline sandbox models given a price by configuration (a model's price is catalog
data), so the test knows exactly what each image costs: $0.01.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from tests.conftest import TEST_KEY, make_settings, priced_sandbox_generation
from tests.databases import KINDS, database_url
from tests.images import png_bytes
from tests.live import LiveGateway
from tests.polling import wait_until

ADMIN_KEY = "admin-budgets-7e2a"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
PRICED = "sandbox-priced"
PRICED_EDIT = "sandbox-priced-edit"
PRICE_SOURCE = "test: one cent per image"
MODELS = [
    priced_sandbox_generation(PRICED, per_image=0.01, source=PRICE_SOURCE),
    {
        "id": PRICED_EDIT,
        "provider": "sandbox",
        "upstream": "sandbox/edit",
        "modes": ["edit"],
        "images": {"field": "image", "max_images": 1},
        "count": {"field": "num_images", "max": 4, "seeds_per_image": True},
        "output_format": {"values": ["png"], "default": "png"},
        "price": {"per_image": 0.01, "source": PRICE_SOURCE},
    },
]


@pytest.fixture(scope="module", params=KINDS)
def gateway(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    with database_url(request.param, tmp_path_factory.mktemp("db"), label="pixelgate_budgets") as url:
        settings = make_settings(tmp_path_factory.mktemp("data"), database_url=url, admin_key=ADMIN_KEY, models=MODELS)
        with LiveGateway(settings) as live:
            yield live


def create_key(gateway: LiveGateway, **fields: object) -> dict[str, object]:
    answer = httpx.post(f"{gateway.base_url}/admin/keys", json={"name": "b", **fields}, headers=ADMIN, timeout=30)
    assert answer.status_code == 200, answer.text
    created: dict[str, object] = answer.json()
    return created


def sdk(gateway: LiveGateway, key: object) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.api_url, api_key=str(key), max_retries=0, timeout=60)


def spent(gateway: LiveGateway, key_id: object) -> float:
    record = httpx.get(f"{gateway.base_url}/admin/keys/{key_id}", headers=ADMIN, timeout=30).json()
    value: float = record["spent_usd"]
    return value


def wait_spent(gateway: LiveGateway, key_id: object, expected: float) -> None:
    """Charges are written off the request path: wait for them to land (and then stay)."""
    deadline = time.monotonic() + 15
    while spent(gateway, key_id) != pytest.approx(expected):
        assert time.monotonic() < deadline, f"spent {spent(gateway, key_id)}, expected {expected}"
        time.sleep(0.05)


def wait_usage(gateway: LiveGateway, key_id: object, requests: int) -> dict[str, object]:
    """The key's ledger totals once its ``requests`` rows are written (in batches, off the request path)."""
    deadline = time.monotonic() + 15
    while True:
        answer = httpx.get(f"{gateway.base_url}/admin/usage", params={"group_by": "key"}, headers=ADMIN, timeout=30)
        rows = [row for row in answer.json()["data"] if row["key"] == key_id]
        if rows and rows[0]["requests"] == requests:
            row: dict[str, object] = rows[0]
            return row
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.1)


def test_thirty_parallel_requests_never_spend_more_than_a_budget_worth_five_images(gateway: LiveGateway) -> None:
    created = create_key(gateway, budget_usd=0.05)
    client = sdk(gateway, created["key"])

    def generate(_: int) -> int | str:
        try:
            client.images.generate(
                model=PRICED,
                prompt="p",
                size="64x64",
                response_format="b64_json",
                extra_body={"delay_ms": 400},  # all 30 are in flight together
            )
        except openai.RateLimitError as refused:
            assert refused.response.headers["x-should-retry"] == "false"
            body = refused.response.json()["error"]
            return f"{refused.status_code} {body['type']} {body['code']}"
        return 200

    with ThreadPoolExecutor(max_workers=30) as pool:
        outcomes = list(pool.map(generate, range(30)))
    assert outcomes.count(200) == 5, outcomes
    assert outcomes.count("429 insufficient_quota insufficient_quota") == 25, outcomes
    wait_spent(gateway, created["id"], 0.05)
    with pytest.raises(openai.RateLimitError):  # the budget is spent, nothing is held any more
        client.images.generate(model=PRICED, prompt="p", size="64x64", response_format="b64_json")
    time.sleep(0.3)  # a late charge would show now
    assert spent(gateway, created["id"]) == pytest.approx(0.05)
    row = wait_usage(gateway, created["id"], 31)
    assert row["cost_usd"] == pytest.approx(0.05) and row["images"] == 5 and row["errors"] == 26


def test_every_answer_says_what_it_cost_and_a_dry_run_what_it_would(gateway: LiveGateway) -> None:
    client = sdk(gateway, TEST_KEY)
    raw = client.images.with_raw_response.generate(
        model=PRICED, prompt="p", size="64x64", n=3, response_format="b64_json"
    )
    assert raw.headers["x-pixelgate-cost-usd"] == "0.030000"
    extra = raw.parse().model_extra
    assert extra is not None and extra["metadata"]["cost_usd"] == pytest.approx(0.03)
    free = client.images.with_raw_response.generate(model="sandbox-generate", prompt="p", size="64x64")
    assert free.headers["x-pixelgate-cost-usd"] == "0.000000"
    dry = httpx.post(
        f"{gateway.api_url}/images/generations",
        params={"dry_run": "true"},
        json={"model": PRICED, "prompt": "p", "size": "64x64", "n": 6},
        headers={"Authorization": f"Bearer {TEST_KEY}"},
        timeout=30,
    )
    assert dry.status_code == 200, dry.text
    assert dry.json()["cost_usd"] == pytest.approx(0.06) and dry.headers["x-pixelgate-cost-usd"] == "0.060000"
    assert dry.json()["price"] == {"per_image": 0.01, "source": PRICE_SOURCE, "confirmed": False}
    model = client.models.retrieve(PRICED)
    assert model.model_extra is not None and model.model_extra["price"]["per_image"] == 0.01


def test_a_key_may_use_only_the_models_it_lists(gateway: LiveGateway) -> None:
    created = create_key(gateway, models=["sandbox-generate"])
    client = sdk(gateway, created["key"])
    client.images.generate(model="sandbox-generate", prompt="p", size="64x64", response_format="b64_json")
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.images.generate(model=PRICED, prompt="p", size="64x64")
    assert refused.value.code == "model_not_allowed" and refused.value.param == "model"
    assert refused.value.response.headers["x-should-retry"] == "false"
    with pytest.raises(openai.PermissionDeniedError):
        client.images.edit(model="sandbox-edit", image=("in.png", png_bytes(64, 64)), prompt="p")
    assert [model.id for model in client.models.list()] == ["sandbox-generate"]
    with pytest.raises(openai.PermissionDeniedError):
        client.models.retrieve(PRICED)


def test_an_idempotent_replay_costs_nothing(gateway: LiveGateway) -> None:
    created = create_key(gateway, budget_usd=0.02)
    client = sdk(gateway, created["key"])
    headers = {"Idempotency-Key": "budget-replay-1"}
    for _ in range(3):
        client.images.generate(
            model=PRICED, prompt="p", size="64x64", response_format="b64_json", extra_headers=headers
        )
    wait_spent(gateway, created["id"], 0.01)
    client.images.generate(model=PRICED, prompt="q", size="64x64", response_format="b64_json")
    wait_spent(gateway, created["id"], 0.02)
    with pytest.raises(openai.RateLimitError):
        client.images.generate(model=PRICED, prompt="r", size="64x64", response_format="b64_json")


def test_a_request_that_fails_upstream_costs_nothing_and_releases_its_hold(gateway: LiveGateway) -> None:
    """The sandbox decodes its input itself: a truncated PNG passes the header check, then fails there."""
    created = create_key(gateway, budget_usd=0.01)
    client = sdk(gateway, created["key"])
    truncated = png_bytes(64, 64)[:-40]
    with pytest.raises(openai.BadRequestError) as failed:
        client.images.edit(model=PRICED_EDIT, image=("in.png", truncated), prompt="p")
    assert failed.value.code == "invalid_image"
    # The hold is released (in the background, off the request path: a request sent at once may still
    # see it): the one cent is then still there for a request that succeeds.
    served: list[bytes] = []

    def edit_served() -> bool:
        try:
            result = client.images.edit(
                model=PRICED_EDIT, image=("in.png", png_bytes(64, 64)), prompt="p", response_format="b64_json"
            )
        except openai.RateLimitError:
            return False
        served.append(base64.b64decode((result.data or [])[0].b64_json or ""))
        return True

    wait_until(edit_served, what="the failed request's hold released", timeout=10, interval=0.05)
    assert served and served[0]
    wait_spent(gateway, created["id"], 0.01)


def test_budget_refusals_are_in_the_ledger_with_their_code(gateway: LiveGateway) -> None:
    created = create_key(gateway, budget_usd=0)
    client = sdk(gateway, created["key"])
    with pytest.raises(openai.RateLimitError) as refused:
        client.images.generate(model=PRICED, prompt="p", size="64x64")
    assert refused.value.code == "insufficient_quota"
    client.images.generate(model="sandbox-generate", prompt="p", size="64x64")  # free models stay usable
    row = wait_usage(gateway, created["id"], 2)
    assert row["errors"] == 1 and row["cost_usd"] == 0


def _job_status(gateway: LiveGateway, key: object, job_id: str) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {key}"}
    answer = httpx.get(f"{gateway.api_url}/images/jobs/{job_id}", headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    body: dict[str, object] = answer.json()
    return body


def test_an_async_job_is_held_against_the_budget_and_charged_what_it_cost(gateway: LiveGateway) -> None:
    created = create_key(gateway, budget_usd=0.02)
    headers = {"Authorization": f"Bearer {created['key']}", "Prefer": "respond-async"}
    body = {"model": PRICED, "prompt": "p", "size": "64x64", "n": 2, "response_format": "b64_json"}
    accepted = httpx.post(f"{gateway.api_url}/images/generations", json=body, headers=headers, timeout=30)
    assert accepted.status_code == 202, accepted.text
    job_id = str(accepted.json()["id"])
    deadline = time.monotonic() + 20
    while (job := _job_status(gateway, created["key"], job_id))["status"] not in ("completed", "failed"):
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    assert job["status"] == "completed", job
    result = job["result"]
    assert isinstance(result, dict) and result["metadata"]["cost_usd"] == pytest.approx(0.02)
    wait_spent(gateway, created["id"], 0.02)
    # The budget is spent: a job that cannot fit is refused at once, not after its 202.
    refused = httpx.post(f"{gateway.api_url}/images/generations", json=body, headers=headers, timeout=30)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "insufficient_quota"
    # Three ledger rows: the request that made the job (202), the job's run, the refusal.
    row = wait_usage(gateway, created["id"], 3)
    assert row["cost_usd"] == pytest.approx(0.02) and row["images"] == 2 and row["errors"] == 1
