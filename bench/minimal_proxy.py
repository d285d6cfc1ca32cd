"""The least a buffering Python proxy does, as a reference for ``make bench``: the floor under pixelgate.

Raw ASGI on uvicorn (uvloop, httptools), the body read whole, sent to the upstream with aiohttp, the
answer read whole (its chunks joined once) and sent back. No authentication, validation, routing,
limits, ledger or check of the image: what is left is moving the bytes through one Python process,
which every buffering gateway in Python pays too. With ``--stream`` the answer is handed on piece by
piece as it arrives instead (the client reads while the proxy still receives): the floor under a
gateway that gives up answering a failure after the answer has started. ``make bench`` reports what
both add beside pixelgate's and LiteLLM's, in the same run.

Usage: ``python -m bench.minimal_proxy PORT UPSTREAM_API_URL [--stream]`` (``UPSTREAM_API_URL`` ends in ``/v1``);
requests go to ``/v1/...`` and are forwarded to the same path below the upstream's root, with the
client's ``Content-Type`` and ``Authorization`` headers.
"""

from __future__ import annotations

import sys

import aiohttp
import uvicorn
from starlette.types import Receive, Scope, Send

FORWARDED = (b"content-type", b"authorization")


class MinimalProxy:
    """An ASGI app forwarding every request under ``/v1`` to ``upstream`` (one aiohttp session); the
    answer read whole, or with ``stream`` handed on as it arrives."""

    def __init__(self, upstream: str, *, stream: bool = False) -> None:
        self._upstream = upstream.rstrip("/")
        self._stream = stream
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        assert scope["type"] == "http"
        if scope["path"] == "/healthz":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok", "more_body": False})
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left
            chunks.append(message["body"])
            if not message["more_body"]:
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"] if k in FORWARDED}
        if self._session is None:
            # Idle connections closed after 4 s, before the fake's uvicorn closes them at 5 s (as
            # pixelgate does): reusing one it is closing fails the request (a 500 here). Between
            # rounds a connection idles while the other targets run, LiteLLM's rounds for over 5 s.
            connector = aiohttp.TCPConnector(keepalive_timeout=4.0)
            self._session = aiohttp.ClientSession(connector=connector)
        url = self._upstream + scope["path"].removeprefix("/v1")
        async with self._session.post(url, data=b"".join(chunks), headers=headers) as answer:
            content_type = answer.headers.get("content-type", "application/json").encode()
            if self._stream:
                await self._hand_on(answer, content_type, send)
                return
            body = b"".join([chunk async for chunk in answer.content.iter_any()])
            status = answer.status
        response_headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    @staticmethod
    async def _hand_on(answer: aiohttp.ClientResponse, content_type: bytes, send: Send) -> None:
        headers = [(b"content-type", content_type)]
        if answer.content_length is not None and "content-encoding" not in answer.headers:  # else decoded here
            headers.append((b"content-length", str(answer.content_length).encode()))
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        while True:
            chunk, _ = await answer.content.readchunk()
            if chunk:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            elif answer.content.at_eof():  # not readchunk's (b"", False): see app/upstream_http.py
                break
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._session is not None:
                    await self._session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def main() -> None:
    port, upstream = int(sys.argv[1]), sys.argv[2]
    uvicorn.run(
        MinimalProxy(upstream, stream="--stream" in sys.argv[3:]),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
