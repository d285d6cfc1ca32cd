"""The fake Replicate's Files API (the reference, section 6): upload, read, list, delete, download.

``POST /v1/files`` takes multipart ``content`` (required), ``filename``, ``type`` and ``metadata``
(JSON) and answers 201 with the file object; a file of ``max_file_bytes`` or more is a 413. The
file's ``urls.get`` works as a model input. Every route needs the API token. Signed downloads
(``?owner=&expiry=&signature=``) are not modeled: ``/download`` takes the token instead.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pydantic import JsonValue
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes import replicate_scenarios as answers
from tests.fakes.replicate_models import Invalid
from tests.fakes.replicate_predictions import iso

JsonObject = dict[str, JsonValue]


@dataclass
class StoredFile:
    id: str
    name: str
    content_type: str
    data: bytes
    metadata: JsonValue
    created_at: datetime


class FilesApi:
    """The files of one fake Replicate, and the routes that serve them under ``api_url``."""

    def __init__(self, api_url: str, authorize: Callable[[Request], Response | None]) -> None:
        self.api_url = api_url
        self.files: dict[str, StoredFile] = {}
        self.max_file_bytes = 100 * 1024 * 1024
        self._authorize = authorize

    def routes(self) -> list[Route]:
        return [
            Route("/v1/files", self._files, methods=["GET", "POST"]),
            Route("/v1/files/{id}", self._file, methods=["GET", "DELETE"]),
            Route("/v1/files/{id}/download", self._download, methods=["GET"]),
        ]

    def reset(self) -> None:
        self.files.clear()
        self.max_file_bytes = 100 * 1024 * 1024

    def bytes_at(self, url: str) -> bytes | None:
        """The content of a file named by its ``urls.get`` (or ``/download``) URL, if this fake has it."""
        if not url.startswith(f"{self.api_url}/files/"):
            return None
        stored = self.files.get(url.removeprefix(f"{self.api_url}/files/").split("/")[0])
        return stored.data if stored is not None else None

    async def _files(self, request: Request) -> Response:
        if (denied := self._authorize(request)) is not None:
            return denied
        if request.method == "GET":
            results: list[JsonValue] = [self._json(f) for f in self.files.values()]
            return JSONResponse({"next": None, "previous": None, "results": results})
        async with request.form() as form:
            return await self._store(form)

    async def _store(self, form: FormData) -> Response:
        content = form.get("content")
        if not isinstance(content, UploadFile):
            item = Invalid("required", "(root)", "content is required")
            return answers.invalid([item.as_json()], [item.detail_line()])
        data = await content.read()
        if len(data) >= self.max_file_bytes:
            return answers.problem(413, "Files must be less than 100MB in size")
        raw_metadata = form.get("metadata")
        if isinstance(raw_metadata, UploadFile):  # rp-js sends the metadata as a JSON blob
            raw_metadata = (await raw_metadata.read()).decode("utf-8")
        try:
            metadata: JsonValue = json.loads(raw_metadata) if raw_metadata else {}
        except ValueError:
            return answers.problem(400, "metadata is not valid JSON")
        name, content_type = form.get("filename"), form.get("type")
        if not isinstance(content_type, str):
            content_type = content.content_type or "application/octet-stream"
        stored = StoredFile(
            id=uuid.uuid4().hex[:24],
            name=name if isinstance(name, str) else content.filename or "file",
            content_type=content_type,
            data=data,
            metadata=metadata,
            created_at=datetime.now(UTC),
        )
        self.files[stored.id] = stored
        return JSONResponse(self._json(stored), status_code=201)

    def _json(self, stored: StoredFile) -> JsonObject:
        return {
            "id": stored.id,
            "name": stored.name,
            "content_type": stored.content_type,
            "size": len(stored.data),
            "etag": hashlib.md5(stored.data).hexdigest(),
            "checksums": {"sha256": hashlib.sha256(stored.data).hexdigest()},
            "metadata": stored.metadata,
            "created_at": iso(stored.created_at),
            "expires_at": iso(stored.created_at + timedelta(hours=1)),  # the reference's example TTL
            "urls": {"get": f"{self.api_url}/files/{stored.id}"},
        }

    async def _file(self, request: Request) -> Response:
        if (denied := self._authorize(request)) is not None:
            return denied
        stored = self.files.get(request.path_params["id"])
        if stored is None:
            return answers.problem(404, "File not found")
        if request.method == "DELETE":
            del self.files[stored.id]
            return Response(status_code=204)
        return JSONResponse(self._json(stored))

    async def _download(self, request: Request) -> Response:
        if (denied := self._authorize(request)) is not None:
            return denied
        stored = self.files.get(request.path_params["id"])
        if stored is None:
            return answers.problem(404, "File not found")
        return Response(stored.data, media_type=stored.content_type)
