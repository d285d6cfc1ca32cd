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
from typing import ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ModelWrapValidatorHandler, model_validator

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
    """One deployment of a model: the provider that serves it and how each parameter reaches it.

    A single-provider model is one entry; a routed model (:class:`Model`) holds several, each with
    the model's ``id`` and its own table. ``modes`` is the subset of the model's modes this deployment
    serves (fal's nano-banana has one endpoint for edits and another for generations).
    """

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


_MODEL_KEYS = frozenset({"id", "modes", "description", "deployments"})


class Model(_Frozen):
    """One model clients can name as ``model``: its deployments, in the order they are tried.

    The YAML row is either one deployment written flat (``{id, provider, upstream, modes, ...}``, the
    single-provider form) or ``{id, modes, description, deployments: [...]}`` where each deployment is
    a :class:`ModelEntry` without ``id`` (it inherits the model's ``id``, ``description`` and, unless
    it narrows them, ``modes``).
    """

    flat_form: ClassVar[type[BaseModel]] = ModelEntry
    """The single-deployment form a row may take (configuration errors suggest its keys too)."""

    id: str
    modes: tuple[Mode, ...]
    description: str = ""
    deployments: tuple[ModelEntry, ...] = Field(min_length=1)

    @model_validator(mode="wrap")
    @classmethod
    def _flat_row(cls, data: object, handler: ModelWrapValidatorHandler[Model]) -> Model:
        if isinstance(data, ModelEntry) or (isinstance(data, Mapping) and "deployments" not in data):
            # Validated as the entry it is, so a mistake is located in the row, not in a deployment list.
            entry = ModelEntry.model_validate(data)
            return handler(
                {"id": entry.id, "modes": entry.modes, "description": entry.description, "deployments": [entry]}
            )
        return handler(data)

    @model_validator(mode="before")
    @classmethod
    def _deployment_rows(cls, data: object) -> object:
        if not isinstance(data, Mapping) or "deployments" not in data:
            return data
        stray = sorted(set(data) - _MODEL_KEYS)
        if stray:
            raise ValueError(f"{', '.join(stray)}: these keys belong to each deployment, not to the routed model")
        inherited = {key: data[key] for key in ("id", "modes", "description") if key in data}
        rows = data["deployments"]
        if not isinstance(rows, list):
            return data
        deployments: list[object] = []
        for row in rows:
            if isinstance(row, Mapping):
                if "id" in row:
                    raise ValueError("a deployment takes its model's id: remove 'id' from the deployment")
                row = {**inherited, **row}
            deployments.append(row)
        return {**inherited, "deployments": deployments}

    @model_validator(mode="after")
    def _modes_covered(self) -> Model:
        seen: set[tuple[str, str]] = set()
        for deployment in self.deployments:
            extra = set(deployment.modes) - set(self.modes)
            if extra:
                raise ValueError(
                    f"model {self.id!r}: a deployment on {deployment.provider} serves {sorted(extra)}, "
                    f"which the model does not list in its modes"
                )
            for mode in deployment.modes:
                if (deployment.provider, mode) in seen:
                    raise ValueError(
                        f"model {self.id!r} has two {mode} deployments on {deployment.provider!r}: "
                        f"'{deployment.provider}/{self.id}' must name one"
                    )
                seen.add((deployment.provider, mode))
        for mode in self.modes:
            if not self.deployments_for(mode):
                raise ValueError(f"model {self.id!r} lists mode {mode!r} but no deployment serves it")
        return self

    @property
    def primary(self) -> ModelEntry:
        """The first deployment: what ``/v1/models`` shows as the model's provider."""
        return self.deployments[0]

    def deployments_for(self, mode: Mode) -> tuple[ModelEntry, ...]:
        """The deployments serving ``mode``, in routing order."""
        return tuple(deployment for deployment in self.deployments if mode in deployment.modes)

    def providers(self) -> tuple[str, ...]:
        """Each provider serving the model, once, in routing order."""
        return tuple(dict.fromkeys(deployment.provider for deployment in self.deployments))


class Catalog:
    """The models by id. Built once at start-up from the built-in files plus the user's entries."""

    def __init__(self, models: Iterable[Model]) -> None:
        self._models: dict[str, Model] = {}
        for model in models:
            self._models[model.id] = model

    def get(self, model_id: str) -> Model | None:
        return self._models.get(model_id)

    def entries(self) -> list[Model]:
        return list(self._models.values())

    def deployments(self) -> list[ModelEntry]:
        """Every deployment of every model."""
        return [deployment for model in self._models.values() for deployment in model.deployments]

    def with_overrides(self, models: Iterable[Model]) -> Catalog:
        """A new catalog where ``models`` add to or replace (by id) this one's."""
        return Catalog([*self._models.values(), *models])


def load_builtin_catalog() -> Catalog:
    """Every ``*.yaml`` under ``normalization/catalog/``, each a list of entries, in file-name order."""
    entries: list[Model] = []
    folder = resources.files("normalization") / "catalog"
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        if not item.name.endswith(".yaml"):
            continue
        raw = yaml.safe_load(item.read_text(encoding="utf-8")) or []
        if not isinstance(raw, list):
            raise ValueError(f"catalog file {item.name} must hold a list of models")
        entries.extend(Model.model_validate(row) for row in raw)
    return Catalog(entries)
