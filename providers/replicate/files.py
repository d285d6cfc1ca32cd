"""Input images for a prediction: a ``data:`` URI when small, Replicate's Files API when large.

Replicate's advice (the reference, section 6): "Use an HTTP URL when ... you have a large file >
256kb ... Use a data URL when ... you have a small file <= 256kb". A large image is uploaded with
``POST {base}/files`` (multipart ``content``, ``filename``, ``type``) and the prediction names the
file's ``urls.get``, exactly as Replicate's own clients do. Uploaded files are deleted once the
prediction is over (best effort; Replicate also expires them, after about an hour per its example).
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

import httpx
import pybase64
from pydantic import BaseModel, ConfigDict

from core.images import InputImage
from providers.replicate.errors import parse_model
from providers.replicate.transport import ReplicateHttp
from providers.toolkit.retry import RetryPolicy


class _FileUrls(BaseModel):
    model_config = ConfigDict(extra="ignore")

    get: str


class UploadedFile(BaseModel):
    """The part of Replicate's file object the adapter needs."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    urls: _FileUrls


def data_uri(image: InputImage) -> str:
    return f"data:{image.media_type};base64,{pybase64.b64encode(image.data).decode('ascii')}"


@dataclass(frozen=True)
class InputFiles:
    """Places one call's input images; remembers what it uploaded so that it can be deleted."""

    http: ReplicateHttp
    retry: RetryPolicy
    threshold_bytes: int

    async def reference(self, image: InputImage, name: str, uploaded: list[UploadedFile]) -> str:
        """A URL Replicate can read ``image`` from; an upload is appended to ``uploaded``."""
        if len(image.data) <= self.threshold_bytes:
            return data_uri(image)
        filename = f"{name}.{image.extension}"
        response = await self.http.send(
            "POST",
            f"{self.http.base_url}/files",
            phase="upload",
            retry=self.retry,
            files={"content": (filename, image.data, image.media_type)},
            data={"filename": filename, "type": image.media_type},
        )
        stored = parse_model(response, UploadedFile, "file upload response")
        uploaded.append(stored)
        return stored.urls.get

    async def delete(self, stored: UploadedFile) -> None:
        """Delete an uploaded file: best effort, one try, never raises (except cancellation)."""
        try:
            url = f"{self.http.base_url}/files/{urllib.parse.quote(stored.id, safe='')}"
            await self.http.client.delete(url, headers=self.http.auth_headers, timeout=self.http.timeout)
        except httpx.HTTPError:
            return
