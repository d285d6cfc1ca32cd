"""``ImagesResponse.wire_chunks``: the OpenAI JSON body, base64 spliced in unescaped, ``None`` fields left out."""

from __future__ import annotations

import base64

import orjson

from core.image_payload import ImagePayload
from normalization.response import ImageData, ImagesResponse, ResponseMetadata


def _response(data: list[ImageData]) -> ImagesResponse:
    metadata = ResponseMetadata(
        model="gpt-image-1", provider="openai", upstream_model="gpt-image-1", parameters={}, upstream_calls=1
    )
    return ImagesResponse(created=1_700_000_000, data=data, output_format="png", size="1024x1024", metadata=metadata)


def test_the_chunks_are_the_openai_body() -> None:
    image = bytes(range(256)) * 7  # every byte value: '+', '/' and '=' padding in the base64
    prompt = 'a "quoted" prompt\nwith ünïcode and \\ backslash'
    response = _response(
        [
            ImageData(image=ImagePayload(data=image), revised_prompt=prompt, seed=7),
            ImageData(url="https://example.test/i/abc.png?sig=x&exp=1"),
        ]
    )
    raw = b"".join(response.wire_chunks())
    body = orjson.loads(raw)
    b64 = base64.b64encode(image).decode()
    assert body["data"] == [
        {"b64_json": b64, "revised_prompt": prompt, "seed": 7},
        {"url": "https://example.test/i/abc.png?sig=x&exp=1"},
    ]
    assert (body["created"], body["output_format"], body["size"]) == (1_700_000_000, "png", "1024x1024")
    assert body["metadata"]["model"] == "gpt-image-1" and body["metadata"]["upstream_calls"] == 1
    assert b'"b64_json":"' + b64.encode() + b'"' in raw  # spliced in as is, not re-escaped


def test_without_images_or_extra_fields() -> None:
    assert orjson.loads(b"".join(_response([]).wire_chunks()))["data"] == []
    only_image = orjson.loads(b"".join(_response([ImageData(image=ImagePayload(data=b"ABC"))]).wire_chunks()))
    assert only_image["data"] == [{"b64_json": "QUJD"}]
