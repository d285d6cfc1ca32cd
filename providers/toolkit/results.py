"""Result references to image bytes: downloads, data URIs and base64, each checked the one way.

Every image an adapter hands back passed :func:`providers.result_check.checked_result` (type by
magic bytes, end marker, header within the pixel cap; no decode). URLs are downloaded only through
the guarded fetch (:mod:`providers.fetch`), from https on a public address or from the provider's
own configured hosts; the byte cap bounds downloads, data URIs and base64 alike.
"""

from __future__ import annotations

import asyncio
import binascii
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import httpx
import pybase64

from core.provider_settings import ProviderSettings
from providers.base import ResultLimits
from providers.fetch import FetchPolicy, decode_data_uri, fetch_image_bytes
from providers.result_check import checked_result
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

    def checked(self, data: bytes) -> bytes:
        """``data`` unchanged when it is a whole image within the pixel cap; ``UpstreamError`` otherwise."""
        return checked_result(data, upstream=self.who, max_pixels=self.max_pixels)

    async def from_reference(self, reference: str) -> bytes:
        """The image a result URL or ``data:`` URI names, downloaded (or decoded) and checked."""
        if reference[:5].lower() == "data:":
            data = decode_data_uri(reference, self.fetch_policy.max_bytes)
        else:
            data = await fetch_image_bytes(self.client, reference, self.fetch_policy)
        return self.checked(data)

    def from_base64(self, text: str) -> bytes:
        """A base64 image (OpenAI's ``b64_json``, Gemini's ``inlineData``), decoded and checked."""
        too_large = bad_response(self.who, f"image (larger than {self.fetch_policy.max_bytes} bytes)")
        # Checked before decoding (within the padding's 3 bytes) so an oversized answer costs no decode.
        if len(text) // 4 * 3 > self.fetch_policy.max_bytes + 3:
            raise too_large
        try:
            # pybase64's validating decode is SIMD: ~0.1 ms for a 1024x1024 PNG where binascii takes ~2.5 ms.
            data = pybase64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise bad_response(self.who, "image (invalid base64)") from exc
        if len(data) > self.fetch_policy.max_bytes:
            raise too_large
        return self.checked(data)


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
