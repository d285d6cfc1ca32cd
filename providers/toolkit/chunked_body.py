"""A request body as a fixed list of byte chunks, for bodies whose large parts should not be joined."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import cast


class ChunkedBody:
    """A request body as a fixed list of byte chunks: async-iterable any number of times (retries).

    Give httpx its ``Content-Length`` header explicitly (``len(body)``), or it sends chunked.
    """

    def __init__(self, chunks: list[bytes | memoryview]) -> None:
        self.chunks = chunks
        self.length = sum(len(chunk) for chunk in chunks)
        self._released = False

    def release(self) -> None:
        """Drop the chunks once the body is sent for good: the HTTP client's request objects may
        outlive the send (httpx's request and response refer to each other until the garbage
        collector runs), and an edit's body is megabytes. Iterating afterwards raises."""
        self.chunks = []
        self._released = True

    def __len__(self) -> int:
        return self.length

    def __bytes__(self) -> bytes:
        return b"".join(self.chunks)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._released:
            raise RuntimeError("this request body was released after it was sent")
        for chunk in self.chunks:
            # A memoryview piece (an input image as it arrived) goes to the socket as it is: both
            # transports write any bytes-like object; httpx's annotation only says bytes.
            yield cast(bytes, chunk)
