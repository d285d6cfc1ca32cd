"""Bearer-key authentication for the API routes.

Keys come from ``PIXELGATE_API_KEYS`` or the YAML ``api_keys``. The presented key is compared with
every configured key in constant time (no early exit), so timing tells nothing about which prefix
matched. With no keys configured the API is open (``serve`` then refuses non-loopback hosts).
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from fastapi import Request

from core.errors import AuthenticationError


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
        if self.accepts(header):
            return
        if not presented_key(header):
            raise AuthenticationError(
                "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.",
                code="missing_api_key",
            )
        raise AuthenticationError("Incorrect API key provided.")

    def accepts(self, authorization: str) -> bool:
        """Whether an ``Authorization`` header value carries one of the keys (always, with none configured)."""
        if not self._keys:
            return True
        presented = presented_key(authorization)
        if presented is None:
            return False
        candidate = presented.encode()
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(candidate, key)
        return matched


def presented_key(authorization: str) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header value, or None when there is none."""
    scheme, _, presented = authorization.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return None
    return presented.strip()
