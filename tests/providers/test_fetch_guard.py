"""The guarded fetch: what may be downloaded, from where, how much, how long."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import socket
from collections.abc import AsyncIterator, Callable, Coroutine

import httpx
import pytest

from core.errors import UpstreamError
from providers.fetch import FetchPolicy, decode_data_uri, fetch_image_bytes, is_public_address
from tests.fakes.fake_fal import FakeFal

PUBLIC = "93.184.216.34"
Handler = Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]


class Recorder:
    """A MockTransport handler that records requests and answers from a path -> response table."""

    def __init__(self, routes: dict[str, httpx.Response] | None = None) -> None:
        self.routes = routes or {}
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.routes.get(request.url.path, httpx.Response(200, content=b"IMAGE"))


async def _fetch(url: str, handler: Handler, policy: FetchPolicy | None = None) -> bytes:
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        return await fetch_image_bytes(client, url, policy or FetchPolicy())


async def test_https_to_a_public_address_is_allowed() -> None:
    recorder = Recorder()
    assert await _fetch(f"https://{PUBLIC}/img.png?sig=1", recorder) == b"IMAGE"
    [request] = recorder.requests
    assert str(request.url) == f"https://{PUBLIC}/img.png?sig=1"


async def test_a_host_name_is_pinned_to_its_checked_address(monkeypatch: pytest.MonkeyPatch) -> None:
    # DNS is the outside world here: answer a public address for a name, as a resolver would.
    def resolver(host: str, port: int, type: int = 0) -> list[tuple[object, ...]]:
        assert host == "cdn.example.test"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC, port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    recorder = Recorder()
    assert await _fetch("https://cdn.example.test:8443/img.png", recorder) == b"IMAGE"
    [request] = recorder.requests
    assert (request.url.host, request.url.port) == (PUBLIC, 8443)
    assert request.headers["host"] == "cdn.example.test:8443"
    assert request.extensions["sni_hostname"] == "cdn.example.test"


@pytest.mark.parametrize(
    "url",
    [
        f"http://{PUBLIC}/img.png",  # plain http to an unlisted host
        "https://127.0.0.1/img.png",
        "https://localhost/img.png",  # a name resolving to loopback
        "https://10.1.2.3/img.png",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/img.png",
        "https://[::ffff:127.0.0.1]/img.png",
        "https://[fd00:ec2::254]/img.png",
        "https://0.0.0.0/img.png",
        "file:///etc/passwd",
        "ftp://example.com/x",
    ],
)
async def test_refused_urls_send_nothing(url: str) -> None:
    recorder = Recorder()
    with pytest.raises(UpstreamError) as caught:
        await _fetch(url, recorder)
    assert caught.value.code == "upstream_fetch_failed"
    assert recorder.requests == []


async def test_listed_hosts_may_be_loopback_and_plain_http() -> None:
    recorder = Recorder()
    policy = FetchPolicy(allowed_hosts=frozenset({"127.0.0.1:8090", "cdn.internal"}))
    assert await _fetch("http://127.0.0.1:8090/a.png", recorder, policy) == b"IMAGE"
    assert await _fetch("http://cdn.internal:9999/b.png", recorder, policy) == b"IMAGE"
    with pytest.raises(UpstreamError):
        await _fetch("http://127.0.0.1:8091/a.png", recorder, policy)  # another port is not listed
    assert len(recorder.requests) == 2


async def test_a_real_loopback_server_only_when_listed() -> None:
    with FakeFal() as fake:
        fake.uploads["tok"] = b"\x89PNG\r\n\x1a\nrest"
        url = f"{fake.base_url}/files/tok/a.png"
        async with httpx.AsyncClient() as client:
            with pytest.raises(UpstreamError):
                await fetch_image_bytes(client, url, FetchPolicy())
            allowed = FetchPolicy(allowed_hosts=frozenset({f"127.0.0.1:{fake.port}"}))
            assert await fetch_image_bytes(client, url, allowed) == b"\x89PNG\r\n\x1a\nrest"


@pytest.mark.parametrize("target", ["http://10.0.0.5/b", "https://169.254.169.254/b", "https://localhost/b"])
async def test_redirect_to_a_private_address_is_refused(target: str) -> None:
    recorder = Recorder({"/a": httpx.Response(302, headers={"location": target})})
    with pytest.raises(UpstreamError):
        await _fetch(f"https://{PUBLIC}/a", recorder)
    assert [r.url.path for r in recorder.requests] == ["/a"]


async def test_redirects_are_followed_and_counted() -> None:
    recorder = Recorder(
        {
            "/a": httpx.Response(302, headers={"location": "/b"}),
            "/b": httpx.Response(307, headers={"location": f"https://{PUBLIC}/c"}),
        }
    )
    assert await _fetch(f"https://{PUBLIC}/a", recorder) == b"IMAGE"
    assert [r.url.path for r in recorder.requests] == ["/a", "/b", "/c"]
    with pytest.raises(UpstreamError, match="redirects"):
        await _fetch(f"https://{PUBLIC}/a", recorder, FetchPolicy(max_redirects=1))


async def test_size_cap_by_content_length_and_by_stream() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 100

    recorder = Recorder(
        {
            "/declared": httpx.Response(200, content=b"x" * 1000),
            "/streamed": httpx.Response(200, content=chunks()),
        }
    )
    policy = FetchPolicy(max_bytes=999)
    for path in ("/declared", "/streamed"):
        with pytest.raises(UpstreamError, match="larger than 999 bytes"):
            await _fetch(f"https://{PUBLIC}{path}", recorder, policy)
    assert len(await _fetch(f"https://{PUBLIC}/declared", recorder, FetchPolicy(max_bytes=1000))) == 1000


async def test_timeout() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200)

    with pytest.raises(UpstreamError, match="timed out"):
        await _fetch(f"https://{PUBLIC}/slow", slow, FetchPolicy(timeout_seconds=0.2))


async def test_before_body_hears_the_most_a_body_may_hold_and_its_wait_is_not_timed() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"x" * 100

    recorder = Recorder(
        {"/declared": httpx.Response(200, content=b"x" * 1000), "/streamed": httpx.Response(200, content=chunks())}
    )
    heard: list[int] = []

    async def before_body(most: int) -> None:
        heard.append(most)
        await asyncio.sleep(0.8)  # waiting for room, longer than the whole download may take

    policy = FetchPolicy(max_bytes=5000, timeout_seconds=0.5)
    async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as client:
        assert len(await fetch_image_bytes(client, f"https://{PUBLIC}/declared", policy, before_body)) == 1000
        assert len(await fetch_image_bytes(client, f"https://{PUBLIC}/streamed", policy, before_body)) == 100
    assert heard == [1000, 5000]  # the declared length; else the cap


async def test_error_messages_never_show_the_query_string() -> None:
    recorder = Recorder({"/img.png": httpx.Response(403)})
    with pytest.raises(UpstreamError) as caught:
        await _fetch(f"https://user:pw@{PUBLIC}/img.png?X-Amz-Signature=SECRETSIG#frag", recorder)
    assert "403" in caught.value.message
    assert f"https://{PUBLIC}/img.png" in caught.value.message
    for leaked in ("SECRETSIG", "X-Amz", "pw", "frag"):
        assert leaked not in caught.value.message


async def test_transport_errors_are_upstream_errors() -> None:
    async def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(UpstreamError, match="ConnectError"):
        await _fetch(f"https://{PUBLIC}/x?token=abc", broken)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700::1111", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("100.64.0.1", False),
        ("169.254.169.254", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1", False),
        ("fd00:ec2::254", False),
        ("::ffff:10.0.0.1", False),
        ("2002:7f00:1::", False),  # 6to4 wrapping 127.0.0.1
    ],
)
def test_public_address_classification(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


def test_decode_data_uri() -> None:
    data = b"\x89PNG\r\n\x1a\n" + bytes(range(50))
    uri = "data:image/png;base64," + base64.b64encode(data).decode()
    assert decode_data_uri(uri, 1000) == data
    assert decode_data_uri("data:text/plain,hi%20there", 100) == b"hi there"
    with pytest.raises(UpstreamError, match="larger"):
        decode_data_uri(uri, 10)
    with pytest.raises(UpstreamError, match="base64"):
        decode_data_uri("data:image/png;base64,@@@@", 100)
    with pytest.raises(UpstreamError, match="not a data"):
        decode_data_uri("https://example.com/x.png", 100)
