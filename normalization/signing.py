"""Signed, expiring links to hosted images: HMAC-SHA256 over (name, expiry).

The signature is the credential (no Authorization on ``GET /v1/images/{name}``), so it is
verified in constant time, and the secret is either configured or generated once per data dir.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path


class LinkSigner:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the signing secret must be at least 16 bytes")
        self._secret = secret

    def sign(self, name: str, expires: int) -> str:
        mac = hmac.new(self._secret, f"{name}\n{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")

    def verify(self, name: str, expires: int, signature: str) -> bool:
        """True when ``signature`` is ours for (name, expires); the caller checks the expiry itself."""
        expected = self.sign(name, expires)
        return hmac.compare_digest(expected.encode(), signature.encode("ascii", "replace"))


def load_or_create_secret(data_dir: Path, configured: str | None) -> bytes:
    """The configured secret, else one generated once and kept in ``<data_dir>/signing.key`` (0600)."""
    if configured:
        return configured.encode()
    path = data_dir / "signing.key"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(32)
    # O_EXCL: two workers starting together must not both write; the loser reads the winner's key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    with os.fdopen(fd, "wb") as handle:
        handle.write(secret)
    return secret
