"""The pages' HTTP side: what ``/`` and ``/static/`` answer, and the headers that confine the page.

The browser tests (tests/browser) check the page itself; these check the server's answers directly.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from app.api.pages import content_security_policy
from tests.conftest import make_settings
from tests.live import LiveGateway

CSP_SELF_ONLY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
    "manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@pytest.fixture
def http(gateway: LiveGateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.base_url, timeout=10) as client:
        yield client


def test_the_playground_page_needs_no_key_and_allows_only_its_own_origin(http: httpx.Client) -> None:
    page = http.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["content-security-policy"] == CSP_SELF_ONLY
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "x-request-id" in page.headers
    assert "<title>pixelgate playground</title>" in page.text


def test_every_file_the_page_references_is_served(http: httpx.Client) -> None:
    page = http.get("/").text
    references = re.findall(r'(?:href|src)="(static/[^"]+)"', page)
    assert {"static/playground.css", "static/js/playground.js", "static/favicon.svg"} <= set(references)
    script = http.get("/static/js/playground.js")
    imported = re.findall(r'from "\./([a-z]+\.js)"', script.text)
    assert imported, "the main module imports the others"
    for path in [*references, *(f"static/js/{name}" for name in imported)]:
        answer = http.get(f"/{path}")
        assert answer.status_code == 200, path
        assert answer.headers["content-security-policy"] == CSP_SELF_ONLY
    assert http.get("/static/js/api.js").headers["content-type"] == "text/javascript; charset=utf-8"
    assert http.get("/static/playground.css").headers["content-type"] == "text/css; charset=utf-8"


def test_an_unchanged_file_answers_304(http: httpx.Client) -> None:
    first = http.get("/static/playground.css")
    again = http.get("/static/playground.css", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""
    head = http.head("/")
    assert head.status_code == 200
    assert head.headers["etag"] == http.get("/").headers["etag"]


@pytest.mark.parametrize("path", ["/static/nope.js", "/static/../app/main.py", "/static/%2e%2e/settings.py"])
def test_an_unknown_file_is_an_openai_shaped_404(http: httpx.Client, path: str) -> None:
    answer = http.get(path)
    assert answer.status_code == 404
    assert answer.json()["error"]["type"] == "invalid_request_error"
    assert answer.json()["error"]["code"] == "not_found"


def test_the_pages_are_not_in_the_api_schema(http: httpx.Client) -> None:
    paths = http.get("/openapi.json").json()["paths"]
    assert "/" not in paths
    assert not any(path.startswith("/static") for path in paths)


def test_a_public_url_on_another_origin_may_serve_images() -> None:
    policy = content_security_policy("https://images.example.com/pixelgate")
    assert "img-src 'self' data: blob: https://images.example.com;" in policy
    assert "connect-src 'self';" in policy
    assert content_security_policy(None) == CSP_SELF_ONLY
    assert content_security_policy("not a url") == CSP_SELF_ONLY


@pytest.fixture(scope="module")
def admin_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    with LiveGateway(make_settings(tmp_path_factory.mktemp("data"), admin_key="admin-pages-key")) as live:
        yield live


def test_the_dashboard_page_needs_no_key_and_allows_only_its_own_origin(admin_gateway: LiveGateway) -> None:
    with httpx.Client(base_url=admin_gateway.base_url, timeout=10) as http:
        page = http.get("/admin")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert page.headers["content-security-policy"] == CSP_SELF_ONLY
        assert "<title>pixelgate dashboard</title>" in page.text
        assert "admin-pages-key" not in page.text
        references = re.findall(r'(?:href|src)="(static/[^"]+)"', page.text)
        assert {"static/base.css", "static/dashboard.css", "static/js/dashboard.js"} <= set(references)
        # Every module the dashboard imports, and the ones they import, is served.
        pending, seen = ["dashboard.js"], set()
        while pending:
            name = pending.pop()
            if name in seen:
                continue
            seen.add(name)
            script = http.get(f"/static/js/{name}")
            assert script.status_code == 200, name
            pending += re.findall(r'from "\./([a-z]+\.js)"', script.text)
        assert {"api.js", "chart.js", "keys.js", "usage.js"} <= seen
        for path in references:
            assert http.get(f"/{path}").status_code == 200, path
        # Not in the API's schema, unlike the admin API beside it.
        paths = http.get("/openapi.json").json()["paths"]
        assert "/admin" not in paths and "/admin/keys" in paths


def test_without_an_admin_key_there_is_no_dashboard(http: httpx.Client) -> None:
    answer = http.get("/admin")
    assert answer.status_code == 404
    assert answer.json()["error"] == {
        "message": "Not Found",
        "type": "invalid_request_error",
        "param": None,
        "code": "not_found",
    }
