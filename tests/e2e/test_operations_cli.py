"""The operations commands as a user runs them: ``pixelgate migrate|keys|usage``, and the ledger at SIGTERM.

The commands read the same settings as ``pixelgate serve`` (environment or ``--config``) and work on
its database, SQLite or PostgreSQL. ``pixelgate serve`` stopped with SIGTERM writes every ledger
row it still holds before it exits.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from app.db import async_url, head_revision
from app.db.schema import usage_ledger
from tests.conftest import TEST_KEY, make_settings
from tests.databases import KINDS, database_url
from tests.live import LiveGateway, free_port
from tests.polling import wait_until

PIXELGATE = Path(sys.executable).parent / "pixelgate"
ADMIN_KEY = "cli-admin-key"


@pytest.fixture(params=KINDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with database_url(request.param, tmp_path / "db", label="pixelgate_cli") as url:
        yield url


def pixelgate(*args: str, env: dict[str, str], cwd: Path, expect: int = 0) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(PIXELGATE), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == expect, result.stderr
    return result


def clean_env(**values: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("PIXELGATE_")}
    return {**env, **values}


def ledger_rows(db_url: str) -> int:
    async def count() -> int:
        engine = create_async_engine(async_url(db_url, Path()))
        try:
            async with engine.connect() as connection:
                return int((await connection.execute(select(func.count()).select_from(usage_ledger))).scalar_one())
        finally:
            await engine.dispose()

    return asyncio.run(count())


def test_keys_made_on_the_command_line_are_the_gateways_keys(tmp_path: Path, db_url: str) -> None:
    config = tmp_path / "pixelgate.yaml"
    config.write_text(yaml.safe_dump({"database_url": db_url, "data_dir": str(tmp_path / "data")}))
    env = clean_env()

    migrated = pixelgate("migrate", "--config", str(config), env=env, cwd=tmp_path)
    assert f"at revision {head_revision()}" in migrated.stdout
    assert "@" not in migrated.stdout or "postgres@" in migrated.stdout  # the URL, no password to hide here

    made = pixelgate(
        "keys",
        "create",
        "--name",
        "team-cli",
        "--budget-usd",
        "2.5",
        "--models",
        "sandbox-edit, sandbox-generate",
        "--rpm",
        "30",
        "--expires-at",
        "2031-01-01T00:00:00Z",
        "--config",
        str(config),
        env=env,
        cwd=tmp_path,
    )
    record = json.loads(made.stdout)
    assert record["key"].startswith("sk-pixelgate-") and "not shown again" in made.stderr
    assert (record["budget_usd"], record["models"], record["rpm"]) == (2.5, ["sandbox-edit", "sandbox-generate"], 30)
    assert record["expires_at"] == 1924992000

    listed = pixelgate("keys", "list", "--config", str(config), env=env, cwd=tmp_path).stdout
    header, line = listed.splitlines()
    assert header.split()[:5] == ["ID", "NAME", "PREFIX", "CREATED", "STATUS"]
    assert line.split()[:3] == [record["id"], "team-cli", record["prefix"]] and " active " in line
    assert record["key"] not in listed

    # The same database through the admin API of a gateway with these settings.
    settings = make_settings(tmp_path / "data", database_url=db_url, admin_key=ADMIN_KEY)
    with LiveGateway(settings) as live:
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        served = httpx.get(f"{live.base_url}/admin/keys/{record['id']}", headers=headers, timeout=10).json()
        assert served == {key: value for key, value in record.items() if key != "key"}

        revoked = pixelgate("keys", "revoke", record["id"], "--config", str(config), env=env, cwd=tmp_path)
        assert revoked.stdout.strip() == f"revoked {record['id']} (team-cli)"
        assert httpx.get(f"{live.base_url}/admin/keys/{record['id']}", headers=headers, timeout=10).json()["revoked"]

    as_json = json.loads(pixelgate("keys", "list", "--json", "--config", str(config), env=env, cwd=tmp_path).stdout)
    assert [(item["id"], item["revoked"]) for item in as_json["data"]] == [(record["id"], True)]


def test_bad_options_are_refused_with_the_option_named(tmp_path: Path) -> None:
    env = clean_env(PIXELGATE_DATA_DIR=str(tmp_path))
    refused = pixelgate("keys", "create", "--name", "x", "--budget-usd", "-3", env=env, cwd=tmp_path, expect=2)
    assert "--budget-usd" in refused.stderr
    unknown = pixelgate("keys", "revoke", "key_nope", env=env, cwd=tmp_path, expect=1)
    assert "no key with id 'key_nope'" in unknown.stderr
    refused = pixelgate("keys", "create", "--name", "x", "--expires-at", "2001-01-01", env=env, cwd=tmp_path, expect=2)
    assert "--expires-at" in refused.stderr and "past" in refused.stderr
    broken = pixelgate("migrate", env=clean_env(PIXELGATE_DATABASE_URL="mysql://x@y/z"), cwd=tmp_path, expect=2)
    assert "PIXELGATE_DATABASE_URL" in broken.stderr and "unknown scheme 'mysql'" in broken.stderr
    away = pixelgate(
        "keys",
        "list",
        env=clean_env(PIXELGATE_DATABASE_URL=f"postgresql://postgres:hunter2@127.0.0.1:{free_port()}/nothing"),
        cwd=tmp_path,
        expect=1,
    )
    assert "cannot open the database postgresql+asyncpg://postgres:***@127.0.0.1" in away.stderr
    assert "hunter2" not in away.stderr


def test_sigterm_writes_every_ledger_row_still_held(tmp_path: Path, db_url: str) -> None:
    """The ledger's timer is ten minutes and its batch 10,000 rows: only the shutdown writes them."""
    port = free_port()
    env = clean_env(
        PIXELGATE_API_KEYS=TEST_KEY,
        PIXELGATE_DATA_DIR=str(tmp_path / "data"),
        PIXELGATE_DATABASE_URL=db_url,
        PIXELGATE_LEDGER_FLUSH_MS="600000",
        PIXELGATE_LEDGER_FLUSH_ROWS="10000",
    )
    served = subprocess.Popen(
        [str(PIXELGATE), "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return served.poll() is None and False

        wait_until(up, "pixelgate serve answers", timeout=30)
        headers = {"Authorization": f"Bearer {TEST_KEY}"}
        body = {"model": "sandbox-generate", "prompt": "x", "size": "16x16", "response_format": "b64_json"}
        statuses = [
            httpx.post(f"{base}/v1/images/generations", json=body, headers=headers).status_code for _ in range(5)
        ]
        statuses.append(httpx.post(f"{base}/v1/images/generations", json=body).status_code)
        assert statuses == [200] * 5 + [401]
        assert ledger_rows(db_url) == 0, "rows were written before the shutdown; the test would prove nothing"
        served.send_signal(signal.SIGTERM)
        served.wait(timeout=30)
    finally:
        if served.poll() is None:
            served.kill()
        output = served.communicate()[0]
    # uvicorn ends by raising the signal it handled again, as a process killed by it would.
    assert served.returncode in (0, -signal.SIGTERM) and "Application shutdown complete" in output, output
    assert ledger_rows(db_url) == 6

    by_model = json.loads(pixelgate("usage", "--group-by", "model", "--json", env=env, cwd=tmp_path).stdout)
    assert by_model["group_by"] == "model"
    assert [(row["model"], row["requests"], row["errors"], row["images"]) for row in by_model["data"]] == [
        ("sandbox-generate", 5, 0, 5),
        (None, 1, 1, 0),
    ]
    table = pixelgate("usage", "--start", "2001-01-01", env=env, cwd=tmp_path).stdout.splitlines()
    assert table[0].split() == ["DAY", "REQUESTS", "ERRORS", "IMAGES", "MEGAPIXELS", "COST_USD"]
    assert table[1].split()[:4] == [datetime.now(UTC).date().isoformat(), "6", "1", "5"]
