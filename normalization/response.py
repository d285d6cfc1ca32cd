"""The response on the wire: OpenAI's ``ImagesResponse`` plus pixelgate's ``metadata``.

SDKs ignore keys they do not know, so ``metadata`` and per-image ``seed`` are safe to add.
"""

from __future__ import annotations

import orjson
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

    def wire_bytes(self) -> bytes:
        """:meth:`wire` serialized, with each ``b64_json`` spliced in as it is.

        Base64 text needs no JSON escaping, so it is copied once into the body; ``orjson.dumps``
        of the whole dict would reserve room for escaping every character (about 13 bytes per
        base64 character: a 31 MB buffer for one 1024x1024 PNG), and such short-lived large
        blocks are what kept the process's memory high under load.
        """
        body = self.wire()
        items = body.pop("data")
        assert isinstance(items, list)
        chunks = [orjson.dumps(body)[:-1], b',"data":[']
        for index, item in enumerate(items):
            if index:
                chunks.append(b",")
            b64 = item.pop("b64_json", None)
            rest = orjson.dumps(item)
            if b64 is None:
                chunks.append(rest)
                continue
            chunks += [b'{"b64_json":"', b64.encode("ascii"), b'"}' if rest == b"{}" else b'",' + rest[1:]]
        chunks.append(b"]}")
        return b"".join(chunks)
