"""The response on the wire: OpenAI's ``ImagesResponse`` plus pixelgate's ``metadata``.

SDKs ignore keys they do not know, so ``metadata`` and per-image ``seed`` are safe to add.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from normalization.engine import ParamHandling


class ImageData(BaseModel):
    model_config = ConfigDict(frozen=True)

    url: str | None = None
    b64_json: str | None = None
    revised_prompt: str | None = None
    seed: int | None = None


class ResponseMetadata(BaseModel):
    model_config = ConfigDict(frozen=True)

    model: str
    provider: str
    upstream_model: str
    parameters: dict[str, ParamHandling]
    warnings: list[str] = Field(default_factory=list)
    upstream_calls: int
    resized: bool = False
    converted: bool = False
    nsfw: list[bool | None] = Field(default_factory=list)


class ImagesResponse(BaseModel):
    model_config = ConfigDict(frozen=True)

    created: int
    data: list[ImageData]
    output_format: str
    size: str
    metadata: ResponseMetadata

    def wire(self) -> dict[str, object]:
        """The JSON body: ``None`` fields of images are left out, as OpenAI does."""
        body = self.model_dump(mode="json", exclude={"data"})
        body["data"] = [image.model_dump(mode="json", exclude_none=True) for image in self.data]
        return body
