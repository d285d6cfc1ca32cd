"""The model catalog: how each model's parameters are handled, as data.

A :class:`ModelEntry` says which provider adapter serves a model, under which upstream id, and how
every parameter a client may send is treated (the four behaviors of the contract, plus
``unsupported``: dropped with a warning). The structural parts (image input, size control, native
``n``, native output formats: :mod:`core.model_shape`, shared with the provider kinds' catalog
defaults) describe what the upstream can do; the normalization engine derives
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

from core.model_shape import CountSpec, ImageInputSpec, OutputFormatSpec, PriceSpec, SizeSpec

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


class ModelEntry(_Frozen):
    """One model clients can name as ``model``."""

    id: str
    provider: str = Field(description="key of the provider in settings (a provider kind, or a YAML name)")
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
    price: PriceSpec | None = Field(
        default=None,
        description="what one upstream call costs (normalization/pricing.py); unset: the model costs nothing "
        "as far as pixelgate can tell, and budgets do not count it",
    )

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
