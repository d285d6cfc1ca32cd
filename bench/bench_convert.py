"""Conversion overhead: the gateway's conversion path against calling Pillow directly.

For each output format at 1024x1024 and 2048x2048, a photo-like test image (gradients, shapes and
seeded noise) is encoded as PNG, like an upstream result. Then the gateway's conversion
(``normalization.emulation.output_format.convert``, which the gateway's ``ImageWorkers`` pool runs)
and a bare Pillow pipeline (open, convert the mode if needed, save with the same parameters) run on the same
bytes in the same worker thread, in pairs whose order alternates, with the garbage collector paused.

The overhead is the median over pairs of (gateway / Pillow - 1), each pair measured back to back,
so a load change on a shared machine moves both sides of a pair alike. It is given in CPU time of
the process (all threads: encoders such as libavif use several), which other processes on the
machine barely disturb, and in wall time. Target: at most 10%.

A same-format request (png to png at the same size) is passed through without decoding; its row
shows that path's cost, with a Pillow re-encode for scale, not an overhead.

``--pools`` also compares a thread pool, a process pool and serial execution for a batch of
conversions (is the GIL a bottleneck?).

Run: ``python -m bench.bench_convert [--runs 9] [--pools]``; writes ``bench/results/convert.md``.
"""

from __future__ import annotations

import argparse
import gc
import io
import random
import statistics
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from PIL import Image, ImageDraw

from core.images import FormatName
from normalization.emulation.output_format import (
    DEFAULT_AVIF_QUALITY,
    DEFAULT_JPEG_QUALITY,
    DEFAULT_PNG_COMPRESS_LEVEL,
    DEFAULT_WEBP_QUALITY,
    OutputSpec,
    convert,
)

RESULTS = Path(__file__).resolve().parent / "results"
MAX_PIXELS = 64_000_000
SEED = 20240501
TARGET = 0.10


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


@dataclass(frozen=True)
class Sample:
    cpu: float
    wall: float


def timed(fn: Callable[[], object]) -> Sample:
    gc.collect()
    gc.disable()
    try:
        cpu, wall = time.process_time(), time.perf_counter()
        fn()
        return Sample(time.process_time() - cpu, time.perf_counter() - wall)
    finally:
        gc.enable()


CASES: list[tuple[str, FormatName, int | None]] = [
    ("png (same format: passthrough)", "png", None),
    ("png, compression 50", "png", 50),
    ("jpeg", "jpeg", None),
    ("webp", "webp", None),
    ("avif", "avif", None),
    ("gif", "gif", None),
]


@dataclass(frozen=True)
class Row:
    label: str
    size: int
    ours: list[Sample]
    direct: list[Sample]
    output_bytes: int
    passthrough: bool

    def median_ms(self, samples: list[Sample], wall: bool = False) -> float:
        return statistics.median(s.wall if wall else s.cpu for s in samples) * 1000

    def overhead(self, wall: bool = False) -> float:
        """Median over back-to-back pairs of gateway / Pillow - 1."""
        pick: Callable[[Sample], float] = (lambda s: s.wall) if wall else (lambda s: s.cpu)
        return statistics.median(pick(o) / max(pick(d), 1e-9) - 1 for o, d in zip(self.ours, self.direct, strict=True))

    def line(self) -> str:
        head = f"| {self.label} | {self.size}x{self.size} "
        ours_cpu, direct_cpu = self.median_ms(self.ours), self.median_ms(self.direct)
        if self.passthrough:
            return head + f"| {direct_cpu:.1f} | {ours_cpu:.2f} | not re-encoded | | | {self.output_bytes:,} |"
        verdict = "met" if self.overhead() <= TARGET else "NOT met"
        return (
            head + f"| {direct_cpu:.1f} | {ours_cpu:.1f} | {self.overhead():+.1%} | {self.overhead(wall=True):+.1%} "
            f"| {verdict} | {self.output_bytes:,} |"
        )


