"""Where hosted result images live: a small interface and its directory backend.

Names are random and unguessable (a signed link is the only way to one), validated by a strict
pattern before any filesystem call, so no name reaches outside the store. Files expire ``ttl``
seconds after they are written; :meth:`DirectoryStore.sweep` deletes them. Calls are blocking file
I/O: run them in a thread.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from abc import ABC, abstractmethod
from pathlib import Path

from pydantic import BaseModel, ConfigDict

EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif", "image/avif": "avif"}
MEDIA_TYPES = {ext: media for media, ext in EXTENSIONS.items()}
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{32}\.(png|jpg|webp|gif|avif)$")


class StoredImage(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    media_type: str
    size: int
    created: float
    path: Path


class ImageStore(ABC):
    """Puts and finds hosted images by name."""

    @abstractmethod
    def put(self, data: bytes, media_type: str) -> StoredImage: ...

    @abstractmethod
    def get(self, name: str) -> StoredImage | None:
        """The image, or None when the name is malformed, unknown or expired."""

    @abstractmethod
    def sweep(self, now: float) -> int:
        """Delete expired images; returns how many."""


class DirectoryStore(ImageStore):
    def __init__(self, root: Path, ttl_seconds: int) -> None:
        self.root = root
        self.ttl = ttl_seconds
        root.mkdir(parents=True, exist_ok=True)

    def put(self, data: bytes, media_type: str) -> StoredImage:
        name = f"{secrets.token_urlsafe(24)}.{EXTENSIONS[media_type]}"
        path = self.root / name
        tmp = self.root / f".{name}.tmp"
        with open(tmp, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
        return StoredImage(name=name, media_type=media_type, size=len(data), created=time.time(), path=path)

    def get(self, name: str) -> StoredImage | None:
        if not NAME_PATTERN.match(name):
            return None
        path = self.root / name
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        if stat.st_mtime + self.ttl <= time.time():
            return None
        return StoredImage(
            name=name,
            media_type=MEDIA_TYPES[name.rsplit(".", 1)[1]],
            size=stat.st_size,
            created=stat.st_mtime,
            path=path,
        )

    def sweep(self, now: float) -> int:
        deleted = 0
        for entry in os.scandir(self.root):
            try:
                expired = entry.stat().st_mtime + self.ttl <= now
                stray_tmp = entry.name.endswith(".tmp") and entry.stat().st_mtime + 300 <= now
                if expired or stray_tmp:
                    os.remove(entry.path)
                    deleted += 1
            except FileNotFoundError:
                continue
        return deleted
