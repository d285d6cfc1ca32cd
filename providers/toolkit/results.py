"""Result references to checked images: downloads, data URIs and base64, each checked the one way.

Every image an adapter hands back passed :mod:`providers.result_check` (type by magic bytes, end
marker, header within the pixel cap; no decode) and is an :class:`~core.image_payload.ImagePayload`
in the form it came in: downloads as bytes, base64 (and base64 ``data:`` URIs) as their text. URLs
are downloaded only through the guarded fetch (:mod:`providers.fetch`), from https on a public
address or from the provider's own configured hosts; the byte cap bounds downloads, data URIs and
base64 alike.
"""

from __future__ import annotations

import asyncio
import binascii
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import httpx

from core.image_payload import Base64Text, ImagePayload, base64_ends, base64_size
from core.images import COMPLETION_TAIL_BYTES, HEADER_PREFIX_BYTES
from core.provider_settings import ProviderSettings
from providers.base import ResultLimits
from providers.fetch import FetchPolicy, data_uri_base64, decode_data_uri, fetch_image_bytes
from providers.result_check import checked_ends, checked_result
from providers.toolkit.failures import bad_response
from providers.toolkit.hosts import host_entry

T = TypeVar("T")


@dataclass(frozen=True)
class ResultReader:
    """One provider's way from result references to checked bytes. ``who`` names it in errors."""

    client: httpx.AsyncClient
    fetch_policy: FetchPolicy
    max_pixels: int
    who: str

    @classmethod
    def for_provider(
        cls,
        client: httpx.AsyncClient,
        settings: ProviderSettings,
        limits: ResultLimits,
        *,
        own_urls: Iterable[str],
        who: str,
    ) -> ResultReader:
        """A reader allowed to download from the hosts of ``own_urls`` and ``settings.fetch_hosts``.

        Downloads get the provider's timeouts and the app's result caps.
        """
        return cls(
            client=client,
            fetch_policy=FetchPolicy(
                allowed_hosts=frozenset({*(host_entry(url) for url in own_urls), *settings.fetch_hosts}),
                max_bytes=limits.max_bytes,
                timeout_seconds=settings.read_timeout_seconds,
                connect_timeout_seconds=settings.connect_timeout_seconds,
            ),
            max_pixels=limits.max_pixels,
            who=who,
        )

    def checked(self, data: bytes) -> ImagePayload:
        """``data`` with its header when it is a whole image within the pixel cap; ``UpstreamError`` otherwise."""
        return checked_result(data, upstream=self.who, max_pixels=self.max_pixels)

    async def from_reference(self, reference: str) -> ImagePayload:
        """The image a result URL or ``data:`` URI names, downloaded (or decoded) and checked.

        A base64 ``data:`` URI (fal's ``sync_mode``) keeps its text: see :meth:`from_base64`.
        """
        if reference[:5].lower() == "data:":
            text = data_uri_base64(reference, self.fetch_policy.max_bytes)
            if text is not None:
                return self.from_base64(text)
            return self.checked(decode_data_uri(reference, self.fetch_policy.max_bytes))
        return self.checked(await fetch_image_bytes(self.client, reference, self.fetch_policy))

    def from_base64(self, text: str | Base64Text) -> ImagePayload:
        """A base64 image (OpenAI's ``b64_json``, Gemini's ``inlineData``, a ``data:`` URI), checked, kept as text.

        Only the text's ends are decoded (its header and its end marker, see
        :func:`core.image_payload.base64_ends`); the whole is decoded only when its header lies beyond
        :data:`~core.images.HEADER_PREFIX_BYTES` or only Pillow reads it (AVIF). Raises
        ``upstream_bad_response`` for text that is not padded base64 at its ends, too large, or not a
        whole image within the pixel cap.
        """
        try:
            encoded = text.encode("ascii") if isinstance(text, str) else text
            if base64_size(encoded) > self.fetch_policy.max_bytes:
                raise bad_response(self.who, f"image (larger than {self.fetch_policy.max_bytes} bytes)")
            head, tail = base64_ends(encoded, HEADER_PREFIX_BYTES, COMPLETION_TAIL_BYTES)
        except (UnicodeEncodeError, binascii.Error, ValueError) as exc:
            raise bad_response(self.who, "image (invalid base64)") from exc
        size = base64_size(encoded)
        header = checked_ends(
            head, tail, size, complete=len(head) >= size, upstream=self.who, max_pixels=self.max_pixels
        )
        if header is None:
            whole = ImagePayload(b64=encoded).data
            header = self.checked(whole).header
        return ImagePayload(b64=encoded, header=header)


async def all_or_first_failure(jobs: Sequence[Awaitable[T]]) -> list[T]:
    """The results of ``jobs`` run concurrently, in order; the first failure cancels the rest and is raised."""

    async def run(job: Awaitable[T]) -> T:
        return await job

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(run(job)) for job in jobs]
    except ExceptionGroup as failed:
        # The first failure speaks for the call; TaskGroup has cancelled the others.
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]
