"""``GET /v1/images/{name}?expires=…&sig=…``: hosted result images behind signed, expiring links.

No Authorization: the signature is the credential. Answers, in this order of checks:
403 ``invalid_signature`` when ``expires`` or ``sig`` is missing or malformed or the signature does
not match (name and expiry are both signed, so neither can be altered); 403 ``link_expired`` for a
genuine link past its expiry; 404 ``image_not_found`` when the image is gone (swept, deleted, or
past the store's TTL); 503 ``image_store_read_failed`` (retryable: no upstream work is repeated) when
the store cannot be read now; 304 when ``If-None-Match`` names its ETag; else 200, streamed from disk
or from the S3 bucket (never a redirect to the bucket: it need not be reachable by clients, and the
playground's same-origin policy would refuse it).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from core.errors import PermissionDeniedError, ServiceUnavailableError
from normalization.hosting import ImageStore, LinkSigner, StoredFile, StoredImage

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
        try:
            found = await store.get(name, now)
        except OSError as exc:
            raise ServiceUnavailableError(
                "the image store cannot be read right now; retry shortly",
                code="image_store_read_failed",
                headers={"retry-after": "1"},
            ) from exc
        image: StoredImage = found if isinstance(found, StoredFile) else found.image
        max_age = max(0, math.floor(min(expiry, image.expires_at) - now))
        headers = {
            "ETag": image.etag,
            "Cache-Control": f"private, max-age={max_age}",
            "X-Content-Type-Options": "nosniff",
        }
        not_modified = _etag_matches(request.headers.get("if-none-match"), image.etag)
        if isinstance(found, StoredFile):
            if not_modified:
                return Response(status_code=304, headers=headers)
            return FileResponse(found.path, media_type=image.media_type, headers=headers)
        if not_modified:
            await found.aclose()
            return Response(status_code=304, headers=headers)
        headers["Content-Length"] = str(image.size)
        # The background task closes the stream also when the client leaves before its end.
        return StreamingResponse(
            found.chunks, media_type=image.media_type, headers=headers, background=BackgroundTask(found.aclose)
        )

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
