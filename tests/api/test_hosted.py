"""The hosted-image route in a tiny app: signatures, expiry, ETag/304, Cache-Control, traversal, sweeping."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from app.api.hosted import hosted_images_router
from core.errors import GatewayError
from normalization.hosting.links import signed_url, sweep_forever
from normalization.hosting.signing import LinkSigner
from normalization.hosting.store import DirectoryStore, StoredImage

TTL = 3600
NOW = float(int(time.time()))
PNG = b"\x89PNG\r\n\x1a\n" + b"pretend pixels" * 100


@dataclass
class Hosted:
    app: FastAPI
    store: DirectoryStore
    signer: LinkSigner
    image: StoredImage

    def link(self, name: str | None = None, expires: int | None = None) -> str:
        name = name or self.image.name
        return signed_url("http://gw", name, int(NOW) + 100 if expires is None else expires, self.signer)

    def get(self, url: str, headers: dict[str, str] | None = None) -> httpx.Response:
        async def fetch() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                return await client.get(url, headers=headers)

        return asyncio.run(fetch())


@pytest.fixture
def hosted(tmp_path: Path) -> Iterator[Hosted]:
    store = DirectoryStore(tmp_path / "images", ttl_seconds=TTL)
    signer = LinkSigner(b"k" * 32)
    app = FastAPI()

    async def render(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, GatewayError)
        return JSONResponse(exc.to_body(), status_code=exc.status_code, headers=exc.headers)

    app.add_exception_handler(GatewayError, render)
    app.include_router(hosted_images_router(store, signer, clock=lambda: NOW))
    image = asyncio.run(store.put(PNG, "image/png"))
    yield Hosted(app, store, signer, image)


def error_code(response: httpx.Response) -> str:
    body = response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    code = body["error"]["code"]
    assert isinstance(code, str)
    return code


def test_signed_link_serves_the_file(hosted: Hosted) -> None:
    url = hosted.link()
    assert url.startswith(f"http://gw/v1/images/{hosted.image.name}?expires=")
    response = hosted.get(url)
    assert response.status_code == 200
    assert response.content == PNG
    assert response.headers["content-type"] == "image/png"
    assert response.headers["cache-control"] == "private, max-age=100"
    assert response.headers["etag"] == hosted.image.etag
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "authorization" not in response.request.headers


def test_max_age_never_outlives_the_stored_file(hosted: Hosted) -> None:
    response = hosted.get(hosted.link(expires=int(NOW) + 10 * TTL))
    max_age = int(response.headers["cache-control"].split("max-age=")[1])
    # The route's clock is frozen at NOW (set at import); the file was written later, at real time.
    elapsed = time.time() - NOW
    assert TTL - 120 <= max_age <= TTL + elapsed + 1


@pytest.mark.parametrize(
    "if_none_match",
    ["{etag}", "W/{etag}", '"other", {etag}', "*"],
)
def test_if_none_match_gives_304(hosted: Hosted, if_none_match: str) -> None:
    response = hosted.get(hosted.link(), headers={"If-None-Match": if_none_match.format(etag=hosted.image.etag)})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == hosted.image.etag
    assert response.headers["cache-control"] == "private, max-age=100"


def test_other_etag_gives_the_file(hosted: Hosted) -> None:
    response = hosted.get(hosted.link(), headers={"If-None-Match": '"something-else"'})
    assert response.status_code == 200 and response.content == PNG


def tamper(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    query.update(changes)
    return parts.path + "?" + "&".join(f"{key}={value}" for key, value in query.items())


def test_tampered_links_are_403_invalid_signature(hosted: Hosted) -> None:
    url = hosted.link()
    sig = parse_qs(urlsplit(url).query)["sig"][0]
    expires = int(NOW) + 100
    forged = [
        tamper(url, expires=str(expires + 3600)),
        tamper(url, sig=sig[:-1] + ("A" if sig[-1] != "A" else "B")),
        url.replace(hosted.image.name, "B" * 32 + ".png").removeprefix("http://gw"),
        f"/v1/images/{hosted.image.name}",
        f"/v1/images/{hosted.image.name}?expires={expires}",
        f"/v1/images/{hosted.image.name}?sig={sig}",
        tamper(url, expires="-5"),
        tamper(url, expires="1e9"),
        tamper(url, expires=""),
        tamper(url, expires="9" * 5000),
    ]
    for path in forged:
        response = hosted.get(path)
        assert response.status_code == 403, path
        assert error_code(response) == "invalid_signature"
        assert response.json()["error"]["type"] == "invalid_request_error"
        assert PNG not in response.content


def test_expired_genuine_link_is_403_link_expired(hosted: Hosted) -> None:
    for expires in (int(NOW), int(NOW) - 1, 1000):
        response = hosted.get(hosted.link(expires=expires))
        assert response.status_code == 403
        assert error_code(response) == "link_expired"


def test_gone_image_is_404(hosted: Hosted) -> None:
    asyncio.run(hosted.store.delete(hosted.image.name))
    response = hosted.get(hosted.link())
    assert response.status_code == 404
    assert error_code(response) == "image_not_found"


def test_image_past_the_store_ttl_is_404_even_before_the_sweep(hosted: Hosted) -> None:
    path = hosted.store.root / hosted.image.name
    os.utime(path, (NOW - TTL - 1, NOW - TTL - 1))
    assert path.exists()
    response = hosted.get(hosted.link())
    assert response.status_code == 404


@pytest.mark.parametrize(
    "name",
    ["..%2fsigning.key", "signing.key", "%2e%2e%2fimages", "..", "%00", "a" * 32 + ".png%00", ".tmp-x"],
)
def test_traversal_names_never_reach_the_filesystem(hosted: Hosted, name: str) -> None:
    secret_file = hosted.store.root.parent / "signing.key"
    secret_file.write_bytes(b"top secret key material")
    (hosted.store.root / ".tmp-x").write_bytes(b"partial upload")
    # even a correctly signed link (as if the secret leaked) to a crafted name gets nothing
    expires = int(NOW) + 100
    sig = hosted.signer.sign(unquote(name), expires)
    response = hosted.get(f"/v1/images/{name}?expires={expires}&sig={sig}")
    assert response.status_code == 404
    assert b"secret" not in response.content and b"partial" not in response.content


def test_signed_url_round_trips_and_escapes() -> None:
    signer = LinkSigner(b"k" * 32)
    url = signed_url("https://img.example.com/base/", "A" * 32 + ".webp", 1234, signer)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "https",
        "img.example.com",
        f"/base/v1/images/{'A' * 32}.webp",
    )
    query = parse_qs(parts.query)
    assert signer.verify("A" * 32 + ".webp", int(query["expires"][0]), query["sig"][0], now=1233)


def test_sweep_forever_deletes_expired_images_until_cancelled(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path, ttl_seconds=TTL)
    old = asyncio.run(store.put(b"old", "image/png"))
    fresh = asyncio.run(store.put(b"fresh", "image/png"))
    past = time.time() - TTL - 1
    os.utime(tmp_path / old.name, (past, past))

    async def run() -> None:
        task = asyncio.create_task(sweep_forever(store, interval_seconds=0.01))
        for _ in range(200):
            if not (tmp_path / old.name).exists():
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    assert sorted(p.name for p in tmp_path.iterdir()) == [fresh.name]
