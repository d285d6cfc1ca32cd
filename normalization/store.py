"""Hosted result images: write once under an unguessable name, serve until the TTL, then sweep.

The methods of :class:`DirectoryStore` are synchronous and do plain file-system calls (a write of
a few MB, a stat, an unlink, a directory scan). Async callers run ``put``, ``delete`` and ``sweep``
through ``asyncio.to_thread``; ``get`` is one ``stat`` and is cheap enough either way (the hosted
route still uses ``to_thread`` so a slow disk never stalls the event loop).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import tempfile
import time
from abc import ABC, abstractmethod
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from core.errors import NotFoundError
from core.images import ImageMediaType

_EXTENSIONS: dict[ImageMediaType, str] = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/webp": "webp",
    "image/gif": "gif",
    "image/avif": "avif",
}
_MEDIA_TYPES: dict[str, ImageMediaType] = {ext: media for media, ext in _EXTENSIONS.items()}

# secrets.token_urlsafe(24) is exactly 32 characters of [A-Za-z0-9_-]; nothing else is a name.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{32}\.(png|jpeg|webp|gif|avif)")
_TMP_PREFIX = ".tmp-"
# A temporary file older than this was left by a crashed write, never by one in progress.
_STRAY_TMP_SECONDS = 300


class StoredImage(BaseModel):
    """One hosted image. ``etag`` is a strong validator: a name's content never changes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    media_type: ImageMediaType
    size: int
    etag: str
    expires_at: float


class StoredFile(StoredImage):
    """A hosted image and where its bytes are, for streaming."""

    path: Path


class ImageStore(ABC):
    """Where hosted result images live between the response and the client's download."""

    @abstractmethod
    def put(self, data: bytes, media_type: ImageMediaType) -> StoredImage:
        """Store ``data`` under a new unguessable name; raises ``OSError`` when the disk fails."""

    @abstractmethod
    def get(self, name: str, now: float | None = None) -> StoredFile:
        """The image called ``name`` as of ``now`` (default: the current time).

        Raises :class:`NotFoundError` when the name is invalid, unknown or expired (swept or not).
        """

    @abstractmethod
    def delete(self, name: str) -> None:
        """Remove the image if it exists; an invalid name raises :class:`NotFoundError`."""

    @abstractmethod
    def sweep(self, now: float) -> int:
        """Delete every image expired at ``now`` (and leftovers of failed writes); returns how many images."""


def is_valid_name(name: str) -> bool:
    """True only for names :meth:`ImageStore.put` could have made (no separators, dots, NUL, escapes)."""
    return NAME_PATTERN.fullmatch(name) is not None


class DirectoryStore(ImageStore):
    """Images as files in ``root`` (the app passes ``<data_dir>/images``), created if missing.

    Expiry is the file's creation time plus ``ttl_seconds``. Files are written once to a temporary
    file and renamed into place (atomic: a reader sees the whole image or nothing) and are never
    modified afterwards, so their mtime is their creation time (Linux exposes no birth time to
    Python). Files are created with mode 0600.
    """

    def __init__(self, root: Path, ttl_seconds: int) -> None:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        self._root = root
        self._ttl = ttl_seconds
        root.mkdir(parents=True, exist_ok=True)

    @property
    def root(self) -> Path:
        return self._root

    def put(self, data: bytes, media_type: ImageMediaType) -> StoredImage:
        name = f"{secrets.token_urlsafe(24)}.{_EXTENSIONS[media_type]}"
        fd, tmp_name = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=self._root)
        try:
            with os.fdopen(fd, "wb") as tmp:
                tmp.write(data)
            # No fsync: an image lives an hour at most, and a crash loses the link that points to it.
            os.replace(tmp_name, self._root / name)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
        created = (self._root / name).stat().st_mtime
        return StoredImage(
            name=name, media_type=media_type, size=len(data), etag=_etag(name), expires_at=created + self._ttl
        )

    def get(self, name: str, now: float | None = None) -> StoredFile:
        path = self._path(name)
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise NotFoundError("the image does not exist or has expired", code="image_not_found") from None
        expires_at = stat.st_mtime + self._ttl
        if expires_at <= (time.time() if now is None else now):
            raise NotFoundError("the image does not exist or has expired", code="image_not_found")
        return StoredFile(
            name=name,
            media_type=_MEDIA_TYPES[name.rsplit(".", 1)[1]],
            size=stat.st_size,
            etag=_etag(name),
            expires_at=expires_at,
            path=path,
        )

    def delete(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(name).unlink()

    def sweep(self, now: float) -> int:
        deleted = 0
        with os.scandir(self._root) as entries:
            for entry in entries:
                if not entry.is_file(follow_symlinks=False):
                    continue
                try:
                    mtime = entry.stat(follow_symlinks=False).st_mtime
                    if is_valid_name(entry.name):
                        if mtime + self._ttl <= now:
                            os.unlink(entry.path)
                            deleted += 1
                    elif entry.name.startswith(_TMP_PREFIX) and mtime + _STRAY_TMP_SECONDS <= now:
                        os.unlink(entry.path)
                except FileNotFoundError:
                    continue  # deleted meanwhile by another worker's sweep
        return deleted

    def _path(self, name: str) -> Path:
        if not is_valid_name(name):
            raise NotFoundError("the image does not exist or has expired", code="image_not_found")
        return self._root / name


def _etag(name: str) -> str:
    return '"' + name.rsplit(".", 1)[0] + '"'
