"""Managed keys' secrets: how they are made, how they are stored, what may be shown.

A secret is 256 random bits (``sk-pixelgate-`` and 43 URL-safe characters); the database keeps
only its SHA-256. For a random token of that size a fast hash is the right one: nobody can guess
a preimage, so a slow password hash (bcrypt, scrypt) would only cost CPU on every request. The
first characters stay visible as the key's ``prefix`` so people can tell their keys apart.
"""

from __future__ import annotations

import hashlib
import re
import secrets

SECRET_PREFIX = "sk-pixelgate-"
RANDOM_BYTES = 32
SHOWN_RANDOM_CHARS = 4
"""Random characters kept in the display prefix: 4 of 43, so 234 bits stay secret."""


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(RANDOM_BYTES)


KEY_ID = re.compile(r"key_[0-9a-f]{16}")


def new_key_id() -> str:
    return "key_" + secrets.token_hex(8)


def is_key_id(text: str) -> bool:
    return KEY_ID.fullmatch(text) is not None


def secret_hash(secret: str) -> str:
    """The stored form of a presented or new secret: SHA-256, hex."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def display_prefix(secret: str) -> str:
    return secret[: len(SECRET_PREFIX) + SHOWN_RANDOM_CHARS]
