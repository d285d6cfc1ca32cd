"""``response_format=url`` wiring: the image host (store, signer, sweep) built from the settings.

The store is chosen by ``PIXELGATE_STORE_URL``'s scheme from :data:`STORES`: ``file:///path`` (the
default, ``file://<data_dir>/images``) or ``s3://bucket/prefix`` (endpoint and credentials from the
standard ``AWS_*`` variables, :class:`app.settings.S3Settings`). A store with a connection opens it
when the lifespan starts (:meth:`ImageHost.open`). The store, the signer and link minting are
:mod:`normalization.hosting`; the route serving the links is :mod:`app.api.hosted`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlsplit

from fastapi import APIRouter

from app.api.hosted import hosted_images_router
from app.settings import Settings
from core.errors import ConfigError
from normalization.hosting import DirectoryStore, ImageHost, ImageStore, LinkSigner, load_or_create_secret
from normalization.hosting.s3 import S3Connection, S3Location, S3Store


def _file_store(url: str, settings: Settings) -> ImageStore:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
        raise ValueError("must look like file:///absolute/path")
    return DirectoryStore(Path(unquote(parts.path)), settings.image_ttl_seconds)


def _s3_store(url: str, settings: Settings) -> ImageStore:
    s3 = settings.s3
    connection = S3Connection(
        endpoint_url=s3.endpoint_url,
        access_key_id=s3.access_key_id.get_secret_value() if s3.access_key_id else None,
        secret_access_key=s3.secret_access_key.get_secret_value() if s3.secret_access_key else None,
        region=s3.region,
    )
    return S3Store(S3Location.parse(url), connection, settings.image_ttl_seconds)


STORES: dict[str, Callable[[str, Settings], ImageStore]] = {"file": _file_store, "s3": _s3_store}
"""URL scheme -> the store it names."""


def build_store(settings: Settings) -> ImageStore:
    """The store ``PIXELGATE_STORE_URL`` names; unset, files under ``<data_dir>/images``.

    Raises :class:`ConfigError` (one line) for an unknown scheme or a malformed URL. No I/O for S3:
    its client is made by ``open()`` in the lifespan.
    """
    url = settings.store_url
    if url is None:
        return DirectoryStore(settings.data_dir / "images", settings.image_ttl_seconds)
    scheme = url.partition("://")[0]
    make = STORES.get(scheme)
    if make is None:
        raise ConfigError(
            f"invalid configuration: store_url (PIXELGATE_STORE_URL): unknown scheme '{scheme}' (known: file, s3)"
        )
    try:
        return make(url, settings)
    except ValueError as exc:
        raise ConfigError(f"invalid configuration: store_url (PIXELGATE_STORE_URL) {exc}") from None


def build_host(settings: Settings) -> ImageHost:
    """The configured store and the signer (configured or generated secret).

    A shared store (S3) needs ``PIXELGATE_SIGNING_SECRET``: a key generated in each replica's own
    data dir would make its links invalid on every other replica, which serves the same images.
    """
    store = build_store(settings)
    secret = settings.signing_secret.get_secret_value() if settings.signing_secret else None
    if isinstance(store, S3Store) and secret is None:
        raise ConfigError(
            "invalid configuration: store_url (PIXELGATE_STORE_URL) is a shared S3 store: set "
            "PIXELGATE_SIGNING_SECRET too, the same on every replica, so that any of them can serve any link"
        )
    signer = LinkSigner(load_or_create_secret(settings.data_dir, secret))
    return ImageHost(store, signer, sweep_interval=settings.sweep_interval_seconds)


def hosted_router(host: ImageHost) -> APIRouter:
    """The route serving ``host``'s links."""
    return hosted_images_router(host.store, host.signer)
