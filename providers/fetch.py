"""The one guarded download of pixelgate: every URL the gateway fetches goes through here.

A URL names an image someone else chose (an upstream's result, a client's input), so fetching it
must not turn the gateway into a proxy into its own network (SSRF). The rules:

- ``https`` to a host whose every resolved address is public is always allowed;
- ``http``, and any private, loopback, link-local, shared, reserved or cloud-metadata address
  (169.254.169.254, fd00:ec2::254 ...), only when the host is in ``FetchPolicy.allowed_hosts``
  (an entry ``"host"`` allows every port, ``"host:port"`` that port only);
- the host name is resolved here (``getaddrinfo`` in a thread) and every address is checked; the
  request then goes to the checked address (TLS still verified against the name), so a DNS answer
  that changes between check and connect cannot smuggle in a private address;
- redirects are followed by hand, each hop checked again, at most ``max_redirects``;
- the body is streamed and the download aborted past ``max_bytes``; the whole fetch, redirects
  included, has ``timeout_seconds``;
- ``before_body`` (optional) is awaited once the final answer's headers are in, before its body is
  read, with the most the body may hold (its declared length, else ``max_bytes``): the caller's hook
  to account for the memory (the intake budget). Time spent in it does not count against the timeout.

Every failure is an :class:`core.errors.UpstreamError` with code ``upstream_fetch_failed`` whose
message names scheme, host and path only: query strings of signed URLs are credentials.
"""

from __future__ import annotations

import asyncio
import binascii
import ipaddress
import socket
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import httpx
import pybase64

from core.errors import UpstreamError

FETCH_FAILED = "upstream_fetch_failed"

BeforeBody = Callable[[int], Awaitable[None]]
"""Awaited with the most a download's body may hold, before it is read."""

_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)
_DEFAULT_PORTS = {"http": 80, "https": 443}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class FetchPolicy:
    """Where and how much one fetch may download. Hosts are matched case-insensitively."""

    allowed_hosts: frozenset[str] = field(default_factory=frozenset)
    max_bytes: int = 50 * 1024 * 1024
    timeout_seconds: float = 60.0
    connect_timeout_seconds: float = 10.0
    """Per connection; ``timeout_seconds`` bounds the whole fetch, redirects included."""
    max_redirects: int = 3

    def allows(self, host: str, port: int) -> bool:
        """True when ``host`` (any port) or ``host:port`` is listed (IPv6 as ``[addr]:port``)."""
        host = host.lower().strip("[]")
        listed = {h.lower() for h in self.allowed_hosts}
        return bool(listed & {host, f"[{host}]", f"{host}:{port}", f"[{host}]:{port}"})


def redact_url(url: str) -> str:
    """``scheme://host[:port]/path`` of ``url``: no user info, query or fragment (safe to show)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _fail(message: str, url: str) -> UpstreamError:
    return UpstreamError(f"{message}: {redact_url(url)}", code=FETCH_FAILED)


def is_public_address(address: IPAddress) -> bool:
    """False for every address an outside party must not make the gateway reach."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            return is_public_address(mapped)
    return (
        address.is_global
        and not address.is_multicast
        and not address.is_reserved
        and not address.is_unspecified
        and address not in _METADATA_ADDRESSES
    )


async def _resolve(host: str, port: int, url: str) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = await asyncio.to_thread(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise _fail("cannot resolve the image host", url) from exc
    addresses: list[IPAddress] = []
    for info in infos:
        # sockaddr[0] may carry an IPv6 zone ("fe80::1%eth0"); the zone does not change the class.
        addresses.append(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]))
    if not addresses:
        raise _fail("cannot resolve the image host", url)
    return addresses


@dataclass(frozen=True)
class _Route:
    """Where a checked request goes: ``url`` (pinned to a checked address when needed), extra headers
    and extensions (the original Host and TLS server name of a pinned request)."""

    url: httpx.URL
    headers: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, str] = field(default_factory=dict)


