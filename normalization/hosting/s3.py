"""Hosted images in an S3-compatible bucket (``PIXELGATE_STORE_URL=s3://bucket/prefix``), shared by replicas.

Every replica behind one load balancer reads and writes the same bucket, so a link minted by one is
served by any other (they share ``PIXELGATE_SIGNING_SECRET`` too). An image is one object,
``<prefix><name>``, written whole by one ``PutObject`` before its link is handed out: once the
client has its 200, the image is in the bucket (S3 acknowledges a write only once it is stored).

Expiry: each object carries its expiry (unix seconds) in the user metadata ``pixelgate-expires``;
:meth:`S3Store.get` refuses an expired object whether or not it was deleted yet, and
:meth:`S3Store.sweep` deletes the expired ones (by ``LastModified`` plus the TTL, from one listing,
without a request per object). A bucket lifecycle rule on the prefix (one day, S3's smallest unit)
is the backstop for objects no replica sweeps.

Failures of the S3 service (unreachable, refused, throttled) become :class:`StoreError`, an
``OSError`` whose text names the S3 error code at most: never the endpoint, bucket or credentials.
The client (aiobotocore, over aiohttp) is created once by :meth:`S3Store.open` in the app's
lifespan and closed by :meth:`S3Store.aclose`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from botocore.exceptions import BotoCoreError, ClientError

from core.errors import NotFoundError
from core.images import ImageMediaType
from normalization.hosting.store import (
    ImageStore,
    StoredImage,
    StoredStream,
    StoreError,
    StoreHealth,
    etag_for,
    is_valid_name,
    media_type_of,
    new_name,
)

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

log = logging.getLogger("pixelgate.hosting")

EXPIRES_METADATA = "pixelgate-expires"
PROBE_KEY = ".pixelgate-probe"
"""The object /readyz writes and deletes: one fixed key, so a replica that dies in between leaves
nothing that accumulates (a later probe overwrites and deletes it)."""
CHUNK_BYTES = 256 * 1024
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys


@dataclass(frozen=True)
class S3Location:
    """Where images go: a bucket and a key prefix (empty, or ending with ``/``)."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> S3Location:
        """``s3://bucket`` or ``s3://bucket/some/prefix``. Raises ``ValueError`` for anything else."""
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
            raise ValueError("must look like s3://bucket/prefix")
        prefix = parts.path.strip("/")
        return cls(bucket=parts.netloc, prefix=f"{prefix}/" if prefix else "")

    def key(self, name: str) -> str:
        return self.prefix + name


@dataclass(frozen=True)
class S3Connection:
    """How to reach the S3 service. Keys unset: the client's own credential chain (a pod's web
    identity, an instance role). An ``endpoint_url`` (an S3-compatible server) gets path-style
    addressing, which such servers expect (``http://host:port/bucket/key``)."""

    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    region: str = "us-east-1"
    connect_timeout_seconds: float = 5.0
    read_timeout_seconds: float = 30.0
    max_attempts: int = 3