def measure(runs: int, sizes: tuple[int, ...]) -> list[Row]:
    rows: list[Row] = []
    # Both sides run in one worker thread, as the gateway's ImageWorkers pool runs convert(): the
    # same thread means the same malloc arena (a main-thread baseline pays page faults for fresh
    # mmap'd buffers on every call, which pool threads do not: -20% "overhead" for jpeg at 2048).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-lane") as lane:
        for size in sizes:
            data = photo_like(size)
            for label, fmt, compression in CASES:
                spec = OutputSpec(format=fmt, compression=compression)
                ours_fn = partial(lane.submit, partial(convert, data, spec, max_pixels=MAX_PIXELS))
                direct_fn = partial(lane.submit, partial(pillow_direct, data, fmt, compression))
                output = ours_fn().result()  # warm-up, and the output reported
                direct_fn().result()
                ours: list[Sample] = []
                direct: list[Sample] = []
                for run in range(runs):
                    pair = [(ours, ours_fn), (direct, direct_fn)]
                    for samples, submit in pair if run % 2 == 0 else reversed(pair):
                        samples.append(timed(lambda submit=submit: submit().result()))
                row = Row(label, size, ours, direct, len(output.data), passthrough=not output.reencoded)
                print(row.line(), flush=True)
                rows.append(row)
    return rows


def table(rows: list[Row], runs: int) -> str:
    lines = [
        "# Conversion overhead: the gateway's path against bare Pillow",
        "",
        "A photo-like PNG of each size converted by `normalization.emulation.output_format.convert` "
        "(the gateway's path: sniff, "
        "header and pixel-limit check, decode, EXIF orientation, mode, metadata stripping, encode) and by bare "
        f"Pillow (open, save) with the same encoder settings, both in one worker thread as in the gateway's "
        f"pool; {runs} back-to-back pairs per row, order alternating. "
        "Times are medians of process CPU time; overheads are medians over pairs. "
        f"Target: at most {TARGET:.0%}.",
        "",
        "| output | size | Pillow CPU (ms) | gateway CPU (ms) | overhead (CPU) | overhead (wall) | target | bytes |",
        "|---|---|---:|---:|---:|---:|---|---:|",
    ]
    lines.extend(row.line() for row in rows)
    return "\n".join(lines) + "\n"


def _convert_webp(data: bytes) -> int:
    return len(convert(data, OutputSpec(format="webp"), max_pixels=MAX_PIXELS).data)


def pool_table(batch: int) -> str:
    data = photo_like(1024)
    lines = [
        f"\n{batch} conversions of a 1024x1024 PNG to WebP, 2 workers where pooled:\n",
        "| execution | wall time (s) | speed-up over serial |",
        "|---|---:|---:|",
    ]
    serial = timed(lambda: [_convert_webp(data) for _ in range(batch)]).wall
    lines.append(f"| serial | {serial:.2f} | 1.00x |")
    pools: list[tuple[str, Callable[[], Executor]]] = [
        ("thread pool", lambda: ThreadPoolExecutor(max_workers=2)),
        ("process pool", lambda: ProcessPoolExecutor(max_workers=2)),
    ]
    for label, make in pools:
        with make() as pool:
            list(pool.map(_convert_webp, [data] * 2))  # start workers outside the measurement
            elapsed = timed(lambda pool=pool: list(pool.map(_convert_webp, [data] * batch))).wall
        lines.append(f"| {label} | {elapsed:.2f} | {serial / elapsed:.2f}x |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=9, help="back-to-back pairs per case (median)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048], help="square sizes to test")
    parser.add_argument("--pools", action="store_true", help="also compare thread and process pools")
    parser.add_argument("--batch", type=int, default=12, help="conversions per pool measurement")
    args = parser.parse_args()
    report = table(measure(args.runs, tuple(args.sizes)), args.runs)
    if args.pools:
        report += pool_table(args.batch)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "convert.md").write_text(report)
    print()
    print(report)


if __name__ == "__main__":
    main()
