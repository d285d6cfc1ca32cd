"""The adapters' shared toolkit in process: result reading, failure helpers, host entries."""

from __future__ import annotations

import asyncio
import base64

import httpx
import pytest
from pydantic import BaseModel

from core.errors import UpstreamError, UpstreamTimeoutError
from core.provider_settings import ProviderSettings
from providers.base import ResultLimits
from providers.toolkit.chunked_body import ChunkedBody
from providers.toolkit.failures import (
    MAX_QUOTED,
    bad_response,
    parse_model,
    parse_object,
    passed_retry_after,
    scrub,
    transport_failure,
)
from providers.toolkit.hosts import host_entry, is_loopback_url
from providers.toolkit.results import ResultReader, all_or_first_failure
from tests.images import png_bytes

PNG = png_bytes(32, 16)


def _reader(client: httpx.AsyncClient, *, max_pixels: int = 10_000, max_bytes: int = 1_000_000) -> ResultReader:
    settings = ProviderSettings(kind="test", fetch_hosts=("cdn.test:443",))
    limits = ResultLimits(max_pixels=max_pixels, max_bytes=max_bytes)
    return ResultReader.for_provider(client, settings, limits, own_urls=("http://127.0.0.1:9/v1",), who="test")


async def test_a_reader_allows_its_own_hosts_and_applies_the_caps() -> None:
    async with httpx.AsyncClient() as client:
        reader = _reader(client, max_pixels=999, max_bytes=4321)
    assert reader.fetch_policy.allowed_hosts == frozenset({"127.0.0.1:9", "cdn.test:443"})
    assert (reader.max_pixels, reader.fetch_policy.max_bytes) == (999, 4321)


async def test_references_and_base64_become_checked_bytes() -> None:
    def upstream(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=PNG if request.url.path == "/ok.png" else PNG[:-20])

    async with httpx.AsyncClient(transport=httpx.MockTransport(upstream)) as client:
        reader = _reader(client)
        assert (await reader.from_reference("http://127.0.0.1:9/ok.png")).data == PNG
        assert (await reader.from_reference("data:image/png;base64," + base64.b64encode(PNG).decode())).data == PNG
        assert reader.from_base64(base64.b64encode(PNG).decode()).data == PNG
        with pytest.raises(UpstreamError, match="test returned a truncated image"):
            await reader.from_reference("http://127.0.0.1:9/cut.png")
        with pytest.raises(UpstreamError, match="private or loopback"):
            await reader.from_reference("https://127.0.0.2/elsewhere.png")
        with pytest.raises(UpstreamError, match="invalid base64"):
            reader.from_base64("not base64!")


async def test_the_caps_refuse_one_pixel_or_one_byte_too_many() -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(UpstreamError, match="over the pixel limit"):
            _reader(client, max_pixels=32 * 16 - 1).from_base64(base64.b64encode(PNG).decode())
        with pytest.raises(UpstreamError, match="larger than"):
            _reader(client, max_bytes=len(PNG) - 1).from_base64(base64.b64encode(PNG).decode())
        assert _reader(client, max_pixels=32 * 16, max_bytes=len(PNG)).from_base64(base64.b64encode(PNG).decode())


async def test_the_first_failure_speaks_and_cancels_the_rest() -> None:
    cancelled = asyncio.Event()

    async def slow() -> int:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return 1

    async def failing() -> int:
        raise UpstreamError("first")

    assert await all_or_first_failure([asyncio.sleep(0, 1), asyncio.sleep(0, 2)]) == [1, 2]
    with pytest.raises(UpstreamError, match="first"):
        await all_or_first_failure([slow(), failing()])
    assert cancelled.is_set()


def test_scrub_removes_the_key_and_its_parts_and_bounds_the_length() -> None:
    assert scrub("bad key key-id:key-secret here", "key-id:key-secret") == "bad key [redacted] here"
    assert scrub("only key-secret leaked", "key-id:key-secret") == "only [redacted] leaked"
    assert scrub("ab and secret-part", "ab:secret-part") == "ab and [redacted]"  # parts under 4 characters stay
    assert len(scrub("x" * 1000, None)) == MAX_QUOTED


class _Job(BaseModel):
    id: str


def test_bad_answers_are_upstream_bad_response() -> None:
    assert parse_model(httpx.Response(200, json={"id": "j"}), _Job, who="test", what="job").id == "j"
    for response in (httpx.Response(200, text="<html>"), httpx.Response(200, json=[1])):
        with pytest.raises(UpstreamError) as refused:
            parse_object(response, who="test", what="job")
        assert (refused.value.code, refused.value.message) == ("upstream_bad_response", "test answered an unusable job")
    assert bad_response("fal", "result").code == "upstream_bad_response"


def test_transport_failures_and_passed_retry_after() -> None:
    request = httpx.Request("GET", "https://user:pw@upstream.test/x")
    timeout = transport_failure(httpx.ReadTimeout("t", request=request), who="fal", during="status")
    assert isinstance(timeout, UpstreamTimeoutError) and timeout.message == "fal did not answer in time during status"
    down = transport_failure(httpx.ConnectError("refused pw", request=request), who="the upstream")
    assert (down.code, down.message) == ("upstream_unreachable", "cannot reach the upstream (ConnectError)")
    assert passed_retry_after(httpx.Response(429, headers={"retry-after": " 7 "})) == {"retry-after": "7"}
    assert passed_retry_after(httpx.Response(429, headers={"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})) is None


@pytest.mark.parametrize(
    ("url", "entry", "loopback"),
    [
        ("https://queue.fal.run", "queue.fal.run:443", False),
        ("http://127.0.0.1:8090/v1", "127.0.0.1:8090", True),
        ("http://[::1]:9/v1", "[::1]:9", True),
        ("http://localhost/v1", "localhost:80", True),
        ("http://10.0.0.1:80", "10.0.0.1:80", False),
    ],
)
def test_host_entries(url: str, entry: str, loopback: bool) -> None:
    assert (host_entry(url), is_loopback_url(url)) == (entry, loopback)


async def test_a_released_body_holds_nothing_and_cannot_be_sent_again() -> None:
    body = ChunkedBody([b"abc", b"de"])
    assert [chunk async for chunk in body] == [b"abc", b"de"]  # any number of times before
    assert [chunk async for chunk in body] == [b"abc", b"de"]
    body.release()
    assert body.chunks == []
    with pytest.raises(RuntimeError, match="released"):
        _ = [chunk async for chunk in body]
