"""The browser pages: the playground at ``/``, the dashboard at ``/admin`` and their static files under ``/static/``.

The files ship inside the package (``app/web``) and are read once, when the router is built; each
page is a plain HTML file that loads its CSS and JavaScript modules from ``/static/``. Every answer
carries a Content-Security-Policy that lets a page load and call only this origin (images may also
be ``data:`` and ``blob:`` URLs, and come from ``PIXELGATE_PUBLIC_URL`` when that is another origin),
so a page cannot send an API key or an image anywhere else. The pages need no key; the API calls
they make carry the key the user typed, in their own ``Authorization`` header. The dashboard exists
only where the admin API does (``PIXELGATE_ADMIN_KEY`` set): elsewhere ``/admin`` is the same 404 as
any unknown path.
"""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.settings import Settings
from core.errors import NotFoundError

PAGES = {"/": "playground.html"}
"""Each page's path and its file in ``app/web``."""
ADMIN_PAGES = {"/admin": "dashboard.html"}
"""Pages served only when the admin API is (they ask for the admin key themselves)."""

STATIC_PREFIX = "/static/"
STATIC_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}


@dataclass(frozen=True)
class WebFile:
    body: bytes
    media_type: str
    etag: str


def load_web_files(root: Traversable) -> dict[str, WebFile]:
    """Every servable file under ``root`` by its path relative to it (``js/api.js``)."""
    files: dict[str, WebFile] = {}

    def walk(folder: Traversable, prefix: str) -> None:
        for item in folder.iterdir():
            if item.is_dir():
                walk(item, f"{prefix}{item.name}/")
                continue
            suffix = "." + item.name.rpartition(".")[2]
            media_type = STATIC_TYPES.get(suffix) or mimetypes.guess_type(item.name)[0]
            if media_type is None:
                continue
            body = item.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            files[prefix + item.name] = WebFile(body, media_type, etag)

    walk(root, "")
    return files


def content_security_policy(public_url: str | None) -> str:
    """Only this origin; images also from ``data:``/``blob:`` and the public URL's origin, if set."""
    images = "'self' data: blob:"
    if public_url:
        parts = urlsplit(public_url)
        if parts.scheme in ("http", "https") and parts.netloc:
            images += f" {parts.scheme}://{parts.netloc}"
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        f"img-src {images}; connect-src 'self'; manifest-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def router(settings: Settings) -> APIRouter:
    """The pages and their static files, with the security headers for ``settings``."""
    files = load_web_files(resources.files("app") / "web")
    headers = {
        "content-security-policy": content_security_policy(settings.public_url),
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
        "cache-control": "no-cache",
    }

    def serve(request: Request, name: str) -> Response:
        file = files.get(name)
        if file is None:
            raise NotFoundError(f"There is no file '{name}' on this gateway.")
        if request.headers.get("if-none-match") == file.etag:
            return Response(status_code=304, headers={**headers, "etag": file.etag})
        return Response(file.body, media_type=file.media_type, headers={**headers, "etag": file.etag})

    def page(name: str) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return serve(request, name)

        return endpoint

    pages = APIRouter(include_in_schema=False)
    served = {**PAGES, **(ADMIN_PAGES if settings.admin_key is not None else {})}
    for path, name in served.items():
        pages.add_api_route(path, page(name), methods=["GET", "HEAD"])

    @pages.api_route(STATIC_PREFIX + "{name:path}", methods=["GET", "HEAD"])
    async def static(request: Request, name: str) -> Response:
        return serve(request, name)

    return pages
