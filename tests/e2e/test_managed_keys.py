"""Managed keys on the image API, through the OpenAI SDK on a live gateway (SQLite and PostgreSQL).

A key made with the admin API works beside ``PIXELGATE_API_KEYS``; revoked or expired, it gets a 401
that says so; its own rpm is its limit; and the gateway is open only while no key of any kind exists.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import TEST_KEY, make_settings
from tests.databases import KINDS, database_url
from tests.live import LiveGateway

ADMIN_KEY = "admin-managed-keys-5d1c"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture(scope="module", params=KINDS)
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with database_url(request.param, tmp_path_factory.mktemp("db"), label="pixelgate_managed") as url:
        yield url


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, db_url: str) -> Iterator[LiveGateway]:
    settings = make_settings(tmp_path_factory.mktemp("data"), database_url=db_url, admin_key=ADMIN_KEY)
    with LiveGateway(settings) as live:
        yield live


def _create(gateway: LiveGateway, **fields: object) -> dict[str, object]:
    answer = httpx.post(f"{gateway.base_url}/admin/keys", json={"name": "t", **fields}, headers=ADMIN, timeout=30)
    assert answer.status_code == 200, answer.text
    created: dict[str, object] = answer.json()
    return created


def _sdk(gateway: LiveGateway, key: object) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.api_url, api_key=str(key), max_retries=0, timeout=30)


def _generate(gateway: LiveGateway, key: object) -> None:
    # One client per call, closed after it: an unclosed client is a ResourceWarning (an error here).
    with _sdk(gateway, key) as sdk:
        sdk.images.generate(model="sandbox-generate", prompt="a", size="32x32", response_format="b64_json")


def test_a_managed_key_works_beside_the_configured_ones(gateway: LiveGateway) -> None:
    created = _create(gateway)
    _generate(gateway, created["key"])
    _generate(gateway, TEST_KEY)
    with pytest.raises(openai.AuthenticationError) as refused:
        _generate(gateway, "sk-pixelgate-not-a-key")
    assert refused.value.code == "invalid_api_key"


def test_a_revoked_key_is_refused_with_a_401_that_says_so(gateway: LiveGateway) -> None:
    created = _create(gateway)
    _generate(gateway, created["key"])
    revoked = httpx.delete(f"{gateway.base_url}/admin/keys/{created['id']}", headers=ADMIN, timeout=30)
    assert revoked.status_code == 200
    with pytest.raises(openai.AuthenticationError) as refused:
        _generate(gateway, created["key"])
    assert refused.value.code == "key_revoked"
    assert refused.value.response.headers["x-should-retry"] == "false"


def test_an_expired_key_is_refused_with_a_401_that_says_so(gateway: LiveGateway) -> None:
    expires_at = int(time.time()) + 4  # room for the first request on a loaded machine
    created = _create(gateway, expires_at=expires_at)
    _generate(gateway, created["key"])
    # Expiry is what is under test: the key must outlive its time.
    time.sleep(max(0.0, expires_at + 0.2 - time.time()))
    with pytest.raises(openai.AuthenticationError) as refused:
        _generate(gateway, created["key"])
    assert refused.value.code == "key_expired"


def test_a_keys_own_rpm_is_its_limit(gateway: LiveGateway) -> None:
    created = _create(gateway, rpm=2)
    _generate(gateway, created["key"])
    _generate(gateway, created["key"])
    with pytest.raises(openai.RateLimitError) as limited:
        _generate(gateway, created["key"])
    assert limited.value.response.headers["x-ratelimit-limit-requests"] == "2"


@pytest.mark.parametrize("kind", KINDS)
def test_the_gateway_is_open_only_while_no_key_of_any_kind_exists(tmp_path: Path, kind: str) -> None:
    with database_url(kind, tmp_path, label="pixelgate_open") as url:
        with LiveGateway(make_settings(tmp_path / "a", api_keys=[], database_url=url)) as live:
            _generate(live, "anything")  # no key of any kind: open
        with LiveGateway(make_settings(tmp_path / "b", api_keys=[], admin_key=ADMIN_KEY, database_url=url)) as live:
            # Whoever holds the admin key manages keys: until one is made, nobody gets in.
            assert httpx.get(f"{live.base_url}/v1/models", timeout=30).status_code == 401
            created = _create(live)
            _generate(live, created["key"])
        with LiveGateway(make_settings(tmp_path / "c", api_keys=[], database_url=url)) as live:
            # No configured key and no admin key, but a managed key exists: closed.
            assert httpx.get(f"{live.base_url}/v1/models", timeout=30).status_code == 401
            _generate(live, created["key"])
