"""``response_format=url``: results stored in the image store behind signed, expiring links.

:class:`StoreHost` is the pipeline's :class:`~normalization.pipeline.ImageHost`: it stores an image
and mints a link that expires with the file. The route serving the links and the periodic sweep live
in :mod:`app.api.hosted`; this module wires them to the settings.
"""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter

from app.api.hosted import hosted_images_router, signed_url, sweep_forever
from app.settings import Settings
from normalization.imaging import EncodedImage
from normalization.signing import LinkSigner, load_or_create_secret
from normalization.store import DirectoryStore, ImageStore

SWEEP_INTERVAL_SECONDS = 60.0


class StoreHost:
    """Stores result images and mints their links; owns the periodic sweep task."""

    def __init__(self, store: ImageStore, signer: LinkSigner, sweep_interval: float = SWEEP_INTERVAL_SECONDS) -> None:
        self.store = store
        self.signer = signer
        self.sweep_interval = sweep_interval
        self._sweeper: asyncio.Task[None] | None = None

    async def publish(self, image: EncodedImage, base_url: str) -> str:
        stored = await asyncio.to_thread(self.store.put, image.data, image.media_type)
        return signed_url(base_url, stored.name, int(stored.expires_at), self.signer)

    def router(self) -> APIRouter:
        return hosted_images_router(self.store, self.signer)

    def start_sweeping(self, interval: float | None = None) -> None:
        self._sweeper = asyncio.create_task(sweep_forever(self.store, interval or self.sweep_interval))

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper


def build_host(settings: Settings) -> StoreHost:
    """The store under ``<data_dir>/images`` and the signer (configured or generated secret)."""
    secret = settings.signing_secret.get_secret_value() if settings.signing_secret else None
    signer = LinkSigner(load_or_create_secret(settings.data_dir, secret))
    store = DirectoryStore(settings.data_dir / "images", settings.image_ttl_seconds)
    return StoreHost(store, signer, settings.sweep_interval_seconds)
