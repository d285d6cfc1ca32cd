"""A finished job's answer: stored without its image bytes, rendered as the synchronous call's body on read.

A job runs with its images inlined (whatever ``response_format`` the client asked for), and its
answer is stored in two parts: the body without the images (JSON) and the image bytes (packed).
Reading it renders the body a synchronous call would have returned:

- ``b64_json``: the images inlined again;
- ``url``: the images published to the image store (:mod:`normalization.hosting`) behind signed links.
  The hosted copies are kept with the job and linked to again while they have at least half of
  ``PIXELGATE_IMAGE_TTL_SECONDS`` left; after that the images are published anew. Links are made on
  each read for the reader's base URL (``PIXELGATE_PUBLIC_URL`` when set), so any replica answers
  with links to itself.
  So a result stays retrievable for the job's whole retention (``PIXELGATE_JOB_TTL_SECONDS``, longer
  than any link), every link handed out works for at least half the link lifetime, and the store
  holds a job's images only while someone reads them.

When the store cannot take the images, reading a ``url`` result is a 503 ``image_store_unavailable``
(the result is kept; read it again later), or the images inline with a warning when the request
carried ``x-pixelgate-url-fallback: b64_json``.
"""

from __future__ import annotations

import time
from typing import Any

import pybase64
from pydantic import JsonValue

from app.jobs.models import JobRow, ResultLinks
from app.jobs.store import JobStore
from core.errors import GatewayError, ImageStoreUnavailableError
from core.images import format_for_extension
from normalization.hosting import ImageHost, signed_url
from normalization.response import ImagesResponse


def split_result(response: ImagesResponse) -> tuple[dict[str, Any], list[bytes]]:
    """An answer made with inline images as (the body without them, the image bytes in order)."""
    body = response.model_dump(mode="json", exclude={"data"})
    body["data"] = [image.model_dump(mode="json", exclude_none=True) for image in response.data]
    images: list[bytes] = []
    for image in response.data:
        if image.image is None:  # the runner asks for inline images; a link here is a wiring bug
            raise GatewayError("an async job's answer lacks its image bytes")
        images.append(image.image.data)
    return body, images


class JobResults:
    """Renders finished jobs' answers (see the module docstring)."""

    def __init__(self, store: JobStore, host: ImageHost, *, link_ttl_seconds: int, public_url: str | None) -> None:
        self._store = store
        self._host = host
        self._link_ttl = link_ttl_seconds
        self._public_url = public_url

    async def render(self, row: JobRow, base_url: str | None = None) -> dict[str, JsonValue] | None:
        """The answer of a completed job as the synchronous call would have returned it; None otherwise.

        Links point at ``base_url`` (the reader's own; ``PIXELGATE_PUBLIC_URL`` wins when set, and the
        submitting request's base URL is the fallback, for webhooks).
        """
        if row.status != "completed" or row.result is None:
            return None
        body: dict[str, Any] = dict(row.result)
        data = [dict(item) for item in body.get("data", [])]
        if row.request.response_format == "url":
            try:
                links = await self._links(row)
            except ImageStoreUnavailableError as exc:
                if not row.request.url_fallback:
                    raise
                await self._inline(row, data)
                metadata = dict(body.get("metadata") or {})
                warning = f"the image store could not take the images ({exc.message}): they are inline (b64_json)"
                metadata["warnings"] = [*metadata.get("warnings", []), warning]
                body["metadata"] = metadata
            else:
                base = self._public_url or base_url or row.request.base_url
                for item, name in zip(data, links.names, strict=True):
                    item["url"] = signed_url(base, name, links.expires, self._host.signer)
        else:
            await self._inline(row, data)
        body["data"] = data
        return body

    async def _inline(self, row: JobRow, data: list[dict[str, Any]]) -> None:
        images = await self._images(row)
        for item, image in zip(data, images, strict=True):
            item["b64_json"] = pybase64.b64encode(image).decode("ascii")

    async def _images(self, row: JobRow) -> list[bytes]:
        images = await self._store.result_images(row.id)
        if images is None:
            raise GatewayError(f"job {row.id} is completed but its images are missing")
        return images

    async def _links(self, row: JobRow) -> ResultLinks:
        """The hosted copies to link to: the stored ones while they have half the link lifetime left, else new."""
        now = time.time()
        links = row.result_links
        if links is not None and links.expires - now >= self._link_ttl / 2:
            return links
        fmt = format_for_extension(str((row.result or {}).get("output_format", "png")))
        if fmt is None:
            raise GatewayError(f"job {row.id} has a result in a format this gateway does not host")
        names: list[str] = []
        try:
            for image in await self._images(row):
                # The base URL is irrelevant here: links are made per read, from the names.
                names.append((await self._host.publish(image, fmt.media_type, "")).name)
        except BaseException:
            await self._host.withdraw(names)
            raise
        # A copy expires its store's TTL after it was written, so after this moment: links signed
        # until now + TTL never outlive it.
        fresh = ResultLinks(names=tuple(names), expires=int(now) + self._link_ttl)
        await self._store.save_links(row.id, fresh)
        return fresh
