"""Signed links to hosted images: the signature is the credential, so no Authorization is needed.

A link carries the image name, an expiry (unix seconds) and ``HMAC-SHA256(secret, name "\\n"
expires)`` in URL-safe base64 without padding. Anyone holding the link may fetch the image until
``expires``; nobody without the secret can make or extend a link.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path

KEY_FILE = "signing.key"
_SIGNATURE_CHARS = 43  # 32 bytes of HMAC-SHA256 in unpadded base64


class LinkSigner:
    """Signs and checks ``(name, expires)`` pairs with one secret key."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the signing secret must be at least 16 bytes")
        self._secret = secret

    def sign(self, name: str, expires: int) -> str:
        """The signature of ``name`` valid until ``expires`` (unix seconds)."""
        digest = hmac.new(self._secret, f"{name}\n{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def matches(self, name: str, expires: int, sig: str) -> bool:
        """True when ``sig`` was made by :meth:`sign` for exactly this name and expiry (time not checked)."""
        if len(sig) != _SIGNATURE_CHARS:
            return False
        return hmac.compare_digest(self.sign(name, expires).encode("ascii"), sig.encode("utf-8", "replace"))

    def verify(self, name: str, expires: int, sig: str, now: float) -> bool:
        """True when ``sig`` matches and the link has not expired (``now < expires``)."""
        return self.matches(name, expires, sig) and now < expires


def load_or_create_secret(data_dir: Path, configured: str | None) -> bytes:
    """The HMAC key: ``configured`` (``PIXELGATE_SIGNING_SECRET``) when set, else ``<data_dir>/signing.key``.

    The key file is created once, with mode 0600, holding 32 random bytes as 64 hex characters; the
    key is that text's bytes, so copying the file's content into ``PIXELGATE_SIGNING_SECRET`` keeps
    every issued link valid. Creation is atomic (a complete file appears or none does), and when
    several workers start together they all end up with the first one's key.

    Raises ``ValueError`` for an empty or too short key (configured or on disk), ``OSError`` when
    the data dir is not writable.
    """
    if configured is not None:
        secret = configured.strip().encode("utf-8")
        if len(secret) < 16:
            raise ValueError("PIXELGATE_SIGNING_SECRET must be at least 16 characters")
        return secret
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / KEY_FILE
    if not path.exists():
        _create_key_file(path)
    secret = path.read_text(encoding="ascii").strip().encode("ascii")
    if len(secret) < 16:
        raise ValueError(f"{path} holds no usable key; delete it to generate a new one")
    return secret


def _create_key_file(path: Path) -> None:
    tmp = path.with_name(f".{KEY_FILE}.{secrets.token_hex(8)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        # link() fails when another worker got there first; its key then wins.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        os.unlink(tmp)
