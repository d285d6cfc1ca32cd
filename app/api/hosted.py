"""``GET /v1/images/{name}?expires=…&sig=…``: hosted result images behind signed, expiring links.

No Authorization: the signature is the credential. Answers, in this order of checks:
403 ``invalid_signature`` when ``expires`` or ``sig`` is missing or malformed or the signature does
not match (name and expiry are both signed, so neither can be altered); 403 ``link_expired`` for a
genuine link past its expiry; 404 ``image_not_found`` when the image is gone (swept, deleted, or
past the store's TTL); 304 when ``If-None-Match`` names its ETag; else 200, streamed from disk.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Callable
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from core.errors import PermissionDeniedError
from normalization.signing import LinkSigner
from normalization.store import ImageStore

log = logging.getLogger("pixelgate.hosted")

_EXPIRES = re.compile(r"[0-9]{1,12}")


def hosted_images_router(store: ImageStore, signer: LinkSigner, *, clock: Callable[[], float] = time.time) -> APIRouter:
    """The hosted-image route over ``store``, checking links with ``signer``; ``clock`` is for tests."""
    router = APIRouter()

    @router.get("/v1/images/{name}", response_model=None, include_in_schema=False)
    async def get_hosted_image(
        name: str, request: Request, expires: str | None = None, sig: str | None = None
    ) -> Response:
        if expires is None or sig is None or _EXPIRES.fullmatch(expires) is None:
            raise PermissionDeniedError("this image link is missing or has a malformed signature")
        expiry = int(expires)
        if not signer.matches(name, expiry, sig):
            raise PermissionDeniedError("this image link's signature is invalid")
        now = clock()
        if now >= expiry:
            raise PermissionDeniedError("this image link has expired", code="link_expired")
        stored = await asyncio.to_thread(store.get, name, now)
        max_age = max(0, math.floor(min(expiry, stored.expires_at) - now))
        headers = {
            "ETag": stored.etag,
            "Cache-Control": f"private, max-age={max_age}",
            "X-Content-Type-Options": "nosniff",
        }
        if _etag_matches(request.headers.get("if-none-match"), stored.etag):
            return Response(status_code=304, headers=headers)
        return FileResponse(stored.path, media_type=stored.media_type, headers=headers)

    return router


def _etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 weak comparison of an ``If-None-Match`` list (or ``*``) against our ETag."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        tag = candidate.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


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
            deleted = await asyncio.to_thread(store.sweep, time.time())
        except OSError:
            log.exception("sweeping expired images failed")
        else:
            if deleted:
                log.info("swept %d expired images", deleted)
        await asyncio.sleep(interval_seconds)
