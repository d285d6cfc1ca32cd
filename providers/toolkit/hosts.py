"""Hosts of configured URLs: as fetch allow-list entries, and whether they are loopback."""

from __future__ import annotations

import ipaddress

import httpx

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def host_entry(url: str | httpx.URL) -> str:
    """``host:port`` of ``url`` as a fetch allow-list entry (port explicit, IPv6 bracketed)."""
    parsed = httpx.URL(url)
    host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return f"{host}:{port}"


def is_loopback_url(url: str | httpx.URL) -> bool:
    """True when ``url``'s host is a loopback name or address (127.0.0.0/8, ::1, localhost)."""
    host = httpx.URL(url).host.lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
