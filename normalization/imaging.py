"""Interim conversion (replaced by the imaging work branch): keep matching PNG, else re-encode."""

from __future__ import annotations

import asyncio
import io
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

from PIL import Image, ImageOps
from pydantic import BaseModel, ConfigDict

from normalization.imagetype import sniff_media_type

Format = Literal["png", "jpeg", "gif", "webp", "avif"]


class OutputSpec(BaseModel):
    model_config = ConfigDict(frozen=True)
    format: Format
    compression: int | None = None
    target: tuple[int, int] | None = None


class EncodedImage(BaseModel):
    model_config = ConfigDict(frozen=True)
    data: bytes
    media_type: str
    width: int
    height: int
    reencoded: bool
    resized: bool


def convert(data: bytes, spec: OutputSpec, *, max_pixels: int) -> EncodedImage:
    with Image.open(io.BytesIO(data)) as img:
        size = img.size
        if (
            sniff_media_type(data) == f"image/{spec.format}"
            and spec.target in (None, size)
            and spec.compression is None
        ):
            return EncodedImage(
                data=data,
                media_type=f"image/{spec.format}",
                width=size[0],
                height=size[1],
                reencoded=False,
                resized=False,
            )
        out_img = ImageOps.exif_transpose(img)
        resized = False
        if spec.target and spec.target != out_img.size:
            out_img = ImageOps.fit(out_img, spec.target, Image.Resampling.LANCZOS)
            resized = True
        if spec.format == "jpeg":
            out_img = out_img.convert("RGB")
        buf = io.BytesIO()
        out_img.save(buf, format=spec.format.upper(), quality=spec.compression or 90)
        return EncodedImage(
            data=buf.getvalue(),
            media_type=f"image/{spec.format}",
            width=out_img.width,
            height=out_img.height,
            reencoded=True,
            resized=resized,
        )


class ImageWorkers:
    def __init__(self, max_workers: int | None = None) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max_workers or os.cpu_count() or 2)

    async def convert(self, data: bytes, spec: OutputSpec, max_pixels: int) -> EncodedImage:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: convert(data, spec, max_pixels=max_pixels))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
