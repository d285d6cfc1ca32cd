"""A request body as a fixed list of byte chunks, for bodies whose large parts should not be joined."""

from __future__ import annotations

from collections.abc import AsyncIterator


class ChunkedBody:
    """A request body as a fixed list of byte chunks: async-iterable any number of times (retries).

    Give httpx its ``Content-Length`` header explicitly (``len(body)``), or it sends chunked.
    """

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.length = sum(len(chunk) for chunk in chunks)

    def __len__(self) -> int:
        return self.length

    def __bytes__(self) -> bytes:
        return b"".join(self.chunks)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
