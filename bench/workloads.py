"""The benchmark's requests: one generation and two edit sizes, each prebuilt once as raw bytes.

Bodies are built once so the load generator spends no CPU encoding them; every target gets the
same bytes. Input images are deterministic noise PNGs (incompressible, so the upload really is
1 MiB or 4 MiB on the wire). Every request asks for ``response_format=b64_json``: the upstream
answers base64 and the gateways hand it through.
"""

from __future__ import annotations

import io
import json
import math
import random
from dataclasses import dataclass

from PIL import Image

MiB = 1024 * 1024
BOUNDARY = "pixelgatebenchboundary7d1f"
MODEL = "gpt-image-1"


@dataclass(frozen=True)
class Workload:
    """One kind of request: its path below the API root, body and content type."""

    name: str
    path: str
    body: bytes
    content_type: str


def noise_png(approx_bytes: int, seed: int) -> bytes:
    """A square RGB noise PNG of about ``approx_bytes`` (stored uncompressed: noise does not shrink)."""
    side = math.isqrt(approx_bytes // 3)
    rng = random.Random(seed)
    image = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=0)
    return out.getvalue()


def _multipart(fields: dict[str, str], image: bytes) -> bytes:
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="input.png"\r\n'
        "Content-Type: image/png\r\n\r\n".encode()
        + image
        + b"\r\n"
    )
    parts.append(f"--{BOUNDARY}--\r\n".encode())
    return b"".join(parts)


def build_workloads() -> list[Workload]:
    """Generations, 1 MiB edits and 4 MiB edits, in that order."""
    generation = json.dumps(
        {"model": MODEL, "prompt": "a lighthouse at dusk", "n": 1, "response_format": "b64_json"}
    ).encode()
    fields = {"model": MODEL, "prompt": "make the sky purple", "n": "1", "response_format": "b64_json"}
    multipart_type = f"multipart/form-data; boundary={BOUNDARY}"
    return [
        Workload("generations", "/images/generations", generation, "application/json"),
        Workload("edits 1 MiB", "/images/edits", _multipart(fields, noise_png(MiB, 1)), multipart_type),
        Workload("edits 4 MiB", "/images/edits", _multipart(fields, noise_png(4 * MiB, 4)), multipart_type),
    ]
