"""Webhooks of finished jobs, signed per Standard Webhooks and sent through the outbound guard.

Signing (https://www.standardwebhooks.com): the secret is ``whsec_`` and base64 of random bytes; each
message carries ``webhook-id`` (the job id: the same on every retry, so a receiver can drop
duplicates), ``webhook-timestamp`` (Unix seconds of this attempt) and ``webhook-signature``:
``v1,`` and the base64 HMAC-SHA256, keyed with the secret's bytes, of ``{id}.{timestamp}.{body}``.
The ``standardwebhooks`` package (any language's) verifies it; the tests check ours with it.

The secret is ``PIXELGATE_WEBHOOK_SECRET`` when set, else generated once into ``<data_dir>/webhook.key``
(mode 0600), as the link-signing key is. It is never logged.

Sending: one POST per attempt through :func:`providers.fetch.post_guarded`, so a webhook URL must pass
the rules every outbound request of the gateway passes (https to a public address, or a host in
``PIXELGATE_FETCH_ALLOW_HOSTS``), checked again at each attempt. A 2xx answer is a delivery; anything
else (another status, a refused or unreachable URL, a timeout) is retried on the schedule of
``PIXELGATE_WEBHOOK_RETRY_SECONDS``, then given up. The runner (:mod:`app.jobs.runner`) records each
attempt in the job's row.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

import httpx

from providers.fetch import FetchPolicy, post_guarded

SECRET_PREFIX = "whsec_"
KEY_FILE = "webhook.key"
MIN_SECRET_BYTES = 24
TIMEOUT_SECONDS = 10.0
"""One attempt, connect to answer; a receiver should answer at once and work afterwards."""
USER_AGENT = "pixelgate-webhooks"


def parse_secret(text: str, where: str) -> bytes:
    """The key bytes of a ``whsec_…`` secret. Raises ``ValueError`` naming ``where`` when it is not one."""
    text = text.strip()
    if not text.startswith(SECRET_PREFIX):
        raise ValueError(f"{where} must start with '{SECRET_PREFIX}' (a Standard Webhooks secret)")
    try:
        key = base64.b64decode(text[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{where}: the part after '{SECRET_PREFIX}' must be base64") from None
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(f"{where} must hold at least {MIN_SECRET_BYTES} bytes of key")
    return key


def load_or_create_secret(data_dir: Path, configured: str | None) -> bytes:
    """The webhook key: ``configured`` (``PIXELGATE_WEBHOOK_SECRET``) or ``<data_dir>/webhook.key``.

    The file is created once, atomically (several processes starting together all end up with the
    first one's secret), mode 0600, holding a ``whsec_`` secret of 32 random bytes: copying its content
    into ``PIXELGATE_WEBHOOK_SECRET`` of other replicas makes them sign alike. Raises ``ValueError``
    for an unusable secret, ``OSError`` when the data dir is not writable.
    """
    if configured is not None:
        return parse_secret(configured, "PIXELGATE_WEBHOOK_SECRET")
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / KEY_FILE
    if not path.exists():
        _create_key_file(path)
    return parse_secret(path.read_text(encoding="ascii"), str(path))


def _create_key_file(path: Path) -> None:
    tmp = path.with_name(f".{KEY_FILE}.{secrets.token_hex(8)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii") + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another process got there first: its secret wins
            os.link(tmp, path)
    finally:
        os.unlink(tmp)


class WebhookSigner:
    """Signs webhook messages with one key (see the module docstring)."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def __repr__(self) -> str:
        return "WebhookSigner(<secret>)"

    def signature(self, message_id: str, timestamp: int, body: bytes) -> str:
        signed = f"{message_id}.{timestamp}.".encode() + body
        digest = hmac.new(self._key, signed, hashlib.sha256).digest()
        return "v1," + base64.b64encode(digest).decode("ascii")

    def headers(self, message_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        """The Standard Webhooks headers of ``body`` sent now (or at ``timestamp``)."""
        at = int(time.time()) if timestamp is None else timestamp
        return {
            "webhook-id": message_id,
            "webhook-timestamp": str(at),
            "webhook-signature": self.signature(message_id, at, body),
        }


class WebhookSender:
    """POSTs signed messages to webhook URLs through the outbound guard."""

    def __init__(self, client: httpx.AsyncClient, signer: WebhookSigner, allowed_hosts: frozenset[str]) -> None:
        self._client = client
        self._signer = signer
        self.policy = FetchPolicy(allowed_hosts=allowed_hosts, max_bytes=64 * 1024, timeout_seconds=TIMEOUT_SECONDS)

    async def send(self, url: str, message_id: str, body: bytes) -> int:
        """One attempt; the receiver's HTTP status. Raises :class:`core.errors.UpstreamError` when the URL is refused
        or unreachable, or the receiver does not answer in time."""
        headers = {
            **self._signer.headers(message_id, body),
            "content-type": "application/json",
            "user-agent": USER_AGENT,
        }
        return await post_guarded(self._client, url, self.policy, content=body, headers=headers)


def delivered(status: int) -> bool:
    return 200 <= status < 300
