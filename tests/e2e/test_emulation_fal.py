"""Issue 5 end to end against fal: the openai SDK -> a live pixelgate -> the fake fal server.

What pixelgate emulates for a fal model: ``n`` beyond the native maximum (parallel calls, seeds,
all or error, bounded fan-out), output formats (asked natively when fal has them, converted
otherwise, passed through untouched when already right), exact size, EXIF orientation and metadata,
and signed links. The same behaviors against the sandbox are in ``test_output_formats.py`` and
``test_hosted_links.py``.
"""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import openai
import pytest
from PIL import Image

from normalization.catalog import ModelEntry
from tests.conftest import TEST_KEY, upstream_settings
from tests.e2e.conftest import FAL_KEY
from tests.e2e.test_output_formats import MAGIC
from tests.fakes.fake_fal import FakeFal
from tests.fakes.fal_images import ROTATED_MARK, render
from tests.images import png_bytes
from tests.live import LiveGateway

PER_REQUEST = 2
GLOBAL = 3
ONE_PER_CALL = ModelEntry.model_validate(
    {
        "id": "one-per-call",
        "provider": "fal",
        "upstream": "fal-ai/one-per-call",
        "modes": ["generate"],
        "size": {"kind": "dimensions", "field": "image_size", "encoding": "object", "min_side": 16},
        "output_format": {"field": "output_format", "values": ["jpeg", "png"], "default": "jpeg"},
        "params": {"seed": {"type": "integer"}},
    }
)