class S3Store(ImageStore):
    """:class:`ImageStore` over one S3 bucket and prefix; see the module docstring."""

    def __init__(
        self,
        location: S3Location,
        connection: S3Connection,
        ttl_seconds: int,
        *,
        session: AioSession | None = None,
    ) -> None:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        self.location = location
        self._connection = connection
        self._ttl = ttl_seconds
        self._session = session or get_session()
        self._stack = contextlib.AsyncExitStack()
        self._s3: S3Client | None = None

    async def open(self) -> None:
        conn = self._connection
        config = AioConfig(
            connect_timeout=conn.connect_timeout_seconds,
            read_timeout=conn.read_timeout_seconds,
            retries={"max_attempts": conn.max_attempts, "mode": "standard"},
            s3={"addressing_style": "path"} if conn.endpoint_url else None,
        )
        self._s3 = await self._stack.enter_async_context(
            self._session.create_client(
                "s3",
                endpoint_url=conn.endpoint_url,
                aws_access_key_id=conn.access_key_id,
                aws_secret_access_key=conn.secret_access_key,
                region_name=conn.region,
                config=config,
            )
        )

    async def aclose(self) -> None:
        self._s3 = None
        await self._stack.aclose()

    @property
    def _client(self) -> S3Client:
        if self._s3 is None:
            raise RuntimeError("S3Store.open() was not called (the app's lifespan opens the store)")
        return self._s3

    async def put(self, data: bytes, media_type: ImageMediaType) -> StoredImage:
        name = new_name(media_type)
        expires_at = time.time() + self._ttl
        with _failures("write"):
            await self._client.put_object(
                Bucket=self.location.bucket,
                Key=self.location.key(name),
                Body=data,
                ContentType=media_type,
                Metadata={EXPIRES_METADATA: repr(expires_at)},
            )
        return StoredImage(name=name, media_type=media_type, size=len(data), etag=etag_for(name), expires_at=expires_at)

    async def get(self, name: str, now: float | None = None) -> StoredStream:
        if not is_valid_name(name):
            raise _gone()
        try:
            answer = await self._client.get_object(Bucket=self.location.bucket, Key=self.location.key(name))
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND_CODES:
                raise _gone() from None
            raise _store_error("read", exc) from exc
        except BotoCoreError as exc:
            raise _store_error("read", exc) from exc
        body = answer["Body"]
        expires_at = self._expiry(answer["Metadata"].get(EXPIRES_METADATA), answer["LastModified"])
        if expires_at <= (time.time() if now is None else now):
            await body.aclose()
            raise _gone()
        image = StoredImage(
            name=name,
            media_type=media_type_of(name),
            size=answer["ContentLength"],
            etag=etag_for(name),
            expires_at=expires_at,
        )

        async def chunks() -> AsyncIterator[bytes]:
            try:
                with _failures("read"):
                    async for chunk in body.iter_chunks(CHUNK_BYTES):
                        yield chunk
            finally:
                await body.aclose()

        return StoredStream(image=image, chunks=chunks(), aclose=body.aclose)

    async def delete(self, name: str) -> None:
        if not is_valid_name(name):
            raise _gone()
        with _failures("delete"):
            await self._client.delete_object(Bucket=self.location.bucket, Key=self.location.key(name))

    async def sweep(self, now: float) -> int:
        """Delete the images whose ``LastModified`` plus the TTL has passed; other keys under the
        prefix (another application's, the probe) are left alone."""
        expired: list[str] = []
        with _failures("list"):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.location.bucket, Prefix=self.location.prefix
            )
            async for page in pages:
                for item in page.get("Contents", []):
                    key = item.get("Key", "")
                    name = key[len(self.location.prefix) :]
                    modified = item.get("LastModified")
                    if is_valid_name(name) and modified is not None and modified.timestamp() + self._ttl <= now:
                        expired.append(key)
        for start in range(0, len(expired), _DELETE_BATCH):
            batch = expired[start : start + _DELETE_BATCH]
            with _failures("delete"):
                await self._client.delete_objects(
                    Bucket=self.location.bucket,
                    Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
                )
        return len(expired)

    async def health(self) -> StoreHealth:
        """Write and delete :data:`PROBE_KEY`: read-only credentials or a missing bucket show here."""
        key = self.location.key(PROBE_KEY)
        try:
            with _failures("write"):
                await self._client.put_object(Bucket=self.location.bucket, Key=key, Body=b"ok")
                await self._client.delete_object(Bucket=self.location.bucket, Key=key)
        except StoreError as exc:
            return StoreHealth(writable=False, problem=str(exc))
        return StoreHealth(writable=True)

    def _expiry(self, recorded: str | None, modified: datetime) -> float:
        if recorded is not None:
            with contextlib.suppress(ValueError):
                return float(recorded)
        return modified.timestamp() + self._ttl  # written by something else: the sweep's rule


def _gone() -> NotFoundError:
    return NotFoundError("the image does not exist or has expired", code="image_not_found")


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _store_error(action: str, exc: Exception) -> StoreError:
    """The failure in words a client may read: the S3 error code, never the endpoint or bucket."""
    log.warning("the S3 image store failed to %s: %s", action, exc)
    if isinstance(exc, ClientError):
        return StoreError(f"the object store refused to {action} ({_code(exc) or 'error'})")
    return StoreError(f"the object store could not be reached to {action}")


@contextlib.contextmanager
def _failures(action: str) -> Iterator[None]:
    try:
        yield
    except (BotoCoreError, ClientError) as exc:
        raise _store_error(action, exc) from exc
