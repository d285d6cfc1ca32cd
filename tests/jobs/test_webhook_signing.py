"""Webhook signatures are Standard Webhooks': the reference verifier accepts ours and refuses a tampered message."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from app.jobs.webhooks import KEY_FILE, WebhookSigner, load_or_create_secret, parse_secret

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


def test_the_reference_verifier_accepts_our_signature() -> None:
    body = b'{"id": "job_0123456789abcdef01234567", "status": "completed"}'
    headers = WebhookSigner(parse_secret(SECRET, "test")).headers("job_0123456789abcdef01234567", body)
    assert Webhook(SECRET).verify(body, headers) == {"id": "job_0123456789abcdef01234567", "status": "completed"}


@pytest.mark.parametrize("part", ["body", "id", "timestamp", "secret"])
def test_a_tampered_message_is_refused(part: str) -> None:
    body = b'{"status": "completed"}'
    headers = WebhookSigner(parse_secret(SECRET, "test")).headers("job_1", body)
    secret = SECRET
    if part == "body":
        body = b'{"status": "failed"}'
    elif part == "id":
        headers["webhook-id"] = "job_2"
    elif part == "timestamp":
        headers["webhook-timestamp"] = str(int(headers["webhook-timestamp"]) - 1)
    else:
        secret = "whsec_" + base64.b64encode(b"x" * 32).decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, headers)


def test_the_secret_is_generated_once_in_the_data_dir(tmp_path: Path) -> None:
    first = load_or_create_secret(tmp_path, None)
    assert load_or_create_secret(tmp_path, None) == first
    text = (tmp_path / KEY_FILE).read_text().strip()
    assert text.startswith("whsec_") and parse_secret(text, "file") == first
    assert stat.S_IMODE(os.stat(tmp_path / KEY_FILE).st_mode) == 0o600
    # What the file holds is what PIXELGATE_WEBHOOK_SECRET takes: replicas given it sign alike.
    assert load_or_create_secret(tmp_path / "elsewhere", text) == first
    assert [p.name for p in tmp_path.iterdir()] == [KEY_FILE]


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("k" * 40, "must start with"),
        ("whsec_%%%", "base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "at least"),
    ],
)
def test_an_unusable_secret_is_refused(secret: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_secret(secret, "PIXELGATE_WEBHOOK_SECRET")


def test_the_signer_does_not_show_its_secret() -> None:
    assert "k" * 8 not in repr(WebhookSigner(b"k" * 32))
