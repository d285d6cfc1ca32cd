"""Interim image hosting (replaced when the store and signed links land)."""

from __future__ import annotations

from app.errors import ServiceUnavailableError
from app.settings import Settings
from normalization.imaging import EncodedImage


class _NoHost:
    async def publish(self, image: EncodedImage, base_url: str) -> str:
        raise ServiceUnavailableError("response_format=url is not available yet; use b64_json")


async def build_host(settings: Settings) -> _NoHost:
    return _NoHost()


async def close_host(host: _NoHost) -> None:
    return None
