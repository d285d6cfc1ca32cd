"""fal storage: upload an input image too large for a data URI, get back a URL fal can read.

Flow (fal-js ``storage.ts``): ``POST {storage_url}/storage/upload/initiate?storage_type=fal-cdn-v3``
with ``{"content_type", "file_name"}`` -> ``{"upload_url", "file_url"}``; ``PUT`` the raw bytes to
``upload_url`` (presigned: sent without the API key, it may live on another host); the job then
names ``file_url``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from core.images import InputImage
from providers.fal.errors import parse_model
from providers.fal.transport import FalHttp


class _Initiated(BaseModel):
    model_config = ConfigDict(extra="ignore")

    upload_url: str
    file_url: str


async def upload_image(http: FalHttp, storage_url: str, image: InputImage, file_name: str) -> str:
    """Upload ``image`` to fal storage and return its ``file_url``. Raises ``core.errors`` only."""
    initiate = f"{storage_url.rstrip('/')}/storage/upload/initiate?storage_type=fal-cdn-v3"
    response = await http.send(
        "POST", initiate, phase="storage", json={"content_type": image.media_type, "file_name": file_name}
    )
    target = parse_model(response, _Initiated, "storage initiate response")
    await http.send(
        "PUT",
        target.upload_url,
        phase="storage",
        content=image.data,
        content_type=image.media_type,
        authenticated=False,
    )
    return target.file_url
