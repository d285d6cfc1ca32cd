"""Bearer-key authentication for the API routes.

Keys come from ``PIXELGATE_API_KEYS`` or the YAML ``api_keys``. The presented key is compared with
every configured key in constant time (no early exit), so timing tells nothing about which prefix
matched. With no keys configured the API is open (``serve`` then refuses non-loopback hosts).
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from fastapi import Request

from app.errors import AuthenticationError


class KeyCheck:
    """A FastAPI dependency: raises 401 unless the request carries one of ``keys``."""

    def __init__(self, keys: Sequence[str]) -> None:
        self._keys = [key.encode() for key in keys]

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    async def __call__(self, request: Request) -> None:
        if not self._keys:
            return
        header = request.headers.get("authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise AuthenticationError(
                "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.",
                code="missing_api_key",
            )
        candidate = presented.strip().encode()
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(candidate, key)
        if not matched:
            raise AuthenticationError("Incorrect API key provided.")
