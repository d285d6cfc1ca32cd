"""The routed built-in models (normalization/catalog/routed.yaml): the contract's table, and each Replicate and
Gemini deployment against what the upstream accepts.

- The contract (CONTRACT.md "Routed built-in models") fixes each routed model's id, modes and deployments in
  routing order; the fal-only ids users' scripts may name stay single fal entries.
- Replicate deployments against the model's schema in tests/fixtures/replicate_schemas/ (copies of the shared
  reference): every field the table sends exists there, with a compatible type, enum and range; required
  fields are produced; ``unsupported`` rows are fields the model does not have. ``prunaai/hidream-e1.1`` has
  only a list of the fields public callers send (``input_fields_seen``, types unconfirmed): its table is
  checked against that list and its described types, and its version route against the version named there.
- The Gemini deployment is the gemini kind's shape (providers/gemini/catalog_defaults.py) spelled out, and sends
  only fields the Gemini request builder places (providers/gemini/request.py).
- Every deployment has a price whose ``source`` says where it comes from.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from core.model_shape import CatalogDefaults
from normalization.catalog import Behavior, Model, ModelEntry, ParamType, load_builtin_catalog
from providers.gemini.catalog_defaults import GEMINI_SHAPE
from providers.gemini.request import GENERATION_CONFIG_FIELDS, IMAGE_CONFIG_FIELDS, PROMPT_FIELD, camel

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "replicate_schemas"
CATALOG = load_builtin_catalog()
Schema = dict[str, Any]  # parsed JSON Schema: untyped by nature, confined to this test
HIDREAM_VERSION = "433436facdc1172b6efcb801eb6f345d7858a32200d24e5febaccfb4b44ad66f"

ROUTED: dict[str, tuple[tuple[str, ...], tuple[tuple[str, str, tuple[str, ...]], ...]]] = {
    "hidream-e1-1": (
        ("edit",),
        (
            ("fal", "fal-ai/hidream-e1-1", ("edit",)),
            ("replicate", f"prunaai/hidream-e1.1:{HIDREAM_VERSION}", ("edit",)),
        ),
    ),
    "flux-kontext-pro": (
        ("edit",),
        (
            ("fal", "fal-ai/flux-pro/kontext", ("edit",)),
            ("replicate", "black-forest-labs/flux-kontext-pro", ("edit",)),
        ),
    ),
    "nano-banana": (
        ("edit", "generate"),
        (
            ("gemini", "gemini-2.5-flash-image", ("edit", "generate")),
            ("fal", "fal-ai/nano-banana/edit", ("edit",)),
            ("fal", "fal-ai/nano-banana", ("generate",)),
            ("replicate", "google/nano-banana", ("edit", "generate")),
        ),
    ),
    "seedream-4": (
        ("edit", "generate"),
        (
            ("fal", "fal-ai/bytedance/seedream/v4/edit", ("edit",)),
            ("fal", "fal-ai/bytedance/seedream/v4/text-to-image", ("generate",)),
            ("replicate", "bytedance/seedream-4", ("edit", "generate")),
        ),
    ),
    "qwen-image-edit": (
        ("edit",),
        (
            ("fal", "fal-ai/qwen-image-edit", ("edit",)),
            ("replicate", "qwen/qwen-image-edit", ("edit",)),
        ),
    ),
}
"""CONTRACT.md "Routed built-in models", row by row (the hidream-e1.1 version is the reference's)."""
FAL_ONLY = {
    "flux-pro-kontext": "fal-ai/flux-pro/kontext",
    "nano-banana-edit": "fal-ai/nano-banana/edit",
    "seedream-v4-edit": "fal-ai/bytedance/seedream/v4/edit",
}
"""fal-only ids that users' scripts may name: they stay as they were."""
VERSION_ROUTE = re.compile(r"^(?P<model>[\w.-]+/[\w.-]+):(?P<version>[0-9a-f]{64})$")
SENT = (Behavior.PASSTHROUGH, Behavior.RENAMED, Behavior.CONVERTED)


def _name(entry: ModelEntry) -> str:
    return f"{entry.provider}/{entry.id}/{entry.upstream}"


def _routed(model_id: str) -> Model:
    model = CATALOG.get(model_id)
    assert model is not None, model_id
    return model


# --- the contract --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model_id", sorted(ROUTED))
def test_a_routed_model_is_the_contracts_row(model_id: str) -> None:
    modes, deployments = ROUTED[model_id]
    model = _routed(model_id)
    assert model.modes == modes
    assert tuple((d.provider, d.upstream, d.modes) for d in model.deployments) == deployments
    assert all(d.id == model_id and d.description == model.description for d in model.deployments)
    assert model.description


def test_only_the_contracts_models_are_routed() -> None:
    routed = {model.id for model in CATALOG.entries() if len(model.deployments) > 1}
    assert routed == set(ROUTED)


@pytest.mark.parametrize(("model_id", "upstream"), sorted(FAL_ONLY.items()))
def test_the_fal_only_ids_stay_single_fal_entries(model_id: str, upstream: str) -> None:
    model = _routed(model_id)
    assert [(d.provider, d.upstream) for d in model.deployments] == [("fal", upstream)]


def test_a_forced_provider_finds_one_deployment_per_mode() -> None:
    for model_id in ROUTED:
        model = _routed(model_id)
        for provider in model.providers():
            for mode in model.modes:
                assert len([d for d in model.deployments_for(mode) if d.provider == provider]) <= 1


def test_every_deployment_has_a_price_with_its_source() -> None:
    for entry in CATALOG.deployments():
        if entry.provider in ("sandbox", "openai"):
            continue
        assert entry.price is not None, _name(entry)
        assert entry.price.source, _name(entry)


# --- Replicate -----------------------------------------------------------------------------------------------

REPLICATE_ENTRIES = sorted(
    (entry for entry in CATALOG.deployments() if entry.provider == "replicate"), key=lambda e: (e.id, e.upstream)
)
# What Replicate's JSON types accept of a row's type (an integer row fits a number field).
COMPATIBLE = {
    ParamType.STRING: {"string"},
    ParamType.INTEGER: {"integer", "number"},
    ParamType.NUMBER: {"number"},
    ParamType.BOOLEAN: {"boolean"},
    ParamType.ARRAY: {"array"},
    ParamType.OBJECT: {"object"},
}
# Replicate's spelling of a format name pixelgate sends as its own (only where they are the same is it sent).
REPLICATE_FORMATS = {"png": "png", "webp": "webp", "jpeg": "jpg"}


def _model_name(entry: ModelEntry) -> str:
    match = VERSION_ROUTE.match(entry.upstream)
    return match.group("model") if match else entry.upstream


def _replicate_schema(entry: ModelEntry) -> Schema:
    data: Schema = json.loads((FIXTURES / f"{_model_name(entry).replace('/', '__')}.json").read_text("utf-8"))
    assert data["model"] == _model_name(entry)
    return data


def _field_list(data: Schema) -> dict[str, Schema]:
    """Properties of a "field list only" file: each type is the first word its callers' note gives."""
    seen: dict[str, str] = data["input_fields_seen"]
    properties: dict[str, Schema] = {}
    for name, note in seen.items():
        kind = note.split(" ", 1)[0].rstrip(",;")
        assert kind in ("string", "integer", "number", "boolean"), (name, note)
        properties[name] = {"type": kind}
    return properties


def _properties(entry: ModelEntry) -> dict[str, Schema]:
    data = _replicate_schema(entry)
    if "input" not in data:
        return _field_list(data)
    properties: dict[str, Schema] = data["input"]["properties"]
    return properties


def _sent_fields(entry: ModelEntry) -> dict[str, str]:
    """Every upstream field the table may send -> what sends it."""
    fields = dict.fromkeys(entry.fixed, "fixed")
    if entry.prompt_field:
        fields[entry.prompt_field] = "prompt"
    if entry.images is not None:
        fields[entry.images.field] = "image"
        if entry.images.mask_field:
            fields[entry.images.mask_field] = "mask"
    if entry.count.field:
        fields[entry.count.field] = "n"
    if entry.output_format.field:
        fields[entry.output_format.field] = "output_format"
    if entry.size.field:
        fields[entry.size.field] = "size"
    if entry.size.tier_field:
        fields[entry.size.tier_field] = "resolution"
    if entry.size.kind == "dimensions" and entry.size.encoding == "fields":
        fields[entry.size.width_field] = fields[entry.size.height_field] = "size"
    for name, row in entry.params.items():
        if row.behavior in SENT:
            fields[row.upstream or name] = name
    return fields


def test_every_replicate_deployment_has_a_schema() -> None:
    listed = [deployment for _, deployments in ROUTED.values() for deployment in deployments]
    assert {e.upstream for e in REPLICATE_ENTRIES} == {upstream for kind, upstream, _ in listed if kind == "replicate"}
    for entry in REPLICATE_ENTRIES:
        assert (FIXTURES / f"{_model_name(entry).replace('/', '__')}.json").is_file(), _name(entry)


@pytest.mark.parametrize("entry", REPLICATE_ENTRIES, ids=_name)
def test_the_route_is_the_models_own(entry: ModelEntry) -> None:
    """Official models on their model route; a community model on the version route with its version."""
    data = _replicate_schema(entry)
    match = VERSION_ROUTE.match(entry.upstream)
    official = not _model_name(entry).startswith("prunaai/")
    assert (match is None) == official, entry.upstream
    if match is not None:
        assert match.group("version") == data["sources"]["version"].split(" ", 1)[0]


@pytest.mark.parametrize("entry", REPLICATE_ENTRIES, ids=_name)
def test_every_sent_field_exists_with_a_compatible_type(entry: ModelEntry) -> None:
    props = _properties(entry)
    sent = _sent_fields(entry)
    unknown = set(sent) - set(props)
    assert not unknown, f"{_name(entry)}: fields the schema does not have: {sorted(unknown)}"
    for name, row in entry.params.items():
        where = f"{_name(entry)}.{name}"
        if row.behavior is Behavior.UNSUPPORTED:
            assert name not in props and row.upstream is None, f"{where} exists upstream"
            continue
        prop = props[row.upstream or name]
        assert prop.get("type") in COMPATIBLE[row.type], where
        if "enum" in prop or row.enum is not None:
            assert row.enum is not None and set(row.enum) <= set(prop["enum"]), where
        if "minimum" in prop:
            assert row.minimum is not None and row.minimum >= prop["minimum"], where
        if "maximum" in prop:
            assert row.maximum is not None and row.maximum <= prop["maximum"], where
        if row.default is not None:
            assert row.default == prop.get("default"), where
        if name == row.upstream:
            assert row.behavior is Behavior.PASSTHROUGH, where


@pytest.mark.parametrize("entry", REPLICATE_ENTRIES, ids=_name)
def test_the_structure_matches_the_schema(entry: ModelEntry) -> None:
    props = _properties(entry)
    data = _replicate_schema(entry)
    assert entry.images is not None and "edit" in entry.modes
    image = props[entry.images.field]
    assert (entry.images.kind == "list") == (image["type"] == "array"), _name(entry)
    assert entry.images.kind == "list" or entry.images.max_images == 1
    # No Replicate model here makes n images in one prediction: pixelgate fans n out.
    assert (entry.count.field, entry.count.max) == (None, 1)
    size = entry.size
    assert size.kind in ("none", "aspect_ratio")
    if size.kind == "none":
        assert not {"aspect_ratio", "size", "width", "height", "resolution"} & set(props)
    else:
        assert size.field is not None
        assert set(size.values) <= set(props[size.field]["enum"]) - {"match_input_image"}
        if size.tier_field:
            assert set(size.tier_values) <= set(props[size.tier_field]["enum"]) - {"custom"}
    formats = entry.output_format
    if formats.field is None:
        assert "output_format" not in props and formats.values == ()
    else:
        assert formats.field == "output_format"
        assert "jpeg" not in formats.values, "pixelgate sends 'jpeg'; Replicate's enums say 'jpg'"
        if "enum" in props["output_format"]:
            assert {REPLICATE_FORMATS[f] for f in formats.values} <= set(props["output_format"]["enum"])
            upstream_default = props["output_format"].get("default")
            assert REPLICATE_FORMATS.get(str(formats.default)) == upstream_default
        assert "png" in formats.values, "a lossless source for what pixelgate converts"
    # The prediction's output is itself the image URL or list of URLs (providers/replicate/results.py).
    assert entry.result_field == "output"
    if "output" in data and isinstance(data["output"], dict):
        assert data["output"]["type"] in ("string", "array")


@pytest.mark.parametrize("entry", REPLICATE_ENTRIES, ids=_name)
def test_the_required_fields_are_produced(entry: ModelEntry) -> None:
    data = _replicate_schema(entry)
    # A field list has no required set: its callers all send the instruction and the image.
    required = set(data["input"].get("required", [])) if "input" in data else {"prompt", "image"}
    produced = {entry.prompt_field, *entry.fixed}
    if entry.images is not None:
        produced.add(entry.images.field)
    assert required <= produced, f"{_name(entry)}: required but never sent: {sorted(required - produced)}"


# --- Gemini --------------------------------------------------------------------------------------------------

GEMINI_ENTRIES = [entry for entry in CATALOG.deployments() if entry.provider == "gemini"]


@pytest.mark.parametrize("entry", GEMINI_ENTRIES, ids=_name)
def test_a_gemini_deployment_is_the_kinds_shape_spelled_out(entry: ModelEntry) -> None:
    shape = CatalogDefaults.model_validate(
        entry.model_dump(include={"images", "size", "count", "output_format", "fixed"}, mode="json")
    )
    assert shape == GEMINI_SHAPE.model_copy(update={"result_field": None})


@pytest.mark.parametrize("entry", GEMINI_ENTRIES, ids=_name)
def test_a_gemini_deployment_sends_only_fields_the_request_builder_places(entry: ModelEntry) -> None:
    placed = GENERATION_CONFIG_FIELDS | IMAGE_CONFIG_FIELDS | {PROMPT_FIELD}
    sent = _sent_fields(entry)
    assert entry.images is not None and sent.pop(entry.images.field) == "image"  # inlineData parts
    assert {camel(name) for name in sent} <= placed, _name(entry)
