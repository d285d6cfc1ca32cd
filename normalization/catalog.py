"""The model catalog: how each model's parameters are handled, as data.

A :class:`ModelEntry` says which provider adapter serves a model, under which upstream id, and how
every parameter a client may send is treated (the four behaviors of the contract, plus
``unsupported``: dropped with a warning). The structural parts (image input, size control, native
``n``, native output formats) describe what the upstream can do; the normalization engine derives
the standard parameters' rows (``image``, ``size``, ``n``, ``output_format`` ...) from them, so the
``params`` table only lists the model's own fields and any standard field it maps specially.

Built-in entries live in ``normalization/catalog/*.yaml``; the user's YAML ``models:`` list uses the
same format and adds or overrides entries by ``id``. Adding a model whose adapter exists needs no
Python.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

Mode = Literal["edit", "generate"]


class Behavior(StrEnum):
    """How one client parameter reaches (or does not reach) the upstream."""

    PASSTHROUGH = "passthrough"
    """Sent under the same name, typed as the table says."""
    RENAMED = "renamed"
    """Same value under the upstream's field name."""
    CONVERTED = "converted"
    """Turned into the upstream's native form (size to an enum, n to num_images)."""
    EMULATED = "emulated"
    """Done by pixelgate itself; nothing is sent upstream."""
    UNSUPPORTED = "unsupported"
    """The model cannot honor it: dropped with a warning (a 400 under ``x-pixelgate-strict``)."""


class ParamType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    ARRAY = "array"
    OBJECT = "object"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ParamSpec(_Frozen):
    """One row of a model's parameter table, keyed in :attr:`ModelEntry.params` by the client's name."""

    behavior: Behavior = Behavior.PASSTHROUGH
    upstream: str | None = Field(default=None, description="upstream field name; None means the client's name")
    type: ParamType = ParamType.STRING
    enum: tuple[JsonValue, ...] | None = None
    # int first: a bound written as 50 stays 50, not 50.0, in the model table (pydantic's smart union).
    minimum: int | float | None = None
    maximum: int | float | None = None
    min_length: int | None = None
    max_length: int | None = None
    default: JsonValue = Field(default=None, description="the upstream's default, shown to users; never sent")
    description: str = ""


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


class ModelEntry(_Frozen):
    """One model clients can name as ``model``."""

    id: str
    provider: str = Field(description="key of the provider in settings (fal, openai, sandbox, or a YAML name)")
    upstream: str = Field(description="the provider's own model or endpoint id")
    modes: tuple[Mode, ...]
    description: str = ""
    prompt_field: str | None = Field(default="prompt", description="upstream field for the prompt")
    prompt_template: str | None = Field(
        default=None,
        description="format string building the upstream prompt, e.g. "
        "'Editing Instruction: {prompt}. Target Image Description: {target_image_description}'",
    )
    images: ImageInputSpec | None = None
    size: SizeSpec = Field(default_factory=SizeSpec)
    count: CountSpec = Field(default_factory=CountSpec)
    output_format: OutputFormatSpec = Field(default_factory=OutputFormatSpec)
    result_field: str = Field(default="images", description="output key holding the images (images or image)")
    default_response_format: Literal["url", "b64_json"] | None = Field(
        default=None,
        description="response_format when a request sends none (b64_json for models whose upstream always "
        "answers base64, as OpenAI's gpt-image models do); unset: PIXELGATE_DEFAULT_RESPONSE_FORMAT",
    )
    fixed: Mapping[str, JsonValue] = Field(
        default_factory=dict, description="fields always sent upstream, whatever the client asks"
    )
    params: Mapping[str, ParamSpec] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _edit_needs_images(self) -> ModelEntry:
        if "edit" in self.modes and self.images is None:
            raise ValueError(f"model {self.id!r} has mode 'edit' but no 'images' input spec")
        return self


class Catalog:
    """The models by id. Built once at start-up from the built-in files plus the user's entries."""

    def __init__(self, entries: Iterable[ModelEntry]) -> None:
        self._entries: dict[str, ModelEntry] = {}
        for entry in entries:
            self._entries[entry.id] = entry

    def get(self, model_id: str) -> ModelEntry | None:
        return self._entries.get(model_id)

    def entries(self) -> list[ModelEntry]:
        return list(self._entries.values())

    def with_overrides(self, entries: Iterable[ModelEntry]) -> Catalog:
        """A new catalog where ``entries`` add to or replace (by id) this one's."""
        return Catalog([*self._entries.values(), *entries])


def load_builtin_catalog() -> Catalog:
    """Every ``*.yaml`` under ``normalization/catalog/``, each a list of entries, in file-name order."""
    entries: list[ModelEntry] = []
    folder = resources.files("normalization") / "catalog"
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        if not item.name.endswith(".yaml"):
            continue
        raw = yaml.safe_load(item.read_text(encoding="utf-8")) or []
        if not isinstance(raw, list):
            raise ValueError(f"catalog file {item.name} must hold a list of models")
        entries.extend(ModelEntry.model_validate(row) for row in raw)
    return Catalog(entries)
