"""``ImagesResponse.wire_chunks``: the same JSON as ``wire()``, with base64 spliced in unescaped."""

from __future__ import annotations

import base64

import orjson

from normalization.response import ImageData, ImagesResponse, ResponseMetadata


def _response(data: list[ImageData]) -> ImagesResponse:
    metadata = ResponseMetadata(
        model="gpt-image-1", provider="openai", upstream_model="gpt-image-1", parameters={}, upstream_calls=1
    )
    return ImagesResponse(created=1_700_000_000, data=data, output_format="png", size="1024x1024", metadata=metadata)


def test_wire_bytes_is_the_wire_dict_as_json() -> None:
    b64 = base64.b64encode(bytes(range(256)) * 7).decode()  # every byte value, '+', '/' and '=' padding
    response = _response(
        [
            ImageData(
                image=bytes(range(256)) * 7, revised_prompt='a "quoted" prompt\nwith ünïcode and \\ backslash', seed=7
            ),
            ImageData(b64_json="QQ=="),
            ImageData(url="https://example.test/i/abc.png?sig=x&exp=1"),
        ]
    )
    raw = b"".join(response.wire_chunks())
    assert orjson.loads(raw) == response.wire()
    assert orjson.loads(raw)["data"][0]["b64_json"] == b64
    assert b'"b64_json":"' + b64.encode() + b'"' in raw


def test_wire_bytes_without_images_or_extra_fields() -> None:
    for data in ([], [ImageData(b64_json="QUJD")], [ImageData(image=b"ABC")]):
        response = _response(data)
        assert orjson.loads(b"".join(response.wire_chunks())) == response.wire()
