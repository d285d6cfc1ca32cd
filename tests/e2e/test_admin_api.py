"""The admin API through real HTTP on a live gateway, on SQLite and on PostgreSQL.

Keys are made, listed, read and revoked with ``PIXELGATE_ADMIN_KEY``; their secrets are looked for
in the database and must not be there; image requests made with the OpenAI SDK show up in
``/admin/usage`` grouped each way, and are still there after the gateway restarts.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.auth import key_id_for
from app.db import async_url
from tests.conftest import TEST_KEY, make_settings
from tests.databases import KINDS, database_url
from tests.e2e.test_readme_examples import readme_example
from tests.images import png_bytes
from tests.live import LiveGateway
from tests.polling import wait_until

ADMIN_KEY = "admin-test-key-7f3e"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture(scope="module", params=KINDS)
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with database_url(request.param, tmp_path_factory.mktemp("db"), label="pixelgate_admin") as url:
        yield url


def admin_gateway(data_dir: Path, db_url: str, **overrides: object) -> LiveGateway:
    settings = make_settings(data_dir, database_url=db_url, admin_key=ADMIN_KEY, ledger_flush_ms=20, **overrides)
    return LiveGateway(settings)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, db_url: str) -> Iterator[LiveGateway]:
    with admin_gateway(tmp_path_factory.mktemp("data"), db_url) as live:
        yield live


@pytest.fixture
def admin(gateway: LiveGateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.base_url, headers=ADMIN, timeout=30) as client:
        yield client


def sync_sql(db_url: str, statement: str) -> list[Any]:
    """Rows of ``statement`` read straight from the database, past the gateway."""

    async def query() -> list[Any]:
        engine = create_async_engine(async_url(db_url, Path()))
        try:
            async with engine.connect() as connection:
                return list((await connection.execute(text(statement))).all())
        finally:
            await engine.dispose()

    return asyncio.run(query())


def test_without_an_admin_key_the_admin_api_is_not_there(tmp_path: Path, db_url: str) -> None:
    with LiveGateway(make_settings(tmp_path, database_url=db_url)) as live:
        for method, path, body in (
            ("GET", "/admin/keys", None),
            ("POST", "/admin/keys", b"{not json"),
            ("GET", "/admin/usage", None),
            ("DELETE", "/admin/keys/key_1", None),
        ):
            response = httpx.request(method, live.base_url + path, headers=ADMIN, content=body, timeout=10)
            assert response.status_code == 404
            assert response.json() == {
                "error": {"message": "Not Found", "type": "invalid_request_error", "param": None, "code": "not_found"}
            }


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_api_key"),
        ({"Authorization": "Bearer wrong"}, "invalid_api_key"),
        ({"Authorization": f"Bearer {TEST_KEY}"}, "invalid_api_key"),
    ],
)
def test_the_admin_api_needs_the_admin_key(gateway: LiveGateway, headers: dict[str, str], code: str) -> None:
    response = httpx.post(f"{gateway.base_url}/admin/keys", headers=headers, content=b"{not json", timeout=10)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == code


def test_keys_are_created_listed_read_and_revoked(admin: httpx.Client, db_url: str) -> None:
    expires = "2031-01-01T00:00:00Z"
    created = admin.post(
        "/admin/keys",
        json={"name": "team-a", "budget_usd": 25, "models": ["sandbox-edit"], "rpm": 60, "expires_at": expires},
    )
    assert created.status_code == 200, created.text
    record = created.json()
    secret = record.pop("key")
    assert secret.startswith("sk-pixelgate-") and secret.startswith(record["prefix"])
    assert record["name"] == "team-a" and record["object"] == "api_key"
    assert (record["budget_usd"], record["spent_usd"], record["models"], record["rpm"]) == (
        25.0,
        0.0,
        ["sandbox-edit"],
        60,
    )
    assert record["expires_at"] == int(datetime(2031, 1, 1, tzinfo=UTC).timestamp())
    assert record["revoked"] is False and abs(record["created"] - datetime.now(UTC).timestamp()) < 60

    listed = admin.get("/admin/keys").json()
    assert listed["object"] == "list"
    assert record in listed["data"] and all("key" not in item for item in listed["data"])
    assert admin.get(f"/admin/keys/{record['id']}").json() == record

    stored = sync_sql(db_url, f"SELECT * FROM api_keys WHERE id = '{record['id']}'")
    assert len(stored) == 1 and all(secret not in str(value) for value in stored[0])
    assert hashlib.sha256(secret.encode()).hexdigest() in stored[0]

    revoked = admin.delete(f"/admin/keys/{record['id']}")
    assert revoked.status_code == 200
    assert revoked.json()["revoked"] is True and revoked.json()["revoked_at"] is not None
    assert admin.get(f"/admin/keys/{record['id']}").json()["revoked"] is True


@pytest.mark.parametrize("key_id", ["key_nope", "key_0123456789abcdef", "%00", "x" * 300])
def test_an_unknown_key_id_is_a_404(admin: httpx.Client, key_id: str) -> None:
    """Never a 503 because the database chokes on the id (PostgreSQL refuses a NUL in text)."""
    for response in (admin.get(f"/admin/keys/{key_id}"), admin.delete(f"/admin/keys/{key_id}")):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "key_not_found"


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"start": "99999999999999999999"}, "start"),
        ({"end": "10000-01-01"}, "end"),
        ({"start": "9999-12-31", "end": "9999-12-31"}, "end"),
        ({"start": "2025-03-02", "end": "2025-03-01T00:00:00Z"}, "end"),
    ],
)
def test_a_bad_usage_range_is_a_400_naming_the_bound(admin: httpx.Client, params: dict[str, str], param: str) -> None:
    response = admin.get("/admin/usage", params=params)
    assert response.status_code == 400 and response.json()["error"]["param"] == param


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b'{"budget_usd": 5}', "name"),
        (b'{"name": "x", "budget_usd": -1}', "budget_usd"),
        (b'{"name": "x", "models": []}', "models"),
        (b'{"name": "x", "models": "sandbox-edit"}', "models"),
        (b'{"name": "x", "rpm": 0}', "rpm"),
        (b'{"name": "x", "expires_at": "2001-01-01T00:00:00Z"}', "expires_at"),
        (b'{"name": "x", "expires_at": "soon"}', "expires_at"),
        (b'{"name": "x", "team": "a"}', "team"),
        (b'{"name": "a\\u0000b"}', "name"),
        (b'{"name": "x", "models": ["a\\u0000"]}', "models"),
        (b'{"name": "x", "expires_at": 99999999999999}', "expires_at"),
        (b'{"name": "x", "rpm": 99999999999}', "rpm"),
        (b"{not json", None),
    ],
)
def test_a_bad_key_request_is_a_400_naming_the_field(admin: httpx.Client, body: bytes, param: str | None) -> None:
    response = admin.post("/admin/keys", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param and error["message"]


def _usage(admin: httpx.Client, group_by: str, **params: str) -> list[dict[str, Any]]:
    response = admin.get("/admin/usage", params={"group_by": group_by, **params})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list" and body["group_by"] == group_by
    data: list[dict[str, Any]] = body["data"]
    return data


def _requests(admin: httpx.Client) -> int:
    return sum(row["requests"] for row in _usage(admin, "day"))


def test_usage_counts_image_requests_by_each_group_and_survives_a_restart(tmp_path: Path) -> None:
    """Its own database: the totals are exact."""
    with database_url("sqlite", tmp_path / "db") as url:
        _usage_scenario(tmp_path, url)


def test_usage_on_postgresql(tmp_path: Path) -> None:
    with database_url("postgresql", tmp_path / "db", label="pixelgate_usage") as url:
        _usage_scenario(tmp_path, url)


def _usage_scenario(tmp_path: Path, url: str) -> None:
    with admin_gateway(tmp_path / "data", url) as live:
        sdk = openai.OpenAI(base_url=live.api_url, api_key=TEST_KEY, max_retries=0, timeout=30)
        with httpx.Client(base_url=live.base_url, headers=ADMIN, timeout=30) as admin:
            sdk.images.generate(model="sandbox-generate", prompt="a", n=2, size="64x64", response_format="b64_json")
            sdk.images.generate(
                model="sandbox-generate",
                prompt="b",
                size="32x32",
                response_format="b64_json",
                extra_headers={"Idempotency-Key": "usage-1"},
            )
            sdk.images.generate(
                model="sandbox-generate",
                prompt="b",
                size="32x32",
                response_format="b64_json",
                extra_headers={"Idempotency-Key": "usage-1"},
            )
            sdk.images.edit(
                model="sandbox-edit",
                image=("in.png", io.BytesIO(png_bytes(40, 25)), "image/png"),
                prompt="c",
                extra_headers={"x-request-id": "req-usage-edit"},
            )
            with pytest.raises(openai.NotFoundError):
                sdk.images.generate(model="no-such-model", prompt="d")
            with pytest.raises(openai.AuthenticationError):
                openai.OpenAI(base_url=live.api_url, api_key="sk-wrong", max_retries=0).images.generate(
                    model="sandbox-generate", prompt="e"
                )
            wait_until(lambda: _requests(admin) == 6, "the six requests in the ledger", timeout=10)

            today = datetime.now(UTC).date().isoformat()
            by_model = {row["model"]: row for row in _usage(admin, "model")}
            assert set(by_model) == {"sandbox-generate", "sandbox-edit", "no-such-model", None}
            generate = by_model["sandbox-generate"]
            # The replay ran nothing: no images, and (answered from the stored result) no model noted.
            assert (generate["requests"], generate["errors"], generate["images"]) == (2, 0, 3)
            assert generate["megapixels"] == pytest.approx((2 * 64 * 64 + 32 * 32) / 1e6)
            assert (by_model["sandbox-edit"]["requests"], by_model["sandbox-edit"]["images"]) == (1, 1)
            assert by_model["sandbox-edit"]["megapixels"] == pytest.approx(40 * 25 / 1e6)
            assert by_model["no-such-model"]["errors"] == 1
            assert (by_model[None]["requests"], by_model[None]["errors"], by_model[None]["images"]) == (2, 1, 0)
            assert all(row["cost_usd"] == 0.0 for row in by_model.values())
            assert _usage(admin, "provider")[0] == {
                "provider": "sandbox",
                "requests": 3,
                "errors": 0,
                "images": 4,
                "megapixels": pytest.approx(generate["megapixels"] + by_model["sandbox-edit"]["megapixels"]),
                "cost_usd": 0.0,
            }
            assert [(row["day"], row["requests"]) for row in _usage(admin, "day")] == [(today, 6)]
            # Rows name the key's id, never the key; the refused request had no key to name.
            by_key = {row["key"]: row["requests"] for row in _usage(admin, "key")}
            assert by_key == {key_id_for(TEST_KEY): 5, None: 1}
            assert _usage(admin, "day", start="2001-01-01", end="2001-12-31") == []
            refused = admin.get("/admin/usage", params={"group_by": "team"})
            assert refused.status_code == 400 and refused.json()["error"]["param"] == "group_by"
            before = _usage(admin, "model")

    codes = sync_sql(url, "SELECT status, error_code, replay FROM usage_ledger ORDER BY id")
    assert sorted((row[0], row[1], bool(row[2])) for row in codes) == [
        (200, None, False),
        (200, None, False),
        (200, None, False),
        (200, None, True),
        (401, "invalid_api_key", False),
        (404, "model_not_found", False),
    ]
    columns = "model, provider, deployments, images, total_ms"
    edit = sync_sql(url, f"SELECT {columns} FROM usage_ledger WHERE request_id = 'req-usage-edit'")
    assert len(edit) == 1
    model, provider, deployments, images, total_ms = edit[0]
    assert (model, provider, images) == ("sandbox-edit", "sandbox", 1) and total_ms >= 0
    assert (json.loads(deployments) if isinstance(deployments, str) else deployments) == ["sandbox:sandbox/edit"]
    with (
        admin_gateway(tmp_path / "data-again", url) as again,
        httpx.Client(base_url=again.base_url, headers=ADMIN) as admin,
    ):
        assert _usage(admin, "model") == before


ADMIN_OPERATIONS = [
    ("/admin/keys", "POST"),
    ("/admin/keys", "GET"),
    ("/admin/keys/{key_id}", "GET"),
    ("/admin/keys/{key_id}", "DELETE"),
    ("/admin/usage", "GET"),
    ("/admin/requests", "GET"),
    ("/admin/providers", "GET"),
]


def test_every_admin_operation_is_published_and_fuzzed(gateway: LiveGateway) -> None:
    published = httpx.get(f"{gateway.base_url}/openapi.json", timeout=30).json()
    served = sorted(
        (path, method.upper())
        for path, item in published["paths"].items()
        for method in item
        if path.startswith("/admin")
    )
    assert served == sorted(ADMIN_OPERATIONS)


@pytest.mark.parametrize(("path", "method"), ADMIN_OPERATIONS)
def test_the_admin_api_answers_any_input_within_the_contract(gateway: LiveGateway, path: str, method: str) -> None:
    """Generated valid and invalid bodies, ids and query strings: never a 500, a 503, or a non-OpenAI error."""
    published = httpx.get(f"{gateway.base_url}/openapi.json", timeout=30).json()
    operation = schemathesis.openapi.from_dict(published)[path][method]

    @settings(
        max_examples=40,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    @given(case=operation.as_strategy() | operation.as_strategy(schemathesis.GenerationMode.NEGATIVE))
    def exchange(case: schemathesis.Case[Any]) -> None:
        response = case.call(base_url=gateway.base_url, headers=ADMIN, timeout=30)
        assert response.status_code < 500, (case.body, case.query, case.path_parameters, response.text)
        if response.status_code >= 400:
            error = response.json()["error"]
            assert set(error) == {"message", "type", "param", "code"} and error["message"], response.text

    exchange()


@pytest.mark.parametrize("name", ["admin-create-key", "admin-usage"])
def test_the_readme_admin_examples_work(gateway: LiveGateway, name: str) -> None:
    """The README's blocks run as written, against this gateway instead of the default address."""
    script = readme_example(name).replace("http://127.0.0.1:8080", gateway.base_url)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env={**os.environ, "PIXELGATE_ADMIN_KEY": ADMIN_KEY},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    if name == "admin-create-key":
        assert answer["name"] == "team-a" and answer["key"].startswith("sk-pixelgate-")
        assert answer["expires_at"] == int(datetime(2030, 12, 31, tzinfo=UTC).timestamp())
    else:
        assert answer == {"object": "list", "group_by": "model", "data": []}  # nothing in March 2025
