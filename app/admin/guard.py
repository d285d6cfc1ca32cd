"""Who may use ``/admin/*``: the bearer of ``PIXELGATE_ADMIN_KEY``; nobody when it is unset.

Unset, every admin route answers the same 404 as a route that does not exist, so a gateway without
an admin key does not even reveal that an admin API is there. The key is compared in constant time.
"""

from __future__ import annotations

import hmac

from fastapi import Request
from pydantic import SecretStr

from app.auth import presented_key
from core.errors import AuthenticationError, NotFoundError


class AdminGuard:
    """A FastAPI dependency for the admin routes."""

    def __init__(self, admin_key: SecretStr | None) -> None:
        self._key = None if admin_key is None else admin_key.get_secret_value().encode()

    @property
    def enabled(self) -> bool:
        return self._key is not None

    async def __call__(self, request: Request) -> None:
        if self._key is None:
            raise NotFoundError("Not Found")
        presented = presented_key(request.headers.get("authorization", ""))
        if presented is None:
            raise AuthenticationError(
                "The admin API needs the admin key: send 'Authorization: Bearer <PIXELGATE_ADMIN_KEY>'.",
                code="missing_api_key",
            )
        if not hmac.compare_digest(presented.encode(), self._key):
            raise AuthenticationError("Incorrect admin key provided.")
