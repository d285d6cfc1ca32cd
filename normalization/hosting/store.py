"""Hosted result images: write once under an unguessable name, serve until the TTL, then sweep.

:class:`ImageStore` is the interface (put, get, delete, sweep, health), async so that a store
over the network (:class:`normalization.hosting.s3.S3Store`, a bucket every replica shares) fits it
as well as :class:`DirectoryStore`, the default, which keeps files under ``<data_dir>/images`` and
runs its file-system calls in a thread so a slow disk never stalls the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import secrets
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from core.errors import NotFoundError
from core.images import IMAGE_FORMATS, ImageMediaType, format_for_extension, format_of

# secrets.token_urlsafe(24) is exactly 32 characters of [A-Za-z0-9_-]; nothing else is a name.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{32}\.(" + "|".join(fmt.extension for fmt in IMAGE_FORMATS) + ")")
_TMP_PREFIX = ".tmp-"
# A temporary file older than this was left by a crashed write, never by one in progress.
_STRAY_TMP_SECONDS = 300
# A probe the size of a small image's first disk block: a full disk refuses it as it would an image.
_PROBE = b"\0" * 4096


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


@dataclass(frozen=True)
class StoredStream:
    """A hosted image whose bytes come over the network: iterate :attr:`chunks` once, or call
    :attr:`aclose` to let them go unread (a 304). Iterating to the end closes the stream too."""

    image: StoredImage
    chunks: AsyncIterator[bytes]
    aclose: Callable[[], Awaitable[None]]


class StoreError(OSError):
    """A store failure whose text is safe to show a client (no endpoint, bucket or credential)."""


class StoreHealth(BaseModel):
    """Whether the store can take a new image now; ``problem`` says why not (no path, no secret)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    writable: bool
    problem: str | None = None


class ImageStore(ABC):
    """Where hosted result images live between the response and the client's download.

    A store that needs a connection opens it in :meth:`open` (called once by the app's lifespan)
    and closes it in :meth:`aclose`.
    """

    async def open(self) -> None:  # noqa: B027 - a hook: most stores have nothing to open
        """Make the store usable (connect); called once before the first other call."""

    async def aclose(self) -> None:  # noqa: B027 - a hook: most stores have nothing to close
        """Release what :meth:`open` made."""

    @abstractmethod
    async def put(self, data: bytes, media_type: ImageMediaType) -> StoredImage:
        """Store ``data`` under a new unguessable name. Raises ``OSError`` when the write fails
        (disk full, read-only, file too large, unreachable); nothing is left behind then."""

    @abstractmethod
    async def get(self, name: str, now: float | None = None) -> StoredFile | StoredStream:
        """The image called ``name`` as of ``now`` (default: the current time): a local file, or a
        stream the caller must consume or close.

        Raises :class:`NotFoundError` when the name is invalid, unknown or expired (swept or not),
        ``OSError`` when the store cannot be read now.
        """

    @abstractmethod
    async def delete(self, name: str) -> None:
        """Remove the image if it exists; an invalid name raises :class:`NotFoundError`."""

    @abstractmethod
    async def sweep(self, now: float) -> int:
        """Delete every image expired at ``now`` (and leftovers of failed writes); returns how many images."""

    @abstractmethod
    async def health(self) -> StoreHealth:
        """Try a small write and remove it: whether :meth:`put` can succeed now. Never raises."""


def is_valid_name(name: str) -> bool:
    """True only for names :meth:`ImageStore.put` could have made (no separators, dots, NUL, escapes)."""
    return NAME_PATTERN.fullmatch(name) is not None


def new_name(media_type: ImageMediaType) -> str:
    """A fresh unguessable name for an image of ``media_type`` (192 random bits, then the extension)."""
    return f"{secrets.token_urlsafe(24)}.{format_of(media_type).extension}"


def media_type_of(name: str) -> ImageMediaType:
    """The media type a valid name's extension stands for."""
    fmt = format_for_extension(name.rsplit(".", 1)[1])
    assert fmt is not None  # the name matched NAME_PATTERN, built from the same table
    return fmt.media_type


def describe_os_error(exc: OSError) -> str:
    """A store failure in words a client may read: the errno's meaning, never the path."""
    if isinstance(exc, StoreError):
        return str(exc)
    if exc.errno is None:
        return "the store could not write"
    return os.strerror(exc.errno).lower() + f" ({errno.errorcode.get(exc.errno, exc.errno)})"


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

    async def put(self, data: bytes, media_type: ImageMediaType) -> StoredImage:
        return await asyncio.to_thread(self._put, data, media_type)

    async def get(self, name: str, now: float | None = None) -> StoredFile:
        return await asyncio.to_thread(self._get, name, now)

    async def delete(self, name: str) -> None:
        await asyncio.to_thread(self._delete, name)

    async def sweep(self, now: float) -> int:
        return await asyncio.to_thread(self._sweep, now)

    async def health(self) -> StoreHealth:
        return await asyncio.to_thread(self._health)

    def _put(self, data: bytes, media_type: ImageMediaType) -> StoredImage:
        name = new_name(media_type)
        self._write(name, data)
        created = (self._root / name).stat().st_mtime
        return StoredImage(
            name=name, media_type=media_type, size=len(data), etag=etag_for(name), expires_at=created + self._ttl
        )

    def _write(self, name: str, data: bytes) -> None:
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

    def _get(self, name: str, now: float | None) -> StoredFile:
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
            media_type=media_type_of(name),
            size=stat.st_size,
            etag=etag_for(name),
            expires_at=expires_at,
            path=path,
        )

    def _delete(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(name).unlink()

    def _sweep(self, now: float) -> int:
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

    def _health(self) -> StoreHealth:
        # Written like an image (temporary file, then removed), so a full disk, a read-only mount or
        # a missing directory shows here as it would in put; the temporary prefix keeps the sweep's
        # hands off it should the process die in between.
        try:
            fd, tmp_name = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=self._root)
            try:
                with os.fdopen(fd, "wb") as tmp:
                    tmp.write(_PROBE)
            finally:
                os.unlink(tmp_name)
        except OSError as exc:
            return StoreHealth(writable=False, problem=describe_os_error(exc))
        return StoreHealth(writable=True)

    def _path(self, name: str) -> Path:
        if not is_valid_name(name):
            raise NotFoundError("the image does not exist or has expired", code="image_not_found")
        return self._root / name


def etag_for(name: str) -> str:
    """The strong ETag of the image called ``name``: its random part (a name's content never changes)."""
    return '"' + name.rsplit(".", 1)[0] + '"'
