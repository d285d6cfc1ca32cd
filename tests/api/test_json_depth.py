"""How deep a JSON body nests (the image routes refuse more than 32 levels)."""

from __future__ import annotations

import orjson
import pytest

from app.api.images import json_depth


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("1", 0),
        ('"s"', 0),
        ("{}", 1),
        ("[]", 1),
        ('{"images": [{"image_url": "data:"}]}', 3),
        ('{"a": 1, "b": {"c": [1, [2, [3]]]}}', 5),
        ("[" * 1000 + "]" * 1000, 1000),
    ],
)
def test_depth(text: str, depth: int) -> None:
    assert json_depth(orjson.loads(text)) == depth


def test_a_wide_body_is_walked_without_recursion() -> None:
    wide = {"values": list(range(200_000)), "nested": [[{"x": [i]}] for i in range(1000)]}
    assert json_depth(wide) == 5
