"""What the dashboard reads, through real HTTP: the usage time series, the recent requests a page at a
time, and each provider's recent record, with a fake fal that fails as fal does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from app.auth import key_id_for
from tests.conftest import TEST_KEY, upstream_settings
from tests.e2e.conftest import FAL_KEY
from tests.fakes.fake_fal import FakeFal
from tests.live import LiveGateway
from tests.polling import wait_until

ADMIN_KEY = "admin-reports-key-51d2"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
FAL_MODEL = "hidream-i1-full"


@pytest.fixture(scope="module")
def fal_gateway(fal_server: FakeFal, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    settings = upstream_settings(
        tmp_path_factory.mktemp("data"),
        fal=fal_server,
        fal_key=FAL_KEY,
        max_retries=0,
        admin_key=ADMIN_KEY,
        ledger_flush_ms=20,
    )
    with LiveGateway(settings) as live:
        yield live


@pytest.fixture
def admin(fal_gateway: LiveGateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fal_gateway.base_url, headers=ADMIN, timeout=30) as client:
        yield client


def ledger_size(admin: httpx.Client) -> int:
    return sum(row["requests"] for row in admin.get("/admin/usage").json()["data"])


@pytest.fixture(scope="module")
def traffic(fal_gateway: LiveGateway, fal_server: FakeFal) -> list[str]:
    """Two fal generations, one fal refuses our credentials for (502), one it refuses a value of (400),
    and a sandbox generation. Their request ids, in order."""
    fal_server.reset()
    ids = []
    with openai.OpenAI(base_url=fal_gateway.api_url, api_key=TEST_KEY, max_retries=0, timeout=30) as sdk:
        for prompt in ("a kite", "a boat", "[fake:401]", "[fake:422:guidance_scale]"):
            try:
                raw = sdk.images.with_raw_response.generate(
                    model=FAL_MODEL, prompt=prompt, size="128x128", response_format="b64_json"
                )
                ids.append(raw.headers["x-request-id"])
            except openai.APIStatusError as exc:
                ids.append(exc.response.headers["x-request-id"])
        raw = sdk.images.with_raw_response.generate(model="sandbox-generate", prompt="x", size="32x32")
        ids.append(raw.headers["x-request-id"])
    with httpx.Client(base_url=fal_gateway.base_url, headers=ADMIN, timeout=30) as admin:
        wait_until(lambda: ledger_size(admin) == 5, "the five requests in the ledger", timeout=15)
    return ids


def test_each_provider_with_its_recent_requests_and_errors(admin: httpx.Client, traffic: list[str]) -> None:
    answer = admin.get("/admin/providers")
    assert answer.status_code == 200
    body = answer.json()
    assert body["object"] == "list" and body["window_seconds"] == 3600
    providers = {entry["provider"]: entry for entry in body["data"]}
    assert list(providers) == ["fal", "gemini", "openai", "replicate", "sandbox"]  # the configured ones, by name
    fal = providers["fal"]
    # The 401 from fal is fal's failure; the value fal refused (a 400) is the client's.
    assert (fal["requests"], fal["errors"], fal["error_rate"]) == (4, 1, 0.25)
    assert fal["last_error_code"] == "upstream_auth_failed" and fal["last_error_at"] <= fal["last_request_at"]
    assert (fal["kind"], fal["configured"], fal["key_set"]) == ("fal", True, True)
    assert fal["base_url"].startswith("http://127.0.0.1:") and FAL_MODEL in fal["models"]
    assert FAL_KEY not in answer.text and FAL_KEY.split(":")[1] not in answer.text
    assert (providers["sandbox"]["requests"], providers["sandbox"]["errors"]) == (1, 0)
    assert providers["openai"] == {
        **providers["openai"],
        "requests": 0,
        "errors": 0,
        "error_rate": None,
        "key_set": False,
        "last_request_at": None,
    }


def test_the_recent_requests_a_page_at_a_time(admin: httpx.Client, traffic: list[str]) -> None:
    first = admin.get("/admin/requests", params={"limit": 2}).json()
    assert first["object"] == "list" and first["has_more"] is True
    assert [row["request_id"] for row in first["data"]] == traffic[:-3:-1]
    assert (first["first_id"], first["last_id"]) == (first["data"][0]["id"], first["data"][1]["id"])
    rest = admin.get("/admin/requests", params={"limit": 100, "before": first["last_id"]}).json()
    assert [row["request_id"] for row in rest["data"]] == traffic[-3::-1] and rest["has_more"] is False
    rows = {row["request_id"]: row for row in first["data"] + rest["data"]}

    served = rows[traffic[0]]
    assert served["model"] == FAL_MODEL and served["provider"] == "fal" and served["status"] == 200
    assert served["deployments"] == ["fal:fal-ai/hidream-i1-full"] and served["images"] == 1
    assert served["key_id"] == key_id_for(TEST_KEY) and served["key_name"] is None
    assert served["total_ms"] >= served["upstream_ms"] >= 0
    # A failure names the deployment that was tried, and no provider as the one that served.
    failed = rows[traffic[2]]
    assert (failed["status"], failed["error_code"], failed["provider"]) == (502, "upstream_auth_failed", None)
    assert failed["deployments"] == ["fal:fal-ai/hidream-i1-full"]
    assert rows[traffic[3]]["status"] == 400
    assert TEST_KEY not in str(rows)
    empty = admin.get("/admin/requests", params={"before": min(row["id"] for row in rows.values())}).json()
    assert empty == {"object": "list", "data": [], "has_more": False, "first_id": None, "last_id": None}


def test_the_usage_series_by_hour_and_provider(admin: httpx.Client, traffic: list[str]) -> None:
    answer = admin.get("/admin/usage", params={"group_by": "hour,provider"}).json()
    assert answer["group_by"] == "hour,provider"
    assert all(
        set(row) == {"hour", "provider", "requests", "errors", "images", "megapixels", "cost_usd"}
        for row in answer["data"]
    )
    assert all(row["hour"].endswith(":00:00Z") for row in answer["data"])
    totals: dict[str | None, tuple[int, int]] = {}
    for row in answer["data"]:
        requests, errors = totals.get(row["provider"], (0, 0))
        totals[row["provider"]] = (requests + row["requests"], errors + row["errors"])
    assert totals == {"fal": (2, 0), "sandbox": (1, 0), None: (2, 2)}
    # One field alone is answered as before.
    by_provider = admin.get("/admin/usage", params={"group_by": "provider"}).json()
    assert by_provider["group_by"] == "provider"
    assert {row["provider"]: row["requests"] for row in by_provider["data"]} == {"fal": 2, "sandbox": 1, None: 2}


@pytest.mark.parametrize(
    ("path", "params", "param"),
    [
        ("/admin/requests", {"limit": "0"}, "limit"),
        ("/admin/requests", {"limit": "101"}, "limit"),
        ("/admin/requests", {"before": "0"}, "before"),
        ("/admin/requests", {"before": "9" * 30}, "before"),
        ("/admin/requests", {"before": "x"}, "before"),
        ("/admin/providers", {"window_seconds": "5"}, "window_seconds"),
        ("/admin/usage", {"group_by": "day,hour"}, "group_by"),
        ("/admin/usage", {"group_by": "model,key"}, "group_by"),
    ],
)
def test_a_bad_query_is_a_400_naming_it(admin: httpx.Client, path: str, params: dict[str, Any], param: str) -> None:
    answer = admin.get(path, params=params)
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == param


def test_without_an_admin_key_none_of_it_is_there(tmp_path: Path) -> None:
    with LiveGateway(upstream_settings(tmp_path)) as live:
        for path in ("/admin", "/admin/requests", "/admin/providers", "/admin/usage?group_by=day,model"):
            answer = httpx.get(live.base_url + path, headers=ADMIN, timeout=10)
            assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found", path
