"""``response_format=url`` wiring: the image host (store, signer, sweep) built from the settings.

The store, the signer and link minting are :mod:`normalization.hosting`; the route serving the links
is :mod:`app.api.hosted`.
"""

from __future__ import annotations

from fastapi import APIRouter

from app.api.hosted import hosted_images_router
from app.settings import Settings
from normalization.hosting import DirectoryStore, ImageHost, LinkSigner, load_or_create_secret


def build_host(settings: Settings) -> ImageHost:
    """The file store under ``<data_dir>/images`` and the signer (configured or generated secret)."""
    secret = settings.signing_secret.get_secret_value() if settings.signing_secret else None
    signer = LinkSigner(load_or_create_secret(settings.data_dir, secret))
    store = DirectoryStore(settings.data_dir / "images", settings.image_ttl_seconds)
    return ImageHost(store, signer, sweep_interval=settings.sweep_interval_seconds)


def hosted_router(host: ImageHost) -> APIRouter:
    """The route serving ``host``'s links."""
    return hosted_images_router(host.store, host.signer)
