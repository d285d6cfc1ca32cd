"""Conversion overhead: ``normalization.imaging.convert`` against calling Pillow directly.

For each output format at 1024x1024 and 2048x2048, a photo-like test image (gradients, shapes and
seeded noise) is encoded as PNG, like an upstream result; then ``convert`` and a bare Pillow
pipeline (open, convert mode if needed, save with the same parameters) run on the same bytes,
interleaved, and the medians are compared. Target: overhead at most 10%.

``--pools`` also compares a thread pool, a process pool and serial execution for a batch of
conversions (is the GIL a bottleneck?).

Run: ``PYTHONPATH=. python bench/bench_convert.py [--runs 5] [--pools]``
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from functools import partial

from PIL import Image, ImageDraw

from normalization.imaging import (
    DEFAULT_AVIF_QUALITY,
    DEFAULT_JPEG_QUALITY,
    DEFAULT_PNG_COMPRESS_LEVEL,
    DEFAULT_WEBP_QUALITY,
    OutputFormat,
    OutputSpec,
    convert,
)

MAX_PIXELS = 64_000_000
SEED = 20240501


def photo_like(size: int, seed: int = SEED) -> bytes:
    """Deterministic RGB image with smooth regions, edges and sensor-like noise, as PNG bytes."""
    rng = random.Random(seed)
    gradient = Image.linear_gradient("L").resize((size, size))
    radial = Image.radial_gradient("L").resize((size, size))
    img = Image.merge("RGB", (gradient, gradient.rotate(90), radial))
    draw = ImageDraw.Draw(img)
    for _ in range(24):
        x, y = rng.randrange(size), rng.randrange(size)
        r = rng.randrange(size // 20, size // 4)
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    noise = Image.frombytes("RGB", (size, size), rng.randbytes(size * size * 3))
    img = Image.blend(img, noise, 0.12)
    buffer = io.BytesIO()
    img.save(buffer, "PNG")
    return buffer.getvalue()


def pillow_direct(data: bytes, fmt: str, compression: int | None) -> bytes:
    """The baseline: what any code must do at least to produce the same output."""
    with Image.open(io.BytesIO(data)) as img:
        rgb = img if img.mode in ("RGB", "RGBA", "L") else img.convert("RGB")
        out = io.BytesIO()
        if fmt == "png":
            level = DEFAULT_PNG_COMPRESS_LEVEL if compression is None else round((100 - compression) * 9 / 100)
            rgb.save(out, "PNG", compress_level=level)
        elif fmt == "jpeg":
            rgb.save(out, "JPEG", quality=DEFAULT_JPEG_QUALITY if compression is None else compression)
        elif fmt == "webp":
            rgb.save(out, "WEBP", quality=DEFAULT_WEBP_QUALITY if compression is None else compression)
        elif fmt == "avif":
            rgb.save(out, "AVIF", quality=DEFAULT_AVIF_QUALITY if compression is None else compression)
        else:
            rgb.save(out, "GIF")
        return out.getvalue()


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


CASES: list[tuple[str, OutputFormat, int | None]] = [
    ("png (same format: passthrough)", "png", None),
    ("png, compression 50", "png", 50),
    ("jpeg", "jpeg", None),
    ("webp", "webp", None),
    ("avif", "avif", None),
    ("gif", "gif", None),
]


def overhead_table(runs: int) -> None:
    print("| output | size | Pillow direct (ms) | convert() (ms) | overhead (medians) | (minimums) | bytes |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for size in (1024, 2048):
        data = photo_like(size)
        for label, fmt, compression in CASES:
            spec = OutputSpec(format=fmt, compression=compression)
            ours_fn = partial(convert, data, spec, max_pixels=MAX_PIXELS)
            direct_fn = partial(pillow_direct, data, fmt, compression)
            output = ours_fn()  # warm-up, and the size reported
            direct_fn()
            ours: list[float] = []
            direct: list[float] = []
            for run in range(runs):
                # alternate who goes first so caches and CPU boost favour neither
                pair: list[tuple[list[float], Callable[[], object]]] = [(ours, ours_fn), (direct, direct_fn)]
                for samples, fn in pair if run % 2 == 0 else reversed(pair):
                    samples.append(timed(fn))
            ours_ms, direct_ms = statistics.median(ours) * 1000, statistics.median(direct) * 1000
            by_median, by_min = ours_ms / direct_ms - 1, min(ours) / min(direct) - 1
            print(
                f"| {label} | {size}x{size} | {direct_ms:.1f} | {ours_ms:.1f} "
                f"| {by_median:+.1%} | {by_min:+.1%} | {len(output.data):,} |"
            )


def _convert_webp(data: bytes) -> int:
    return len(convert(data, OutputSpec(format="webp"), max_pixels=MAX_PIXELS).data)


def pool_table(batch: int) -> None:
    data = photo_like(1024)
    print(f"\n{batch} conversions of a 1024x1024 PNG to WebP, 2 workers where pooled:\n")
    print("| execution | wall time (s) | speed-up over serial |")
    print("|---|---:|---:|")
    serial = timed(lambda: [_convert_webp(data) for _ in range(batch)])
    print(f"| serial | {serial:.2f} | 1.00x |")
    pools: list[tuple[str, Callable[[], Executor]]] = [
        ("thread pool", lambda: ThreadPoolExecutor(max_workers=2)),
        ("process pool", lambda: ProcessPoolExecutor(max_workers=2)),
    ]
    for label, make in pools:
        with make() as pool:
            list(pool.map(_convert_webp, [data] * 2))  # start workers outside the measurement
            elapsed = timed(lambda: list(pool.map(_convert_webp, [data] * batch)))
        print(f"| {label} | {elapsed:.2f} | {serial / elapsed:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=7, help="timed runs per case and side (median)")
    parser.add_argument("--pools", action="store_true", help="also compare thread and process pools")
    parser.add_argument("--batch", type=int, default=12, help="conversions per pool measurement")
    args = parser.parse_args()
    overhead_table(args.runs)
    if args.pools:
        pool_table(args.batch)


if __name__ == "__main__":
    main()
