"""Link minting for hosted images: store a result, sign a link to it, sweep what expired, watch health.

:class:`ImageHost` is what ``response_format=url`` uses: :meth:`ImageHost.publish` stores an image
and returns a signed link that expires with the file. The HTTP route that serves such links is in
``app/api/hosted.py``; the store (:mod:`normalization.hosting.store`) and the signer
(:mod:`normalization.hosting.signing`) are injected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from urllib.parse import quote, urlencode

from pydantic import BaseModel, ConfigDict

from core.errors import ImageStoreUnavailableError
from core.images import ImageMediaType
from normalization.hosting.signing import LinkSigner
from normalization.hosting.store import ImageStore, StoreHealth, describe_os_error

log = logging.getLogger("pixelgate.hosting")

SWEEP_INTERVAL_SECONDS = 60.0
HEALTH_TTL_SECONDS = 5.0
"""How long a health answer is reused: /readyz polled every second costs one probe write per 5 s."""


class HostedImage(BaseModel):
    """A stored image and its signed link."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    url: str


def signed_url(base_url: str, name: str, expires: int, signer: LinkSigner) -> str:
    """The public link to hosted image ``name``, valid until ``expires`` (unix seconds).

    ``base_url`` is ``PIXELGATE_PUBLIC_URL`` or the request's own base URL, without ``/v1``.
    """
    query = urlencode({"expires": expires, "sig": signer.sign(name, expires)})
    return f"{base_url.rstrip('/')}/v1/images/{quote(name, safe='')}?{query}"


async def sweep_forever(store: ImageStore, interval_seconds: float) -> None:
    """Delete expired images every ``interval_seconds`` until cancelled (start it in the lifespan).

    A failing sweep (disk error) is logged and retried at the next interval, never fatal.
    """
    while True:
        try:
            deleted = await store.sweep(time.time())
        except OSError:
            log.exception("sweeping expired images failed")
        else:
            if deleted:
                log.info("swept %d expired images", deleted)
        await asyncio.sleep(interval_seconds)


class ImageHost:
    """Stores result images and mints their links; owns the periodic sweep; reports the store's health.

    Health is the store's own probe, reused for ``health_ttl`` seconds, and "not writable" for as
    long after a :meth:`publish` that failed: a store that refuses large files (a quota, a file
    size limit) may still take the probe's few bytes.
    """

    def __init__(
        self,
        store: ImageStore,
        signer: LinkSigner,
        *,
        sweep_interval: float = SWEEP_INTERVAL_SECONDS,
        health_ttl: float = HEALTH_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.signer = signer
        self.sweep_interval = sweep_interval
        self._health_ttl = health_ttl
        self._clock = clock
        self._health: tuple[float, StoreHealth] | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def publish(self, data: bytes, media_type: ImageMediaType, base_url: str) -> HostedImage:
        """Store ``data`` and return its link. Raises :class:`ImageStoreUnavailableError` (503) when
        the store cannot write; the failure is logged with its cause."""
        try:
            stored = await self.store.put(data, media_type)
        except OSError as exc:
            log.error("the image store could not save a result: %s", exc)
            problem = describe_os_error(exc)
            self._health = (self._clock(), StoreHealth(writable=False, problem=problem))
            raise ImageStoreUnavailableError(f"the image store cannot save results: {problem}") from exc
        url = signed_url(base_url, stored.name, int(stored.expires_at), self.signer)
        return HostedImage(name=stored.name, url=url)

    async def withdraw(self, names: list[str]) -> None:
        """Delete images published for an answer that is not sent after all (best effort)."""
        for name in names:
            try:
                await self.store.delete(name)
            except OSError:
                log.warning("could not delete an unused hosted image; the sweep will")

    async def health(self) -> StoreHealth:
        """The store's health, probed at most once per ``health_ttl`` seconds."""
        now = self._clock()
        if self._health is not None and now - self._health[0] < self._health_ttl:
            return self._health[1]
        health = await self.store.health()
        self._health = (self._clock(), health)
        return health

    async def open(self) -> None:
        """Open the store's connection (an S3 client); once, in the app's lifespan."""
        await self.store.open()

    def start_sweeping(self, interval: float | None = None) -> None:
        self._sweeper = asyncio.create_task(sweep_forever(self.store, interval or self.sweep_interval))

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await self.store.aclose()
