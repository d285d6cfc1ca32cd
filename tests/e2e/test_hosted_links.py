"""response_format=url (the OpenAI default): signed, expiring links served without Authorization."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import openai

from normalization.hosting.signing import LinkSigner
from tests.conftest import TEST_KEY, make_settings
from tests.images import decode, png_bytes
from tests.live import LiveGateway


def _edit_url(client: openai.OpenAI, output_format: Any = "png") -> str:
    result = client.images.edit(
        model="sandbox-edit", image=("a.png", png_bytes(90, 60), "image/png"), prompt="x", output_format=output_format
    )
    assert result.data is not None
    url = result.data[0].url
    assert isinstance(url, str)
    return url


def test_default_response_is_a_link_that_fetches_without_authorization(
    client: openai.OpenAI, gateway: LiveGateway
) -> None:
    url = _edit_url(client)
    assert url.startswith(gateway.base_url + "/v1/images/")
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.content.startswith(b"\x89PNG")
    assert decode(response.content).size == (90, 60)
    max_age = int(response.headers["cache-control"].split("max-age=")[1])
    assert 3500 <= max_age <= 3600
    again = httpx.get(url, headers={"If-None-Match": response.headers["etag"]}, timeout=10)
    assert again.status_code == 304


def test_link_content_type_follows_output_format(client: openai.OpenAI) -> None:
    response = httpx.get(_edit_url(client, output_format="webp"), timeout=10)
    assert response.headers["content-type"] == "image/webp"
    assert response.content[8:12] == b"WEBP"


def test_tampered_or_expired_links_are_403(client: openai.OpenAI, gateway: LiveGateway) -> None:
    url = _edit_url(client)
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    name = parts.path.rsplit("/", 1)[1]
    base = f"{gateway.base_url}{parts.path}"
    expires = int(query["expires"][0])
    forged_expiry = httpx.get(base, params={"expires": expires + 10, "sig": query["sig"][0]}, timeout=10)
    assert forged_expiry.status_code == 403
    assert forged_expiry.json()["error"]["code"] == "invalid_signature"
    other_name = httpx.get(
        f"{gateway.base_url}/v1/images/{'A' * 32}.png", params={"expires": expires, "sig": query["sig"][0]}
    )
    assert other_name.status_code == 403
    signer = LinkSigner(b"test-signing-secret")  # the test settings' secret: a correctly signed, past link
    expired = httpx.get(base, params={"expires": 1000, "sig": signer.sign(name, 1000)}, timeout=10)
    assert expired.status_code == 403
    assert expired.json()["error"]["code"] == "link_expired"
    unsigned = httpx.get(base, timeout=10)
    assert unsigned.status_code == 403


def test_traversal_names_never_reach_the_filesystem(gateway: LiveGateway) -> None:
    signer = LinkSigner(b"test-signing-secret")
    for name in ("..%2fsigning.key", "signing.key", "%2e%2e%2fimages", "..", "a" * 32 + ".png/../../signing.key"):
        response = httpx.get(
            f"{gateway.base_url}/v1/images/{name}", params={"expires": 9999999999, "sig": signer.sign(name, 9999999999)}
        )
        assert response.status_code in (403, 404)
        assert b"\x89PNG" not in response.content and len(response.content) < 1000


def test_a_minted_link_stops_working_once_its_ttl_has_passed(tmp_path: Path) -> None:
    # A real link from a gateway whose images live two seconds (the link's whole-second expiry is
    # at least one second away when minted): fetched before, refused after.
    with (
        LiveGateway(make_settings(tmp_path, image_ttl_seconds=2)) as live,
        openai.OpenAI(base_url=live.api_url, api_key=TEST_KEY, max_retries=0, timeout=30) as client,
    ):
        url = _edit_url(client)
        expires = int(parse_qs(urlsplit(url).query)["expires"][0])
        assert expires <= time.time() + 2
        fresh = httpx.get(url, timeout=10)
        assert fresh.status_code == 200 and fresh.content.startswith(b"\x89PNG")
        time.sleep(max(0.0, expires - time.time()) + 0.05)
        late = httpx.get(url, timeout=10)
        assert late.status_code == 403
        assert late.json()["error"]["code"] == "link_expired"
