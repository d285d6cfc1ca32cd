"""The fal submit body spliced from bytes is byte for byte what ``json=`` encoding sends."""

from __future__ import annotations

import base64
import itertools
import json

import httpx
from hypothesis import given
from hypothesis import strategies as st
from pydantic import JsonValue

from core.images import probe_input
from providers.fal.submit_body import SubmitBody, base64_chunks, encode_json
from tests.images import png_bytes


def _httpx_json(payload: dict[str, JsonValue]) -> bytes:
    return httpx.Request("POST", "http://127.0.0.1/", json=payload).read()


def test_inline_images_splice_to_the_bytes_httpx_would_send() -> None:
    first = probe_input(png_bytes(64, 48), param="image", max_pixels=10**8)
    second = probe_input(png_bytes(32, 32, (200, 10, 10)), param="image", max_pixels=10**8)
    body = SubmitBody()
    payload: dict[str, JsonValue] = {
        "mask_url": body.inline(second),
        "prompt": 'a "quoted" prompt, ünïcode \\ and a newline\n',
        "image_urls": [body.inline(first), "https://example.invalid/x.png"],
    }
    plain: dict[str, JsonValue] = {
        "mask_url": "data:image/png;base64," + base64.b64encode(second.data).decode("ascii"),
        "prompt": payload["prompt"],
        "image_urls": [
            "data:image/png;base64," + base64.b64encode(first.data).decode("ascii"),
            "https://example.invalid/x.png",
        ],
    }
    encoded = bytes(body.encode(payload))
    assert encoded == _httpx_json(plain)
    assert json.loads(encoded) == plain


def test_a_payload_without_inline_images_is_plain_json() -> None:
    payload: dict[str, JsonValue] = {"prompt": "a lighthouse", "num_images": 2}
    assert bytes(SubmitBody().encode(payload)) == encode_json(payload) == _httpx_json(payload)


def test_a_placeholder_used_twice_still_encodes_to_the_plain_json() -> None:
    image = probe_input(png_bytes(16, 16), param="image", max_pixels=10**8)
    body = SubmitBody()
    uri = body.inline(image)
    payload: dict[str, JsonValue] = {"image_url": uri, "prompt": uri}
    expected = "data:image/png;base64," + base64.b64encode(image.data).decode("ascii")
    assert json.loads(bytes(body.encode(payload))) == {"image_url": expected, "prompt": expected}


@given(data=st.binary(max_size=64), cuts=st.lists(st.integers(min_value=0, max_value=64), max_size=6))
def test_base64_of_pieces_is_the_base64_of_the_whole(data: bytes, cuts: list[int]) -> None:
    edges = [0, *sorted(min(cut, len(data)) for cut in cuts), len(data)]
    pieces = tuple(memoryview(data)[start:end] for start, end in itertools.pairwise(edges))
    encoded = base64_chunks(pieces)
    assert b"".join(encoded) == base64.b64encode(data)
    assert all(encoded)  # no empty piece sent as a chunk


def test_an_image_that_arrived_in_pieces_is_sent_as_the_same_bytes() -> None:
    png = png_bytes(40, 30)
    whole = probe_input(png, param="image", max_pixels=10**8)
    view = memoryview(png)
    pieces = probe_input((view[:5], view[5:6], view[6:100], view[100:]), param="image", max_pixels=10**8)
    assert len(pieces.chunks) == 4  # kept as it arrived, not joined
    sent = []
    for image in (whole, pieces):
        body = SubmitBody()
        sent.append(bytes(body.encode({"image_url": body.inline(image)})))
    assert sent[0] == sent[1] == _httpx_json({"image_url": "data:image/png;base64," + base64.b64encode(png).decode()})
