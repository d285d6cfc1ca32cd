"""An OpenAI images body: each ``b64_json`` cut from the raw bytes, everything else parsed as JSON."""

from __future__ import annotations

import orjson
import pytest

from core.errors import UpstreamError
from providers.openai.results import parse_body


def test_each_b64_json_is_taken_as_bytes_and_the_rest_parsed() -> None:
    body = orjson.dumps(
        {
            "created": 1,
            "data": [
                {"b64_json": "QUJD", "revised_prompt": 'say "b64_json": "x"'},
                {"url": "https://cdn.test/a.png", "revised_prompt": "b64_json"},
                {"revised_prompt": "p", "b64_json": "REVG"},
            ],
            "usage": {"total_tokens": 3},
        }
    )
    items = parse_body(body).data
    assert [item.b64_json for item in items] == [b"QUJD", None, b"REVG"]
    # Views into the body, not copies of 2-3 MB strings.
    assert isinstance(items[0].b64_json, memoryview) and items[0].b64_json.obj is body
    assert [item.revised_prompt for item in items] == ['say "b64_json": "x"', "b64_json", "p"]
    assert items[1].url == "https://cdn.test/a.png"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"data":[{"b64_json" : "QU\\/D"}]}', "QU/D"),  # an escaped slash: parsed as JSON
        (b'{"data":[{"b64_json":"QUJD","extra":{"b64_json":"QQ=="}}]}', "QUJD"),  # a key elsewhere
    ],
)
def test_a_body_that_cannot_be_cut_cleanly_is_parsed_whole(body: bytes, expected: str) -> None:
    [item] = parse_body(body).data
    assert item.b64_json == expected


@pytest.mark.parametrize("body", [b'{"data":[{"b64_json":"QUJD}]}', b'{"data":[]}', b'{"data":[{"b64_json":"QUJD"}]'])
def test_a_broken_body_is_an_upstream_error(body: bytes) -> None:
    with pytest.raises(UpstreamError):
        parse_body(body)
