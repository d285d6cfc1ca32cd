"""What an upstream model can do: the structural half of a catalog entry, and a kind's defaults for it.

The catalog (:mod:`normalization.catalog`) builds a model's standard parameters (``image``, ``mask``,
``size``, ``n``, ``output_format``) from these specs. They live at the bottom layer because provider
kinds supply them too: a kind whose protocol fixes the request shape (the ``openai`` kind: images
under ``image``, the mask under ``mask``, ``n``, a size enum) declares it once as
:class:`CatalogDefaults`, and a configured model of that kind needs only ``id``, ``provider``,
``upstream`` and ``modes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ImageInputSpec(_Frozen):
    """Where input images go in the upstream request (edit mode)."""

    field: str = Field(description="upstream field, e.g. image_url, image_urls, reference_image_urls, image")
    kind: Literal["single", "list"] = "single"
    max_images: int = Field(default=1, ge=1)
    mask_field: str | None = Field(default=None, description="upstream mask field (mask_url, mask_image_url, mask)")


SizeKind = Literal["none", "aspect_ratio", "pixel_enum", "dimensions"]


class SizeSpec(_Frozen):
    """The upstream's native size control.

    - ``none``: no size field; pixelgate resizes the result when a size is asked for.
    - ``aspect_ratio``: ``field`` takes one of ``values`` (``"16:9"``; may include ``"auto"``).
    - ``pixel_enum``: ``field`` takes one of ``values`` (``"1024x1024"``; may include ``"auto"``).
    - ``dimensions``: free width/height within ``min_side``..``max_side``, multiples of
      ``multiple_of``; sent as ``{field: {width, height}}`` (``encoding: object``) or as two fields
      ``width_field``/``height_field`` (``encoding: fields``). ``presets`` maps fal's named
      ``image_size`` presets to pixels, for display and for models that accept only names.

    ``tier_field``/``tier_values`` is an optional native resolution tier (``1K``, ``2K``...).
    ``default_width``/``default_height`` is what the upstream makes when no size is sent (if known).
    """

    kind: SizeKind = "none"
    field: str | None = None
    values: tuple[str, ...] = ()
    encoding: Literal["object", "fields"] = "object"
    width_field: str = "width"
    height_field: str = "height"
    min_side: int = 64
    max_side: int = 4096
    multiple_of: int = 1
    max_pixels: int | None = None
    presets: Mapping[str, tuple[int, int]] = Field(default_factory=dict)
    tier_field: str | None = None
    tier_values: tuple[str, ...] = ()
    default_width: int | None = None
    default_height: int | None = None

    @model_validator(mode="after")
    def _field_required(self) -> SizeSpec:
        if self.kind in ("aspect_ratio", "pixel_enum") and (not self.field or not self.values):
            raise ValueError(f"size kind {self.kind!r} needs field and values")
        if self.kind == "dimensions" and self.encoding == "object" and not self.field:
            raise ValueError("size kind 'dimensions' with encoding 'object' needs field")
        return self


class CountSpec(_Frozen):
    """Native image count: ``field`` (e.g. ``num_images``, ``n``) up to ``max``; None: one per call."""

    field: str | None = None
    max: int = Field(default=1, ge=1)
    seeds_per_image: bool = Field(
        default=False,
        description="image k of a batch sent seed s is exactly what seed s + k gives alone; when false, a "
        "request with a seed is made one image per call so that every image's reported seed reproduces it",
    )


class OutputFormatSpec(_Frozen):
    """Native output formats the upstream can be asked for, and under which field."""

    field: str | None = None
    values: tuple[str, ...] = ()
    default: str | None = Field(default=None, description="what the upstream returns when not asked")


class PriceSpec(_Frozen):
    """What one upstream call costs, in USD: the sum of the parts that are set."""

    per_image: Decimal | None = None  # each output image
    per_megapixel: Decimal | None = None  # each output megapixel (width*height/1e6, per image)
    per_input_image: Decimal | None = None  # each input image sent
    per_call: Decimal | None = None  # each upstream call (a job), whatever it makes
    source: str = ""  # where the figure comes from (a URL, or "guess: why")
    confirmed: bool = False  # False when the figure is a guess or third-party


class CatalogDefaults(_Frozen):
    """What a provider kind fills in for a configured model entry that leaves it out.

    Each set field is used when the entry has no such key at all (a key the entry spells wins as a
    whole: an entry's ``size`` replaces the default ``size``, it is not merged into it).
    """

    images: ImageInputSpec | None = None
    size: SizeSpec | None = None
    count: CountSpec | None = None
    output_format: OutputFormatSpec | None = None
    result_field: str | None = None
    fixed: Mapping[str, JsonValue] | None = None

    def fill(self, entry: Mapping[str, JsonValue]) -> dict[str, JsonValue]:
        """``entry`` (a model entry as read from YAML) with this kind's defaults under its own keys."""
        defaults: dict[str, JsonValue] = self.model_dump(mode="json", exclude_none=True)
        return {**defaults, **entry}
