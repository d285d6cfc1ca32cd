"""Hosted result images (``response_format=url``): the store, link signing and link minting, together.

- :mod:`normalization.hosting.store`: where the images live (:class:`ImageStore`, the file store);
- :mod:`normalization.hosting.s3`: the S3 store several replicas share;
- :mod:`normalization.hosting.signing`: the HMAC key and :class:`LinkSigner`;
- :mod:`normalization.hosting.links`: :class:`ImageHost` (publish, withdraw, health, sweep) and
  :func:`signed_url`.

The HTTP route that serves the links is ``app/api/hosted.py``.
"""

from normalization.hosting.links import HostedImage, ImageHost, signed_url, sweep_forever
from normalization.hosting.signing import LinkSigner, load_or_create_secret
from normalization.hosting.store import (
    DirectoryStore,
    ImageStore,
    StoredFile,
    StoredImage,
    StoredStream,
    StoreError,
    StoreHealth,
)

__all__ = [
    "DirectoryStore",
    "HostedImage",
    "ImageHost",
    "ImageStore",
    "LinkSigner",
    "StoreError",
    "StoreHealth",
    "StoredFile",
    "StoredImage",
    "StoredStream",
    "load_or_create_secret",
    "signed_url",
    "sweep_forever",
]
