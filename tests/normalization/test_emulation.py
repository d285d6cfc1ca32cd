"""The emulation stage's modules, in process: fan-out, exact size, response format and the image host.

A store that fails like a full disk (``OSError(ENOSPC)`` at the store seam) shows what a ``url``
answer does then: a 503 ``image_store_unavailable``, inline images only when the client allowed
them, nothing left stored, and the host reporting the store unhealthy.
"""

from __future__ import annotations

import asyncio
import errno
from pathlib import Path

import pytest
from PIL import Image

from core.errors import ImageStoreUnavailableError, InvalidRequestError, UpstreamError
from core.images import ImageMediaType
from normalization.emulation.exact_size import check_output_pixels, cover
from normalization.emulation.fanout import FanOut, collect, split
from normalization.emulation.output_format import EncodedImage
from normalization.emulation.response_format import deliver
from normalization.hosting import DirectoryStore, ImageHost, LinkSigner, StoredImage, StoreHealth
from normalization.plan import EmulationPlan
from providers.base import GeneratedImage, ImageAdapter, ProviderResult, UpstreamCall

# --- count fan-out --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "native", "chunks"),
    [(1, 4, [1]), (4, 4, [4]), (5, 4, [3, 2]), (6, 4, [3, 3]), (10, 4, [4, 3, 3]), (3, 1, [1, 1, 1])],
)
def test_split_balances_n_over_the_fewest_calls(n: int, native: int, chunks: list[int]) -> None:
    assert split(n, native) == chunks


def call(index: int, expected: int = 1) -> UpstreamCall:
    return UpstreamCall(
        model_id="m", provider="p", upstream="u", mode="generate", payload={}, expected_images=expected, index=index
    )


def image(tag: int) -> GeneratedImage:
    return GeneratedImage(data=bytes([tag]), seed=tag)


class Recorder(ImageAdapter):
    """Answers after ``delay`` with ``call.expected_images`` images; fails the call with index ``fail``."""

    def __init__(self, delay: float = 0.01, fail: int | None = None) -> None:
        self.delay = delay
        self.fail = fail
        self.running = 0
        self.most = 0
        self.cancelled: list[int] = []

    async def run(self, call: UpstreamCall) -> ProviderResult:
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await asyncio.sleep(0 if call.index == self.fail else self.delay)
            if call.index == self.fail:
                raise UpstreamError("boom")
            return ProviderResult(images=tuple(image(call.index) for _ in range(call.expected_images)))
        except asyncio.CancelledError:
            self.cancelled.append(call.index)
            raise
        finally:
            self.running -= 1


async def test_fan_out_runs_calls_concurrently_within_the_per_request_bound() -> None:
    adapter = Recorder()
    results = await FanOut(3, asyncio.Semaphore(100)).run(adapter, [call(i) for i in range(7)])
    assert [result.images[0].seed for result in results] == list(range(7))
    assert adapter.most == 3


async def test_fan_out_holds_a_global_slot_per_call() -> None:
    adapter = Recorder()
    await FanOut(10, asyncio.Semaphore(2)).run(adapter, [call(i) for i in range(6)])
    assert adapter.most == 2


async def test_fan_out_is_all_or_error_and_cancels_the_siblings() -> None:
    adapter = Recorder(delay=5.0, fail=2)
    with pytest.raises(UpstreamError, match="boom"):
        await FanOut(10, asyncio.Semaphore(10)).run(adapter, [call(i) for i in range(4)])
    assert sorted(adapter.cancelled) == [0, 1, 3]


def test_collect_takes_exactly_what_each_call_expected() -> None:
    calls = [call(0, expected=2), call(1, expected=1)]
    results = [ProviderResult(images=(image(1), image(2), image(3))), ProviderResult(images=(image(4),))]
    assert [img.seed for img in collect(calls, results)] == [1, 2, 4]


def test_fewer_images_than_expected_is_an_upstream_failure() -> None:
    with pytest.raises(UpstreamError, match="returned 1 image"):
        collect([call(0, expected=2)], [ProviderResult(images=(image(1),))])


# --- exact size -----------------------------------------------------------------------------------


def test_output_pixels_within_both_caps_pass() -> None:
    check_output_pixels((100, 100), 10, max_pixels=10_000, max_request_pixels=100_000)


@pytest.mark.parametrize(("target", "n", "fragment"), [((101, 100), 1, "per image"), ((100, 100), 11, "per request")])
def test_output_pixels_over_a_cap_are_a_400_naming_size(target: tuple[int, int], n: int, fragment: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        check_output_pixels(target, n, max_pixels=10_000, max_request_pixels=100_000)
    assert (caught.value.param, caught.value.code) == ("size", "size_too_large")
    assert fragment in caught.value.message


def test_cover_scales_and_center_crops_to_exactly_the_target() -> None:
    source = Image.new("RGB", (200, 100), (255, 0, 0))
    source.paste((0, 0, 255), (0, 0, 50, 100))  # a blue band on the left that the crop removes
    fitted = cover(source, (50, 50))
    assert fitted.size == (50, 50)
    pixel = fitted.getpixel((0, 25))
    assert isinstance(pixel, tuple) and pixel[0] > 200 and pixel[2] < 60


# --- response format and the image host -----------------------------------------------------------


class FailingStore(DirectoryStore):
    """A file store whose ``fail_after``-th write onward fails as a full disk does."""

    def __init__(self, root: Path, fail_after: int = 0) -> None:
        super().__init__(root, ttl_seconds=3600)
        self.fail_after = fail_after
        self.writes = 0
        self.probes = 0

    async def put(self, data: bytes, media_type: ImageMediaType) -> StoredImage:
        self.writes += 1
        if self.writes > self.fail_after:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.root / "x.png"))
        return await super().put(data, media_type)

    async def health(self) -> StoreHealth:
        self.probes += 1
        return await super().health()


