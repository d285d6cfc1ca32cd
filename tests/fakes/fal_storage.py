"""The fake fal's storage: the uploads fal's clients make before a job, and the files they get back.

Two flows (the fal reference, section 2.6). fal-js and pixelgate: ``POST /storage/upload/initiate``
(``storage_type`` ``fal-cdn-v3``, or ``gcs`` as fal-client's fallback) answers ``{upload_url,
file_url}``, then ``PUT`` the bytes to ``upload_url``. fal-client's CDN v3 flow: ``POST
/storage/auth/token?storage_type=fal-cdn-v3`` answers ``{token, token_type, base_url, expires_at}``
(``base_url`` being this server), then ``POST /files/upload`` with ``Authorization: Bearer <token>``
answers ``{access_url}``; large files go through ``/files/upload/multipart``, a ``PUT`` per part
(answered with an ETag) and ``complete``. ``GET /files/{token}/{name}`` serves what was uploaded.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.fal_scenarios import error


class FalStorage:
    """The uploads of one fake fal, and the routes that take and serve them on ``base_url``."""

    def __init__(self, base_url: str, authorized: Callable[[Request], bool]) -> None:
        self.base_url = base_url
        self.uploads: dict[str, bytes] = {}
        """Uploaded bytes by the token in their file URL."""
        self.cdn_tokens: list[str] = []
        """Tokens handed out by ``POST /storage/auth/token`` (what ``/files/upload`` accepts)."""
        self._parts: dict[str, dict[int, bytes]] = {}
        self._authorized = authorized

    def routes(self) -> list[Route]:
        return [
            Route("/storage/upload/initiate", self._initiate, methods=["POST"]),
            Route("/storage/upload/put/{token}", self._put_upload, methods=["PUT"]),
            Route("/storage/auth/token", self._cdn_token, methods=["POST"]),
            Route("/files/upload", self._cdn_upload, methods=["POST"]),
            Route("/files/upload/multipart", self._cdn_multipart_start, methods=["POST"]),
            Route("/files/{token}/{name}/multipart/{upload}/complete", self._cdn_multipart_end, methods=["POST"]),
            Route("/files/{token}/{name}/multipart/{upload}/{part:int}", self._cdn_multipart_part, methods=["PUT"]),
            Route("/files/{token}/{name}", self._get_file, methods=["GET"]),
        ]

    def reset(self) -> None:
        self.uploads.clear()
        self.cdn_tokens.clear()
        self._parts.clear()

    def bytes_at(self, url: str) -> bytes | None:
        """The bytes behind one of this server's file URLs, if it has them."""
        prefix = f"{self.base_url}/files/"
        return self.uploads.get(url[len(prefix) :].split("/", 1)[0]) if url.startswith(prefix) else None

    async def _initiate(self, request: Request) -> Response:
        if not self._authorized(request):
            return error(401, "No user found for Key ID and Secret")
        if request.query_params.get("storage_type") not in ("fal-cdn-v3", "gcs"):  # fal-client's fallback: gcs
            return error(422, "unsupported storage_type")
        body = await request.json()
        name = str(body.get("file_name") or "upload.bin").replace("/", "_")
        token = uuid.uuid4().hex
        return JSONResponse(
            {
                "upload_url": f"{self.base_url}/storage/upload/put/{token}",
                "file_url": f"{self.base_url}/files/{token}/{name}",
            }
        )

    async def _put_upload(self, request: Request) -> Response:
        self.uploads[request.path_params["token"]] = await request.body()
        return Response(status_code=200)

    async def _cdn_token(self, request: Request) -> Response:
        """fal-client's CDN v3 flow, step 1: a short-lived token for uploading to the CDN host."""
        if not self._authorized(request):
            return error(401, "No user found for Key ID and Secret")
        if request.query_params.get("storage_type") != "fal-cdn-v3":
            return error(422, "unsupported storage_type")
        token = uuid.uuid4().hex
        self.cdn_tokens.append(token)
        expires = datetime.now(UTC) + timedelta(minutes=30)
        return JSONResponse(
            {"token": token, "token_type": "Bearer", "base_url": self.base_url, "expires_at": expires.isoformat()}
        )

    def _cdn_authorized(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme == "Bearer" and token in self.cdn_tokens

    def _file_url(self, token: str, request: Request) -> str:
        name = (request.headers.get("x-fal-file-name") or "upload.bin").replace("/", "_")
        return f"{self.base_url}/files/{token}/{name}"

    async def _cdn_upload(self, request: Request) -> Response:
        """Step 2: the raw bytes in one ``POST {base_url}/files/upload``; answers ``{access_url}``."""
        if not self._cdn_authorized(request):
            return error(401, "Invalid or expired token")
        token = uuid.uuid4().hex
        self.uploads[token] = await request.body()
        return JSONResponse({"access_url": self._file_url(token, request)})

    async def _cdn_multipart_start(self, request: Request) -> Response:
        """Large files: start, ``PUT`` each part (answered with an ETag), then ``complete``."""
        if not self._cdn_authorized(request):
            return error(401, "Invalid or expired token")
        token, upload = uuid.uuid4().hex, uuid.uuid4().hex
        self._parts[upload] = {}
        return JSONResponse({"access_url": self._file_url(token, request), "uploadId": upload})

    async def _cdn_multipart_part(self, request: Request) -> Response:
        parts = self._parts.get(request.path_params["upload"])
        if not self._cdn_authorized(request) or parts is None:
            return error(404, "Upload not found")
        data = await request.body()
        parts[request.path_params["part"]] = data
        return Response(status_code=200, headers={"etag": f'"{hashlib.md5(data).hexdigest()}"'})

    async def _cdn_multipart_end(self, request: Request) -> Response:
        parts = self._parts.pop(request.path_params["upload"], None)
        if not self._cdn_authorized(request) or parts is None:
            return error(404, "Upload not found")
        listed = (await request.json()).get("parts", [])
        numbers = {part.get("partNumber") for part in listed if isinstance(part, dict)}
        if numbers != set(parts):
            return error(400, "Parts do not match the uploaded parts")
        token, name = request.path_params["token"], request.path_params["name"]
        self.uploads[token] = b"".join(parts[n] for n in sorted(parts))
        return JSONResponse({"access_url": f"{self.base_url}/files/{token}/{name}"})

    async def _get_file(self, request: Request) -> Response:
        data = self.uploads.get(request.path_params["token"])
        if data is None:
            return error(404, "Not found")
        return Response(data, media_type="application/octet-stream")
