"""``response_format=url``: results stored in the image store behind signed, expiring links.

:class:`StoreHost` is the pipeline's :class:`~normalization.pipeline.ImageHost`; the route
``GET /v1/images/{name}?expires=…&sig=…`` serves what it stored, with no Authorization (the
signature is the credential): 403 once expired or tampered, the stored Content-Type, an ETag, and
``Cache-Control`` until expiry. A background task sweeps expired files.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from app.errors import NotFoundError, PermissionDeniedError
from app.settings import Settings
from normalization.imaging import EncodedImage
from normalization.signing import LinkSigner, load_or_create_secret
from normalization.store import DirectoryStore, ImageStore

log = logging.getLogger("pixelgate.hosting")

SWEEP_INTERVAL_SECONDS = 60.0


class StoreHost:
    """Stores result images and mints their links; owns the periodic sweep."""

    def __init__(self, store: ImageStore, signer: LinkSigner, ttl_seconds: int) -> None:
        self.store = store
        self.signer = signer
        self.ttl = ttl_seconds
        self._sweeper: asyncio.Task[None] | None = None

    async def publish(self, image: EncodedImage, base_url: str) -> str:
        stored = await asyncio.to_thread(self.store.put, image.data, image.media_type)
        expires = int(time.time()) + self.ttl
        query = urlencode({"expires": expires, "sig": self.signer.sign(stored.name, expires)})
        return f"{base_url.rstrip('/')}/v1/images/{stored.name}?{query}"

    def start_sweeping(self, interval: float = SWEEP_INTERVAL_SECONDS) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever(interval))

    async def _sweep_forever(self, interval: float) -> None:
        while True:
            try:
                deleted = await asyncio.to_thread(self.store.sweep, time.time())
                if deleted:
                    log.info("swept %d expired images", deleted)
            except OSError:
                log.exception("image sweep failed")
            await asyncio.sleep(interval)

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper


def build_host(settings: Settings) -> StoreHost:
    secret = settings.signing_secret.get_secret_value() if settings.signing_secret else None
    signer = LinkSigner(load_or_create_secret(settings.data_dir, secret))
    return StoreHost(
        DirectoryStore(settings.data_dir / "images", settings.image_ttl_seconds), signer, settings.image_ttl_seconds
    )


def hosted_images_router() -> APIRouter:
    router = APIRouter()

    @router.get("/v1/images/{name}", response_model=None)
    async def get_image(name: str, request: Request, expires: str = "", sig: str = "") -> Response:
        host: StoreHost = request.app.state.host
        if not expires.isdigit() or not sig:
            raise PermissionDeniedError("this image link is missing its signature", code="invalid_signature")
        expiry = int(expires)
        now = time.time()
        if not host.signer.verify(name, expiry, sig):
            raise PermissionDeniedError("this image link's signature is invalid", code="invalid_signature")
        if now >= expiry:
            raise PermissionDeniedError("this image link has expired", code="link_expired")
        stored = await asyncio.to_thread(host.store.get, name)
        if stored is None:
            raise NotFoundError("this image no longer exists", code="image_not_found")
        etag = f'"{stored.name.split(".")[0][:16]}-{stored.size}"'
        headers = {"Cache-Control": f"private, max-age={max(0, expiry - int(now))}", "ETag": etag}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return FileResponse(stored.path, media_type=stored.media_type, headers=headers)

    return router
