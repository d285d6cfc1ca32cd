"""The header probe (format, size, orientation from the first bytes) and base64 kept as text.

Every header read is compared with what Pillow reads from the same bytes; truncated headers are
refused when the bytes are said to be whole, and asked to be read again when they are a prefix.
"""

from __future__ import annotations

import base64
import io

import httpx
import pytest
from PIL import Image

from core.errors import InvalidRequestError, UpstreamError
from core.image_payload import ImagePayload, base64_ends, base64_size
from core.image_probe import ImageHeader, check_pixels, probe_header, read_header
from core.images import HEADER_PREFIX_BYTES, ImageProblem, probe_input
from core.provider_settings import ProviderSettings
from providers.base import ResultLimits
from providers.toolkit.results import ResultReader
from tests.fakes.fal_images import render_rotated
from tests.images import bilevel_png


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def _rgb(width: int, height: int) -> Image.Image:
    return Image.linear_gradient("L").resize((width, height)).convert("RGB")


SAMPLES: dict[str, tuple[bytes, str]] = {
    "png": (_save(_rgb(37, 21), "PNG"), "image/png"),
    "png-palette": (_save(_rgb(37, 21).convert("P"), "PNG"), "image/png"),
    "png-interlaced-16bit": (_save(Image.new("I;16", (5, 3)), "PNG"), "image/png"),
    "jpeg": (_save(_rgb(37, 21), "JPEG"), "image/jpeg"),
    "jpeg-progressive": (_save(_rgb(37, 21), "JPEG", progressive=True), "image/jpeg"),
    "jpeg-gray": (_save(_rgb(37, 21).convert("L"), "JPEG"), "image/jpeg"),
    "gif": (_save(_rgb(37, 21).convert("P"), "GIF"), "image/gif"),
    "webp-lossy": (_save(_rgb(37, 21), "WEBP", quality=80), "image/webp"),
    "webp-lossless": (_save(_rgb(37, 21), "WEBP", lossless=True), "image/webp"),
    "webp-alpha": (_save(_rgb(37, 21).convert("RGBA"), "WEBP", quality=80), "image/webp"),
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_the_header_says_what_pillow_says(name: str) -> None:
    data, media_type = SAMPLES[name]
    with Image.open(io.BytesIO(data)) as img:
        expected = img.size
    header = read_header(data)
    assert header == ImageHeader(media_type=media_type, width=expected[0], height=expected[1], upright=True)
    assert read_header(data[:HEADER_PREFIX_BYTES], complete=False) == header


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_a_truncated_header_is_refused_when_whole_and_read_again_when_a_prefix(name: str) -> None:
    data, _ = SAMPLES[name]
    cuts = [n for n in (1, 8, 11, 16, 20, 25, 29, 32) if n < len(data)]
    for cut in cuts:
        if read_header(data[:cut], complete=False) is not None:
            continue  # this format's header is complete within `cut` bytes
        with pytest.raises(ImageProblem):
            read_header(data[:cut])
    with pytest.raises(ImageProblem):
        read_header(data[:9])


def test_a_corrupt_png_header_is_refused() -> None:
    data = bytearray(SAMPLES["png"][0])
    data[20] ^= 0x01  # the width, under the IHDR checksum
    with pytest.raises(ImageProblem, match="could not be read"):
        read_header(bytes(data))
    with pytest.raises(ImageProblem, match="unknown type"):
        read_header(b"GIF80a" + bytes(20))
    with pytest.raises(ImageProblem, match="empty"):
        read_header(b"GIF89a\x00\x00\x05\x00" + bytes(20))


@pytest.mark.parametrize("png", [False, True])
def test_exif_orientation_makes_an_image_not_upright(png: bool) -> None:
    rotated = render_rotated(48, 32, 0, png)
    header = read_header(rotated)
    assert header is not None and not header.upright
    with Image.open(io.BytesIO(rotated)) as img:
        assert (header.width, header.height) == img.size  # the stored size, before rotation
    exif = Image.Exif()
    exif[0x0112] = 1
    upright = _save(_rgb(20, 10), "JPEG", exif=exif.tobytes())
    assert read_header(upright) == ImageHeader(media_type="image/jpeg", width=20, height=10, upright=True)


def test_avif_is_left_to_pillow_and_the_pixel_cap_holds() -> None:
    avif = _save(_rgb(40, 30), "AVIF")
    assert read_header(avif) is None
    expected = ImageHeader(media_type="image/avif", width=40, height=30, upright=True)
    assert probe_header(avif, max_pixels=1200) == expected
    with pytest.raises(ImageProblem) as caught:
        probe_header(avif, max_pixels=1199)
    assert caught.value.code == "image_too_large"
    # A decompression bomb is refused from its header: 64 MP in a few kilobytes, never decoded.
    bomb = bilevel_png(8000, 8000)
    with pytest.raises(ImageProblem, match="over the 1000000-pixel limit"):
        probe_header(bomb, max_pixels=1_000_000)
    header = read_header(bomb)
    assert header is not None and header.pixels == 64_000_000
    with pytest.raises(ImageProblem):
        check_pixels(header, 63_999_999)


def test_base64_ends_decode_only_the_ends() -> None:
    data = bytes(range(256)) * 400
    text = base64.b64encode(data)
    head, tail = base64_ends(text, 100, 50)
    assert data.startswith(head) and len(head) >= 100 and data.endswith(tail) and len(tail) >= 50
    assert base64_size(text) == len(data) and base64_size(base64.b64encode(data[:-1])) == len(data) - 1
    with pytest.raises(ValueError):
        base64_ends(text[:-1], 100, 50)  # not padded
    with pytest.raises(ValueError):
        base64_ends(b"!!!!" + text[4:], 100, 50)
    payload = ImagePayload(b64=text)
    assert payload.data == data and payload.base64_text is text and payload.size == len(data)
    assert ImagePayload(data=data).base64_text == text
    with pytest.raises(ValueError):
        ImagePayload()
    with pytest.raises(UpstreamError, match="invalid base64"):
        _ = ImagePayload(b64=text[:1000] + b"!!!!" + text[1004:]).data


def _reader(client: httpx.AsyncClient, *, max_pixels: int = 10_000_000) -> ResultReader:
    limits = ResultLimits(max_pixels=max_pixels, max_bytes=10_000_000)
    return ResultReader.for_provider(client, ProviderSettings(kind="test"), limits, own_urls=(), who="test")


async def test_base64_results_keep_their_text() -> None:
    png = SAMPLES["png"][0]
    text = base64.b64encode(png).decode()
    async with httpx.AsyncClient() as client:
        reader = _reader(client)
        checked = reader.from_base64(text)
        assert checked.raw is None and checked.b64 == text.encode()
        assert checked.header == read_header(png)
        uri = await reader.from_reference("data:image/png;base64," + text)
        assert uri.b64 == text.encode() and uri.data == png
        with pytest.raises(UpstreamError, match="truncated"):
            reader.from_base64(base64.b64encode(png[:-16]).decode())
        with pytest.raises(UpstreamError, match="over the pixel limit"):
            _reader(client, max_pixels=37 * 21 - 1).from_base64(text)
        with pytest.raises(UpstreamError, match="not an image"):
            reader.from_base64(base64.b64encode(b"<html>" + bytes(100)).decode())


async def test_a_jpeg_whose_header_lies_beyond_the_prefix_is_read_whole() -> None:
    # A 100 kB ICC profile puts the frame header past the first HEADER_PREFIX_BYTES.
    jpeg = _save(_rgb(30, 20), "JPEG", icc_profile=bytes(100_000))
    assert read_header(jpeg[:HEADER_PREFIX_BYTES], complete=False) is None
    async with httpx.AsyncClient() as client:
        checked = _reader(client).from_base64(base64.b64encode(jpeg).decode())
    assert checked.b64 == base64.b64encode(jpeg)
    assert checked.header == ImageHeader(media_type="image/jpeg", width=30, height=20, upright=True)


def _in_pieces(data: bytes, size: int) -> tuple[memoryview, ...]:
    view = memoryview(data)
    return tuple(view[start : start + size] for start in range(0, len(data), size))


@pytest.mark.parametrize("piece_bytes", [1, 1000, 64 * 1024])
def test_an_input_in_pieces_reads_as_the_whole_and_stays_in_pieces(piece_bytes: int) -> None:
    # A client's multipart part arrives in pieces; a big ICC profile puts a JPEG's frame header
    # past the prefix the pieces are first read from, so that one is read whole.
    images = [_save(_rgb(37, 21), "PNG"), _save(_rgb(30, 20), "JPEG", icc_profile=bytes(100_000))]
    for data in images:
        pieces = _in_pieces(data, piece_bytes)
        whole = probe_input(data, param="image", max_pixels=10**6)
        piecewise = probe_input(pieces, param="image", max_pixels=10**6)
        assert (piecewise.media_type, piecewise.width, piecewise.height) == (
            whole.media_type,
            whole.width,
            whole.height,
        )
        assert piecewise.chunks is pieces and piecewise.data == data


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"GIF89a" + bytes(200_000), "unsupported_file_mimetype"),
        (_save(_rgb(37, 21), "PNG")[:20], "invalid_image"),
        (_save(_rgb(3000, 3000), "PNG"), "image_too_large"),
    ],
)
def test_an_input_in_pieces_is_refused_as_the_whole_is(data: bytes, code: str) -> None:
    errors = []
    for given in (data, _in_pieces(data, 4096)):
        with pytest.raises(InvalidRequestError) as caught:
            probe_input(given, param="image", max_pixels=10**6)
        errors.append((caught.value.code, caught.value.message))
    assert errors[0] == errors[1] and errors[0][0] == code
    with pytest.raises(InvalidRequestError, match="is empty"):
        probe_input((), param="image", max_pixels=10**6)