async def _route(url: httpx.URL, policy: FetchPolicy, shown: str) -> _Route:
    """Check ``url`` against ``policy`` (resolving its host) and pin it to a checked address."""
    if url.scheme not in _DEFAULT_PORTS or not url.host:
        raise _fail("refusing to fetch a non-http(s) URL", shown)
    port = url.port or _DEFAULT_PORTS[url.scheme]
    if policy.allows(url.host, port):
        return _Route(url)
    if url.scheme != "https":
        raise _fail("refusing to fetch over plain http from a host that is not configured", shown)
    addresses = await _resolve(url.host, port, shown)
    if not all(is_public_address(a) for a in addresses):
        raise _fail("refusing to fetch from a private or loopback address", shown)
    if str(addresses[0]) == url.host:  # an address literal: nothing to pin, and SNI takes no addresses
        return _Route(url)
    return _Route(
        url.copy_with(host=str(addresses[0])),
        headers={"Host": url.netloc.decode("ascii")},
        extensions={"sni_hostname": url.host},
    )


async def _checked_request(
    client: httpx.AsyncClient,
    url: httpx.URL,
    policy: FetchPolicy,
    shown: str,
    *,
    method: str = "GET",
    content: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> httpx.Request:
    """A request for ``url`` that may be sent, pinned to a checked address unless the host is allowed."""
    timeout = httpx.Timeout(policy.timeout_seconds, connect=min(policy.connect_timeout_seconds, policy.timeout_seconds))
    route = await _route(url, policy, shown)
    return client.build_request(
        method,
        route.url,
        content=content,
        headers={**(headers or {}), **route.headers},
        extensions=dict(route.extensions),
        timeout=timeout,
    )


async def check_destination(url: str, policy: FetchPolicy) -> None:
    """Raise :class:`UpstreamError` (``upstream_fetch_failed``) unless ``policy`` lets the gateway send a
    request to ``url`` (the rules of the module docstring; the host is resolved). Sends nothing."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise _fail("invalid URL", url) from exc
    await _route(parsed, policy, url)


async def post_guarded(
    client: httpx.AsyncClient, url: str, policy: FetchPolicy, *, content: bytes, headers: Mapping[str, str]
) -> int:
    """POST ``content`` to ``url`` under the same rules as a download (a webhook); returns the status.

    Redirects are not followed (a 3xx is returned as it is); at most ``policy.max_bytes`` of the answer
    are read. Raises :class:`UpstreamError` (``upstream_fetch_failed``) when the URL is refused, the
    connection fails or ``policy.timeout_seconds`` runs out.
    """
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise _fail("invalid URL", url) from exc
    try:
        async with asyncio.timeout(policy.timeout_seconds):
            request = await _checked_request(
                client, parsed, policy, url, method="POST", content=content, headers=headers
            )
            try:
                response = await client.send(request, stream=True, follow_redirects=False)
            except httpx.HTTPError as exc:
                raise _fail(f"cannot send ({type(exc).__name__})", url) from exc
            try:
                await _read_capped(response, policy.max_bytes, url)
            except UpstreamError:
                pass  # the status is the answer; an oversized or broken body does not change it
            finally:
                await response.aclose()
            return response.status_code
    except TimeoutError as exc:
        raise _fail("timed out", url) from exc


async def fetch_image_bytes(
    client: httpx.AsyncClient, url: str, policy: FetchPolicy, before_body: BeforeBody | None = None
) -> bytes:
    """Download ``url`` under ``policy`` and return the body (not yet checked to be an image).

    ``before_body``: see the module docstring. Raises :class:`UpstreamError` (``upstream_fetch_failed``)
    when the URL is refused, a hop redirects too often or to a refused place, the status is not 2xx,
    the body exceeds ``policy.max_bytes``, the connection fails or the time runs out.
    """
    try:
        async with asyncio.timeout(policy.timeout_seconds) as deadline:
            return await _fetch(client, url, policy, _paused(deadline, before_body))
    except TimeoutError as exc:
        raise _fail("timed out downloading the image", url) from exc


def _paused(deadline: asyncio.Timeout, before_body: BeforeBody | None) -> BeforeBody | None:
    """``before_body`` with ``deadline`` stopped while it runs: waiting for room is not downloading."""
    if before_body is None:
        return None

    async def paused(most: int) -> None:
        loop = asyncio.get_running_loop()
        when = deadline.when()
        left = None if when is None else when - loop.time()
        deadline.reschedule(None)
        try:
            await before_body(most)
        finally:
            if left is not None:
                deadline.reschedule(loop.time() + left)

    return paused


async def _fetch(client: httpx.AsyncClient, url: str, policy: FetchPolicy, before_body: BeforeBody | None) -> bytes:
    try:
        current = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise _fail("invalid image URL", url) from exc
    for _hop in range(policy.max_redirects + 1):
        shown = str(current)
        request = await _checked_request(client, current, policy, shown)
        try:
            response = await client.send(request, stream=True, follow_redirects=False)
        except httpx.HTTPError as exc:
            raise _fail(f"cannot download the image ({type(exc).__name__})", shown) from exc
        try:
            if response.is_redirect:
                location = response.headers.get("location", "")
                try:
                    current = current.join(location)
                except httpx.InvalidURL as exc:
                    raise _fail("invalid redirect from", shown) from exc
                continue
            if not response.is_success:
                raise _fail(f"image download answered HTTP {response.status_code}", shown)
            return await _read_capped(response, policy.max_bytes, shown, before_body)
        finally:
            await response.aclose()
    raise _fail(f"more than {policy.max_redirects} redirects fetching the image", url)


async def _read_capped(
    response: httpx.Response, max_bytes: int, shown: str, before_body: BeforeBody | None = None
) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _fail(f"image larger than {max_bytes} bytes", shown)
    if before_body is not None:
        await before_body(int(declared) if declared.isdigit() else max_bytes)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise _fail(f"image larger than {max_bytes} bytes", shown)
            chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise _fail(f"image download broke off ({type(exc).__name__})", shown) from exc
    return b"".join(chunks)


def data_uri_base64(uri: str, max_bytes: int) -> str | None:
    """The base64 text of a ``data:[<type>];base64,<data>`` URI, undecoded; None for one without ``;base64``.

    Raises :class:`UpstreamError` (``upstream_fetch_failed``) as :func:`decode_data_uri` does when
    ``uri`` is not a data URI or its text stands for more than ``max_bytes``. The text itself is
    checked by whoever decodes it.
    """
    if not uri[:5].lower() == "data:" or "," not in uri:
        raise UpstreamError("not a data: URI", code=FETCH_FAILED)
    header, payload = uri[5:].split(",", 1)
    if not header.lower().endswith(";base64"):
        return None
    if len(payload) // 4 * 3 > max_bytes + 3:
        raise UpstreamError(f"data: URI image larger than {max_bytes} bytes", code=FETCH_FAILED)
    return payload.strip()


def decode_data_uri(uri: str, max_bytes: int) -> bytes:
    """The bytes of a ``data:[<type>][;base64],<data>`` URI, at most ``max_bytes`` of them.

    Raises :class:`UpstreamError` (``upstream_fetch_failed``) when ``uri`` is not a data URI, its
    base64 is invalid or it decodes to more than ``max_bytes``. The message never quotes the data.
    """
    if not uri[:5].lower() == "data:" or "," not in uri:
        raise UpstreamError("not a data: URI", code=FETCH_FAILED)
    header, payload = uri[5:].split(",", 1)
    if header.lower().endswith(";base64"):
        # Checked before decoding so an oversized URI costs no decode.
        if len(payload) // 4 * 3 > max_bytes + 3:
            raise UpstreamError(f"data: URI image larger than {max_bytes} bytes", code=FETCH_FAILED)
        try:
            data = pybase64.b64decode(payload.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise UpstreamError("data: URI with invalid base64", code=FETCH_FAILED) from exc
    else:
        data = urllib.parse.unquote_to_bytes(payload)
    if len(data) > max_bytes:
        raise UpstreamError(f"data: URI image larger than {max_bytes} bytes", code=FETCH_FAILED)
    return data
