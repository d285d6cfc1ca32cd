"""convert(): formats, compression, alpha, orientation, metadata, passthrough, exact size, limits."""

from __future__ import annotations

import asyncio
import base64
import io

import pytest
from PIL import Image, ImageCms, PngImagePlugin

from core.errors import InvalidRequestError, UpstreamError
from core.image_payload import ImagePayload
from core.image_probe import probe_header
from core.image_workers import ImageWorkers
from core.images import FormatName, looks_complete, sniff_media_type
from normalization.emulation.output_format import EncodedImage, OutputSpec, convert, render

MAX_PIXELS = 10_000_000
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, fmt, **params)
    return buffer.getvalue()


def noisy(size: tuple[int, int] = (96, 64)) -> Image.Image:
    base = Image.linear_gradient("L").resize(size).convert("RGB")
    noise = Image.effect_noise(size, 50).convert("RGB")
    return Image.blend(base, noise, 0.5)


def half_transparent(size: tuple[int, int] = (64, 32)) -> Image.Image:
    """Left half fully transparent, right half opaque blue."""
    img = Image.new("RGBA", size, (*BLUE, 255))
    img.paste((0, 0, 0, 0), (0, 0, size[0] // 2, size[1]))
    return img


def decoded(result: EncodedImage) -> Image.Image:
    img = Image.open(io.BytesIO(result.data))
    img.load()
    return img


def close_to(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 12) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


MAGIC: dict[FormatName, tuple[int, bytes]] = {
    "png": (0, b"\x89PNG\r\n\x1a\n"),
    "jpeg": (0, b"\xff\xd8\xff"),
    "gif": (0, b"GIF8"),
    "webp": (8, b"WEBP"),
    "avif": (4, b"ftypavif"),
}


@pytest.mark.parametrize("fmt", list(MAGIC))
def test_each_format_has_its_magic_bytes_and_media_type(fmt: FormatName) -> None:
    source = encode(noisy(), "PNG" if fmt != "png" else "JPEG")
    result = convert(source, OutputSpec(format=fmt), max_pixels=MAX_PIXELS)
    offset, magic = MAGIC[fmt]
    assert result.data[offset : offset + len(magic)] == magic
    assert sniff_media_type(result.data) == result.media_type == f"image/{fmt}"
    assert (result.width, result.height) == (96, 64) == decoded(result).size
    assert result.reencoded and not result.resized


def test_jpeg_compression_is_quality() -> None:
    source = encode(noisy((128, 128)), "PNG")
    low = convert(source, OutputSpec(format="jpeg", compression=10), max_pixels=MAX_PIXELS)
    high = convert(source, OutputSpec(format="jpeg", compression=90), max_pixels=MAX_PIXELS)
    assert len(low.data) < len(high.data)


def test_png_compression_maps_to_zlib_level_higher_is_larger() -> None:
    source = encode(Image.linear_gradient("L").resize((128, 128)), "JPEG")
    smallest = convert(source, OutputSpec(format="png", compression=0), max_pixels=MAX_PIXELS)
    stored = convert(source, OutputSpec(format="png", compression=100), max_pixels=MAX_PIXELS)
    assert len(smallest.data) < len(stored.data)
    assert decoded(smallest).tobytes() == decoded(stored).tobytes()


@pytest.mark.parametrize("fmt", ["png", "webp", "avif", "gif"])
def test_alpha_is_kept_where_the_format_holds_it(fmt: FormatName) -> None:
    source = encode(half_transparent(), "PNG")
    # compression forces a re-encode of png too; gif ignores it
    result = convert(source, OutputSpec(format=fmt, compression=95), max_pixels=MAX_PIXELS)
    img = decoded(result).convert("RGBA")
    assert img.getpixel((4, 16))[3] == 0  # type: ignore[index]
    opaque = img.getpixel((60, 16))
    assert isinstance(opaque, tuple)
    assert opaque[3] == 255
    assert close_to(opaque[:3], BLUE, tolerance=24)


def test_jpeg_is_flattened_on_white() -> None:
    source = encode(half_transparent(), "PNG")
    result = convert(source, OutputSpec(format="jpeg"), max_pixels=MAX_PIXELS)
    img = decoded(result)
    assert img.mode == "RGB"
    assert close_to(img.getpixel((4, 16)), (255, 255, 255))  # type: ignore[arg-type]
    assert close_to(img.getpixel((60, 16)), BLUE)  # type: ignore[arg-type]


def oriented_jpeg() -> bytes:
    """Stored 40x20, left half red, with EXIF orientation 6 (display rotated 90 degrees clockwise),
    a camera model, XMP and an ICC profile."""
    img = Image.new("RGB", (40, 20), BLUE)
    img.paste(RED, (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x0110] = "SecretCam 3000"
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description creator="Jane Doe"/></x:xmpmeta>'
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return encode(img, "JPEG", quality=95, exif=exif.tobytes(), xmp=xmp, icc_profile=icc)


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_exif_orientation_is_applied_and_metadata_stripped(fmt: FormatName) -> None:
    result = convert(oriented_jpeg(), OutputSpec(format=fmt), max_pixels=MAX_PIXELS)
    assert result.reencoded  # a jpeg -> jpeg with orientation 6 is not passed through
    img = decoded(result)
    assert img.size == (20, 40) == (result.width, result.height)
    # rotated clockwise: the stored left (red) half is now on top
    assert close_to(img.convert("RGB").getpixel((10, 5)), RED, tolerance=40)  # type: ignore[arg-type]
    assert close_to(img.convert("RGB").getpixel((10, 35)), BLUE, tolerance=40)  # type: ignore[arg-type]
    assert len(img.getexif()) == 0
    for leaked in (b"SecretCam", b"Jane Doe", b"xmpmeta", b"Exif"):
        assert leaked not in result.data
    assert "icc_profile" in img.info  # colour data is kept on purpose


def test_png_text_chunks_are_not_carried_over() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "prompt: a secret prompt")
    info.add_itxt("Comment", "internal note")
    source = encode(noisy(), "PNG", pnginfo=info)
    result = convert(source, OutputSpec(format="png", compression=50), max_pixels=MAX_PIXELS)
    assert b"secret prompt" not in result.data
    assert b"internal note" not in result.data
    assert b"tEXt" not in result.data and b"iTXt" not in result.data


@pytest.mark.parametrize("fmt", ["jpeg", "gif"])
def test_comments_are_not_carried_over(fmt: FormatName) -> None:
    # Pillow's JPEG and GIF encoders copy the source's comment unless told otherwise
    source = encode(noisy(), "JPEG", comment=b"made by SecretCam for Jane Doe")
    result = convert(source, OutputSpec(format=fmt, compression=80), max_pixels=MAX_PIXELS)
    assert result.reencoded
    assert b"SecretCam" not in result.data
    assert "comment" not in decoded(result).info


def test_bytes_pass_unchanged_when_format_and_size_already_match() -> None:
    source = encode(noisy(), "WEBP", quality=80)
    for target in (None, (96, 64)):
        result = convert(source, OutputSpec(format="webp", target=target), max_pixels=MAX_PIXELS)
        assert result.data is source
        assert (result.width, result.height, result.media_type) == (96, 64, "image/webp")
        assert not result.reencoded and not result.resized


def test_compression_forces_a_reencode_of_the_same_format() -> None:
    source = encode(noisy(), "JPEG", quality=95)
    result = convert(source, OutputSpec(format="jpeg", compression=20), max_pixels=MAX_PIXELS)
    assert result.reencoded and len(result.data) < len(source)


def stripes(size: tuple[int, int], vertical: bool) -> Image.Image:
    """Three equal stripes red, green, blue: left to right, or top to bottom."""
    img = Image.new("RGB", size)
    width, height = size
    for i, colour in enumerate((RED, GREEN, BLUE)):
        box = (
            (i * width // 3, 0, (i + 1) * width // 3, height)
            if vertical
            else (0, i * height // 3, width, (i + 1) * height // 3)
        )
        img.paste(colour, box)
    return img


def test_target_is_exact_scaled_to_cover_and_center_cropped() -> None:
    source = encode(stripes((300, 100), vertical=True), "PNG")
    result = convert(source, OutputSpec(format="png", target=(50, 50)), max_pixels=MAX_PIXELS)
    img = decoded(result).convert("RGB")
    assert img.size == (50, 50) and result.resized and result.reencoded
    # cover: height 100 -> 50, width 300 -> 150, of which the middle 50 (the green stripe) stays
    for corner in ((0, 0), (49, 0), (0, 49), (49, 49), (25, 25)):
        assert close_to(img.getpixel(corner), GREEN, tolerance=30)  # type: ignore[arg-type]


def test_target_upscales_to_cover() -> None:
    source = encode(stripes((60, 60), vertical=False), "PNG")
    result = convert(source, OutputSpec(format="jpeg", target=(240, 80)), max_pixels=MAX_PIXELS)
    img = decoded(result)
    assert img.size == (240, 80)
    # width 60 -> 240 (x4) gives height 240, of which the middle 80 (green) stays
    assert close_to(img.getpixel((120, 5)), GREEN, tolerance=30)  # type: ignore[arg-type]
    assert close_to(img.getpixel((120, 75)), GREEN, tolerance=30)  # type: ignore[arg-type]


def bitmap(size: tuple[int, int]) -> bytes:
    return encode(Image.new("1", size), "PNG")


@pytest.mark.parametrize("spec", [OutputSpec(format="png"), OutputSpec(format="jpeg")])
def test_pixel_limit_is_enforced_from_the_header(spec: OutputSpec) -> None:
    with pytest.raises(UpstreamError) as caught:
        convert(bitmap((2000, 1000)), spec, max_pixels=1_999_999)
    assert caught.value.code == "image_too_large"
    with pytest.raises(InvalidRequestError):
        convert(bitmap((2000, 1000)), spec, max_pixels=1_000_000, error_class=InvalidRequestError)


def test_pixel_limit_is_the_callers_not_pillows_global() -> None:
    # 100 M pixels is over Pillow's default MAX_IMAGE_PIXELS (about 89 M, warning) but within ours;
    # pytest turns any DecompressionBombWarning into an error.
    source = bitmap((10_000, 10_000))
    result = convert(source, OutputSpec(format="png"), max_pixels=100_000_000)
    assert not result.reencoded and (result.width, result.height) == (10_000, 10_000)


@pytest.mark.parametrize(
    "data",
    [b"", b"not an image at all", encode(noisy(), "PNG")[:200], b"\x89PNG\r\n\x1a\n" + b"\0" * 40],
    ids=["empty", "garbage", "truncated", "bad-header"],
)
def test_unreadable_bytes_raise_the_given_error(data: bytes) -> None:
    with pytest.raises(UpstreamError) as caught:
        convert(data, OutputSpec(format="jpeg"), max_pixels=MAX_PIXELS)
    assert caught.value.code == "invalid_image"
    assert caught.value.status_code == 502


def test_palette_and_16_bit_inputs_are_converted_sensibly() -> None:
    gif = encode(stripes((30, 30), vertical=True).convert("P"), "GIF")
    from_gif = decoded(convert(gif, OutputSpec(format="png", target=(60, 60)), max_pixels=MAX_PIXELS))
    assert close_to(from_gif.convert("RGB").getpixel((30, 30)), GREEN, tolerance=30)  # type: ignore[arg-type]
    sixteen = encode(Image.new("I;16", (8, 8), 32896), "PNG")  # 32896 = 128 * 257
    grey = decoded(convert(sixteen, OutputSpec(format="jpeg"), max_pixels=MAX_PIXELS))
    assert grey.mode == "L"
    assert grey.getpixel((4, 4)) in range(126, 131)


def test_render_converts_in_the_pool_off_the_event_loop() -> None:
    source = encode(noisy(), "PNG")
    spec = OutputSpec(format="webp", compression=50)
    workers = ImageWorkers()

    async def run() -> list[EncodedImage]:
        return await render(workers, [ImagePayload(data=source)] * 4, spec, max_pixels=MAX_PIXELS)

    try:
        results = asyncio.run(run())
        with pytest.raises(UpstreamError):
            asyncio.run(render(workers, [ImagePayload(data=b"junk")], spec, max_pixels=MAX_PIXELS))
    finally:
        workers.close()
    expected = convert(source, spec, max_pixels=MAX_PIXELS)
    assert all(result == expected for result in results)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF"])
def test_looks_complete_spots_any_cut(fmt: str) -> None:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 200, 30)).save(out, format=fmt)
    data = out.getvalue()
    media_type = sniff_media_type(data)
    assert media_type is not None
    assert looks_complete(data, media_type)
    assert looks_complete(data + b"\x00" * 8, media_type)
    for cut in (len(data) // 4, len(data) // 2, len(data) - 3):
        assert not looks_complete(data[:cut], media_type)


def test_render_hands_base64_text_on_without_decoding_it() -> None:
    png = encode(noisy(), "PNG")
    header = probe_header(png, max_pixels=MAX_PIXELS)
    text = base64.b64encode(png)
    # Broken in the middle: a decode would fail, so only a pass-through without one succeeds.
    broken = text[:400] + b"!!!!" + text[404:]
    workers = ImageWorkers()

    def run(spec: OutputSpec, max_pixels: int = MAX_PIXELS) -> EncodedImage:
        [out] = asyncio.run(render(workers, [ImagePayload(b64=broken, header=header)], spec, max_pixels=max_pixels))
        return out

    try:
        out = run(OutputSpec(format="png"))
        assert out.base64_text is broken and out.raw is None and not out.reencoded
        assert (out.media_type, out.width, out.height) == ("image/png", 96, 64)
        with pytest.raises(UpstreamError, match="invalid base64"):
            run(OutputSpec(format="webp"))  # a conversion needs the bytes
        with pytest.raises(UpstreamError) as caught:
            run(OutputSpec(format="png"), max_pixels=96 * 64 - 1)  # the cap holds from the header
        assert caught.value.code == "image_too_large"
        sized = run(OutputSpec(format="png", target=(96, 64)))
        assert sized.base64_text is broken
    finally:
        workers.close()