def host_for(store: DirectoryStore, clock: list[float] | None = None) -> ImageHost:
    now = clock or [0.0]
    return ImageHost(store, LinkSigner(b"k" * 32), health_ttl=5.0, clock=lambda: now[0])


def emulation(response_format: str, url_fallback: bool = False) -> EmulationPlan:
    return EmulationPlan.model_validate(
        {
            "n": 2,
            "response_format": response_format,
            "url_fallback": url_fallback,
            "output_format": "png",
            "output_compression": None,
            "target": None,
            "native_format": True,
        }
    )


SOURCES = [GeneratedImage(data=b"a", seed=1, revised_prompt="p"), GeneratedImage(data=b"b", seed=2)]
ENCODED = [
    EncodedImage(data=data, media_type="image/png", width=1, height=1, reencoded=False, resized=False)
    for data in (b"\x89PNG one", b"\x89PNG two")
]


async def test_b64_json_inlines_the_encoded_bytes(tmp_path: Path) -> None:
    store = FailingStore(tmp_path)
    delivered = await deliver(host_for(store), SOURCES, ENCODED, emulation("b64_json"), "http://gw")
    assert [(d.image and d.image.data, d.seed, d.revised_prompt, d.url) for d in delivered.data] == [
        (b"\x89PNG one", 1, "p", None),
        (b"\x89PNG two", 2, None, None),
    ]
    assert store.writes == 0 and delivered.warnings == ()


async def test_url_stores_each_image_behind_a_signed_link(tmp_path: Path) -> None:
    store = FailingStore(tmp_path, fail_after=10)
    delivered = await deliver(host_for(store), SOURCES, ENCODED, emulation("url"), "http://gw/")
    urls = [d.url or "" for d in delivered.data]
    assert all(url.startswith("http://gw/v1/images/") and "sig=" in url for url in urls)
    assert len(list(tmp_path.iterdir())) == 2 and delivered.data[0].image is None


async def test_a_store_that_cannot_write_is_a_503_and_nothing_is_left_stored(tmp_path: Path) -> None:
    store = FailingStore(tmp_path, fail_after=1)  # the first image is stored, the second fails
    host = host_for(store)
    with pytest.raises(ImageStoreUnavailableError) as caught:
        await deliver(host, SOURCES, ENCODED, emulation("url"), "http://gw")
    error = caught.value
    assert (error.status_code, error.code, error.param) == (503, "image_store_unavailable", "response_format")
    assert "no space left on device (ENOSPC)" in error.message and "x-pixelgate-url-fallback" in error.message
    assert str(tmp_path) not in error.message
    assert error.response_headers()["x-should-retry"] == "false"
    assert list(tmp_path.iterdir()) == []  # the image stored before the failure was withdrawn
    assert await host.health() == StoreHealth(writable=False, problem="no space left on device (ENOSPC)")


async def test_the_client_may_allow_inline_images_instead(tmp_path: Path) -> None:
    store = FailingStore(tmp_path)
    delivered = await deliver(host_for(store), SOURCES, ENCODED, emulation("url", url_fallback=True), "http://gw")
    assert [d.image and d.image.data for d in delivered.data] == [e.data for e in ENCODED]
    assert [d.url for d in delivered.data] == [None, None]
    [warning] = delivered.warnings
    assert (warning.param, warning.code) == ("response_format", "image_store_unavailable")
    assert "returned inline as b64_json" in warning.message


async def test_host_health_probes_at_most_once_per_ttl(tmp_path: Path) -> None:
    store = FailingStore(tmp_path, fail_after=10)
    clock = [100.0]
    host = host_for(store, clock)
    assert (await host.health()).writable and (await host.health()).writable
    assert store.probes == 1
    clock[0] += 5.0
    assert (await host.health()).writable and store.probes == 2


async def test_a_failed_publish_marks_the_store_unhealthy_until_the_ttl_passes(tmp_path: Path) -> None:
    store = FailingStore(tmp_path)
    clock = [0.0]
    host = host_for(store, clock)
    with pytest.raises(ImageStoreUnavailableError):
        await host.publish(b"\x89PNG", "image/png", "http://gw")
    clock[0] += 4.9
    assert not (await host.health()).writable and store.probes == 0
    clock[0] += 0.2
    # The probe's few bytes still fit: a store that refuses only large files is healthy again for
    # small ones, and the next failed write marks it again.
    assert (await host.health()).writable and store.probes == 1