@pytest.fixture(scope="module")
def fal_gateway(fal_server: FakeFal, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    settings = upstream_settings(
        tmp_path_factory.mktemp("emul-fal"),
        fal=fal_server,
        fal_key=FAL_KEY,
        max_retries=1,
        request_timeout_seconds=20,
        max_fanout_per_request=PER_REQUEST,
        max_fanout_global=GLOBAL,
        models=[ONE_PER_CALL],
    )
    with LiveGateway(settings) as live:
        yield live


def _images(result: openai.types.ImagesResponse) -> list[bytes]:
    assert result.data is not None
    return [base64.b64decode(item.b64_json or "") for item in result.data]


def _metadata(result: openai.types.ImagesResponse) -> dict[str, Any]:
    metadata = (result.model_extra or {})["metadata"]
    assert isinstance(metadata, dict)
    return metadata


def _generate(
    sdk: openai.OpenAI,
    *,
    model: str = "hidream-i1-full",
    prompt: str = "a lighthouse",
    n: int | None = None,
    size: Any = None,
    output_format: Any = None,
    output_compression: int | None = None,
    seed: int | None = None,
) -> openai.types.ImagesResponse:
    """A b64_json generation; ``None`` fields go out as null, which means unset (contract)."""
    result: openai.types.ImagesResponse = sdk.images.generate(
        model=model,
        prompt=prompt,
        n=n,
        size=size,
        output_format=output_format,
        output_compression=output_compression,
        response_format="b64_json",
        extra_body={} if seed is None else {"seed": seed},
    )
    return result


# --- output_format: asked natively, converted, or passed through ---------------------------------


@pytest.mark.parametrize(
    ("fmt", "asked"), [("png", "png"), ("jpeg", "jpeg"), ("webp", "png"), ("gif", "png"), ("avif", "png")]
)
def test_every_format_has_its_magic_bytes_and_fal_is_asked_natively_when_it_can(
    sdk: openai.OpenAI, fake: FakeFal, fmt: str, asked: str
) -> None:
    result = _generate(sdk, size="160x96", output_format=fmt)
    (data,) = _images(result)
    assert MAGIC[fmt](data), data[:16]
    assert result.output_format == fmt and result.size == "160x96"
    # jpeg and png are fal's own formats: asked for by name; the others are made from a lossless png.
    assert [s.payload["output_format"] for s in fake.submissions] == [asked]
    handling = _metadata(result)["parameters"]["output_format"]
    assert handling["behavior"] == ("passthrough" if asked == fmt else "emulated")
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == (160, 96)


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_upstream_bytes_already_right_are_never_reencoded(sdk: openai.OpenAI, fmt: str) -> None:
    result = _generate(sdk, size="256x192", output_format=fmt, seed=77)
    (data,) = _images(result)
    # Exactly what the fake fal served for seed 77 at that size, byte for byte.
    assert data == render(256, 192, 77, png=fmt == "png")
    assert _metadata(result)["converted"] is False
    assert _metadata(result)["resized"] is False


def test_jpeg_compression_10_is_smaller_than_90(sdk: openai.OpenAI, fake: FakeFal) -> None:
    sizes = {}
    for compression in (10, 90):
        result = _generate(sdk, size="512x512", output_format="jpeg", output_compression=compression, seed=5)
        (data,) = _images(result)
        assert MAGIC["jpeg"](data)
        parameters = _metadata(result)["parameters"]
        assert parameters["output_compression"]["behavior"] == "emulated"
        # fal has jpeg but no compression setting: pixelgate encodes once, from a lossless png.
        assert parameters["output_format"]["behavior"] == "emulated"
        sizes[compression] = len(data)
    assert sizes[10] < sizes[90]
    assert [s.payload["output_format"] for s in fake.submissions] == ["png", "png"]


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_exif_orientation_is_applied_and_metadata_stripped(sdk: openai.OpenAI, fmt: str) -> None:
    # The fake stores the pixels sideways (96x160) with EXIF orientation 6, a camera make, a comment
    # and XMP: the client gets the upright 160x96 image with none of it.
    result = _generate(sdk, prompt="[fake:exif]", size="160x96", output_format=fmt)
    (data,) = _images(result)
    assert MAGIC[fmt](data)
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == (160, 96)
        assert len(image.getexif()) == 0
        assert not {"exif", "comment", "Comment", "xmp", "XML:com.adobe.xmp"} & set(image.info)
        rgb = image.convert("RGB")
        top_right, top_left = rgb.getpixel((155, 4)), rgb.getpixel((4, 4))
    assert isinstance(top_right, tuple) and isinstance(top_left, tuple)
    assert all(abs(a - b) < 40 for a, b in zip(top_right, ROTATED_MARK, strict=True)), top_right
    assert top_left != top_right
    assert b"FakeCam" not in data and b"secret note" not in data
    assert _metadata(result)["converted"] is True


# --- exact size -------------------------------------------------------------------------------------


def test_exact_size_is_fitted_on_a_nearest_ratio_model_and_said_in_metadata(sdk: openai.OpenAI, fake: FakeFal) -> None:
    # flux-pro-kontext only takes an aspect-ratio enum: 128x128 becomes "1:1" upstream; the fake
    # answers at the input's 160x96, and pixelgate fits that to exactly 128x128.
    result = sdk.images.edit(
        model="flux-pro-kontext",
        image=("in.png", png_bytes(160, 96), "image/png"),
        prompt="x",
        size="128x128",
        response_format="b64_json",
    )
    (data,) = _images(result)
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == (128, 128)
    assert [s.payload["aspect_ratio"] for s in fake.submissions] == ["1:1"]
    metadata = _metadata(result)
    assert metadata["resized"] is True
    assert metadata["parameters"]["size"]["behavior"] == "emulated"
    assert result.size == "128x128"


def test_exact_size_on_a_model_without_size_control(sdk: openai.OpenAI, fake: FakeFal) -> None:
    result = sdk.images.edit(
        model="hidream-e1-1",
        image=("in.png", png_bytes(160, 96), "image/png"),
        prompt="x",
        size="64x80",
        response_format="b64_json",
    )
    (data,) = _images(result)
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == (64, 80)
    assert "image_size" not in fake.submissions[0].payload
    assert _metadata(result)["resized"] is True


# --- n: native count, then parallel calls ------------------------------------------------------------


def test_n_6_on_a_native_maximum_of_4_is_two_balanced_calls(sdk: openai.OpenAI, fake: FakeFal) -> None:
    result = _generate(sdk, n=6, size="96x64", output_format="png")
    assert len(set(_images(result))) == 6
    assert [s.payload["num_images"] for s in fake.submissions] == [3, 3]
    assert _metadata(result)["upstream_calls"] == 2
    assert _metadata(result)["parameters"]["n"]["behavior"] == "emulated"


def test_n_6_with_a_seed_is_one_call_per_image_each_reporting_its_exact_seed(sdk: openai.OpenAI, fake: FakeFal) -> None:
    result = _generate(sdk, n=6, size="96x64", output_format="png", seed=100)
    images = _images(result)
    assert len(set(images)) == 6
    # fal reports one seed per batch and documents no per-image one, so with a seed every image is a
    # call of its own: image i is exactly what seed 100 + i gives, and says so.
    payloads = sorted((s.payload for s in fake.submissions), key=lambda p: str(p["seed"]))
    assert [(p["num_images"], p["seed"]) for p in payloads] == [(1, 100 + i) for i in range(6)]
    assert _metadata(result)["upstream_calls"] == 6
    assert result.data is not None
    assert [(item.model_extra or {}).get("seed") for item in result.data] == [100 + i for i in range(6)]
    # Each reported seed reproduces its image alone, and the whole request repeats exactly.
    fake.reset()
    assert _images(_generate(sdk, size="96x64", output_format="png", seed=103)) == [images[3]]
    fake.reset()
    assert _images(_generate(sdk, n=6, size="96x64", output_format="png", seed=100)) == images


def test_one_failed_call_fails_the_request_and_cancels_the_others(sdk: openai.OpenAI, fake: FakeFal) -> None:
    # n=8 over a native maximum of 4: two calls. One never finishes, the other fails after it was
    # accepted: the client gets the failure, no partial result, and the running job is cancelled.
    fake.next_scenarios = ["never", "completed_error"]
    with pytest.raises(openai.APIStatusError) as caught:
        _generate(sdk, n=8, size="96x64")
    assert caught.value.status_code == 502
    body = caught.value.response.json()
    assert set(body) == {"error"} and body["error"]["code"] == "upstream_error"
    assert len(fake.submissions) == 2
    never = next(s for s in fake.submissions if s.scenario == "never")
    assert fake.cancelled == [never.request_id]


def _in_flight_at_most(fake: FakeFal, bound: int, latency: float) -> None:
    """Job k+bound can only have started once one of the bound jobs before it finished."""
    starts = sorted(s.at for s in fake.submissions)
    gaps = [later - earlier for earlier, later in zip(starts, starts[bound:], strict=False)]
    assert gaps and min(gaps) >= latency * 0.9, gaps


def test_fan_out_is_bounded_per_request(sdk: openai.OpenAI, fake: FakeFal) -> None:
    result = _generate(sdk, model="one-per-call", n=4, prompt="[fake:slow:0.3]", size="32x32")
    assert len(_images(result)) == 4
    assert len(fake.submissions) == 4
    _in_flight_at_most(fake, PER_REQUEST, 0.3)


def test_fan_out_is_bounded_globally(fal_gateway: LiveGateway, fake: FakeFal) -> None:
    outcomes: list[int] = []

    def one() -> None:
        with openai.OpenAI(base_url=fal_gateway.api_url, api_key=TEST_KEY, max_retries=0, timeout=30) as client:
            outcomes.append(
                len(_images(_generate(client, model="one-per-call", n=2, prompt="[fake:slow:0.3]", size="32x32")))
            )

    threads = [threading.Thread(target=one) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert outcomes == [2, 2, 2]
    assert len(fake.submissions) == 6
    _in_flight_at_most(fake, GLOBAL, 0.3)


# --- response_format=url -------------------------------------------------------------------------------


def test_default_links_fetch_without_authorization_and_refuse_tampering(
    sdk: openai.OpenAI, fal_gateway: LiveGateway
) -> None:
    result = sdk.images.generate(model="hidream-i1-full", prompt="x", size="96x64", n=2, output_format="webp")
    assert result.data is not None and len(result.data) == 2
    urls = [item.url for item in result.data]
    assert all(isinstance(url, str) and url.startswith(fal_gateway.base_url + "/v1/images/") for url in urls)
    for url in urls:
        assert url is not None
        response = httpx.get(url, timeout=10)  # no Authorization header
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/webp"
        assert MAGIC["webp"](response.content)
    assert urls[0] is not None
    parts = urlsplit(urls[0])
    query = parse_qs(parts.query)
    forged = httpx.get(
        f"{fal_gateway.base_url}{parts.path}", params={"expires": query["expires"][0], "sig": "0" * 64}, timeout=10
    )
    assert forged.status_code == 403
    assert forged.json()["error"]["code"] == "invalid_signature"
