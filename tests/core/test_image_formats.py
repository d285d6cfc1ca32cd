"""The one table of image formats, and every list that must follow it."""

from __future__ import annotations

import io
from typing import get_args

import pytest
from PIL import Image

from core.images import (
    FORMAT_NAMES,
    IMAGE_FORMATS,
    INPUT_MEDIA_TYPES,
    FormatName,
    ImageFormat,
    ImageMediaType,
    format_for_extension,
    format_named,
    format_of,
    sniff_format,
    sniff_media_type,
)
from normalization.emulation.output_format import SAVE_OPTIONS
from normalization.hosting.store import NAME_PATTERN
from normalization.request import ImageRequest


def test_the_type_aliases_spell_the_table() -> None:
    assert get_args(FormatName) == FORMAT_NAMES
    assert set(get_args(ImageMediaType)) == {fmt.media_type for fmt in IMAGE_FORMATS}
    assert INPUT_MEDIA_TYPES == ("image/png", "image/jpeg", "image/webp")


@pytest.mark.parametrize("entry", IMAGE_FORMATS, ids=lambda fmt: fmt.name)
def test_each_format_round_trips_through_pillow_and_every_lookup(entry: ImageFormat) -> None:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(out, entry.pillow, **SAVE_OPTIONS[entry.name](None, None))
    data = out.getvalue()
    assert sniff_format(data) is entry and sniff_media_type(data) == entry.media_type
    assert format_named(entry.name) is entry is format_of(entry.media_type) is format_for_extension(entry.extension)
    assert NAME_PATTERN.fullmatch("A" * 32 + "." + entry.extension)
    assert ImageRequest(output_format=entry.name).output_format == entry.name


def test_every_output_format_has_an_encoder() -> None:
    assert set(SAVE_OPTIONS) == set(FORMAT_NAMES)


def test_unknown_bytes_and_extensions_are_none() -> None:
    assert sniff_format(b"GIF8") is None and sniff_format(b"") is None
    assert format_for_extension("jpg") is None and format_for_extension("exe") is None
