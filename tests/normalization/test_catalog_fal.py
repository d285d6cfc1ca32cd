"""Every fal deployment of the built-in catalog (fal.yaml, and the fal deployments of routed.yaml) against
its endpoint's JSON Schema.

The schemas in tests/fixtures/fal_schemas/ are copies of the shared reference (fal-js schemas.gen.ts
@3293c7d; hidream-e1-full hand-converted, see its ``notes``). For every fal deployment: each schema input
is covered by a row or a structural field, each row has the schema's type, enum, range, default and
description, the structural parts match the schema, and the schema's required fields are produced.

Two text-to-image endpoints of routed models have no saved schema (``UNSAVED``): they are checked against
their edit sibling's schema with the differences routed.yaml states (no image field; nano-banana's ratios
without ``auto``). That schema is a derivation, unconfirmed upstream, as the YAML says.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from normalization.catalog import Behavior, ModelEntry, load_builtin_catalog

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "fal_schemas"
FAL_IDS = {
    # fal.yaml
    "hidream-e1-full",
    "hidream-i1-full",
    "hidream-i1-dev",
    "hidream-i1-fast",
    "flux-pro-kontext",
    "flux-pro-kontext-max",
    "flux-pro-kontext-multi",
    "flux-kontext-dev",
    "nano-banana-edit",
    "seedream-v4-edit",
    "hidream-o1-image-edit",
    "hidream-o1-image-dev-edit",
    "gpt-image-1-edit",
    # routed.yaml (fal deployments)
    "hidream-e1-1",
    "qwen-image-edit",
    "flux-kontext-pro",
    "nano-banana",
    "seedream-4",
}
UNSAVED: dict[str, str] = {
    "fal-ai/nano-banana": "fal-ai/nano-banana/edit",
    "fal-ai/bytedance/seedream/v4/text-to-image": "fal-ai/bytedance/seedream/v4/edit",
}
"""Endpoints without a saved schema -> the edit sibling whose schema, less its image field, stands in."""
# Schema inputs that deliberately have neither a row nor a structural field, per endpoint, with the
# reason. None today: every fal input is reachable.
EXCLUDED: dict[str, set[str]] = {}
IMAGE_SIZE_MAX = 14142  # $defs.ImageSize: width/height exclusiveMinimum 0, maximum 14142

Schema = dict[str, Any]  # parsed JSON Schema: untyped by nature, confined to this test

FAL_ENTRIES = sorted(
    (entry for entry in load_builtin_catalog().deployments() if entry.provider == "fal"),
    key=lambda e: (e.id, e.upstream),
)


def _name(entry: ModelEntry) -> str:
    return f"{entry.provider}/{entry.id}/{entry.upstream}"


def _file(endpoint: str) -> Path:
    return FIXTURES / f"{endpoint.replace('/', '__')}.json"


def _schema(entry: ModelEntry) -> Schema:
    sibling = UNSAVED.get(entry.upstream)
    data: Schema = json.loads(_file(sibling or entry.upstream).read_text("utf-8"))
    assert data["endpoint_id"] == (sibling or entry.upstream)
    if sibling is not None:
        data = _without_images(data)
    return data


def _without_images(edit: Schema) -> Schema:
    """The edit sibling's schema as routed.yaml derives the text-to-image one (unconfirmed upstream)."""
    schema: Schema = json.loads(json.dumps(edit))
    inputs = schema["input"]
    image_fields = [name for name in inputs["properties"] if name.startswith("image_url")]
    assert len(image_fields) == 1
    del inputs["properties"][image_fields[0]]
    inputs["required"] = [name for name in inputs.get("required", []) if name not in image_fields]
    ratio = inputs["properties"].get("aspect_ratio")
    if ratio is not None:  # no input image to follow: "auto" goes, and no default is known
        enum = next(option for option in ratio["anyOf"] if "enum" in option)
        enum["enum"] = [value for value in enum["enum"] if value != "auto"]
        ratio.pop("default", None)
    return schema


def _types(prop: Schema) -> set[str]:
    """The non-null JSON types a property accepts (a ``$ref`` counts as an object)."""
    options = prop.get("anyOf", [prop])
    found = {option["type"] for option in options if "type" in option} | {
        "object" for option in options if "$ref" in option
    }
    return found - {"null"}


def _enum(prop: Schema) -> list[Any] | None:
    for option in [prop, *prop.get("anyOf", [])]:
        if "enum" in option:
            return list(option["enum"])
    return None


def _text(description: str) -> str:
    return re.sub(r"\s+", " ", description).strip()


def _structural_fields(entry: ModelEntry) -> set[str]:
    fields = {entry.prompt_field, entry.count.field, entry.output_format.field, *entry.fixed}
    if entry.images is not None:
        fields |= {entry.images.field, entry.images.mask_field}
    size = entry.size
    if size.kind == "dimensions" and size.encoding == "fields":
        fields |= {size.width_field, size.height_field}
    fields |= {size.field, size.tier_field}
    return {name for name in fields if name is not None}


def _row_fields(entry: ModelEntry) -> dict[str, str]:
    """Upstream field -> client name, for the rows that send something upstream."""
    sent = (Behavior.PASSTHROUGH, Behavior.RENAMED, Behavior.CONVERTED)
    return {row.upstream or name: name for name, row in entry.params.items() if row.behavior in sent}


def test_every_fal_model_is_in_the_catalog_with_a_schema() -> None:
    assert {entry.id for entry in FAL_ENTRIES} == FAL_IDS
    for entry in FAL_ENTRIES:
        assert _file(UNSAVED.get(entry.upstream, entry.upstream)).is_file(), _name(entry)
    assert not any(_file(endpoint).exists() for endpoint in UNSAVED), "a saved schema: drop it from UNSAVED"
    unsaved = {entry.upstream for entry in FAL_ENTRIES if entry.upstream in UNSAVED}
    assert unsaved == set(UNSAVED)


@pytest.mark.parametrize("entry", FAL_ENTRIES, ids=_name)
def test_every_schema_input_is_covered(entry: ModelEntry) -> None:
    props: Schema = _schema(entry)["input"]["properties"]
    structural, rows = _structural_fields(entry), _row_fields(entry)
    assert not structural & set(rows), "a structural field also has a row"
    uncovered = set(props) - structural - set(rows) - EXCLUDED.get(entry.upstream, set())
    assert not uncovered, f"{entry.id}: schema inputs without a row or structural field: {sorted(uncovered)}"
    invented = (structural | set(rows)) - set(props)
    assert not invented, f"{entry.id}: fields the schema does not have: {sorted(invented)}"


@pytest.mark.parametrize("entry", FAL_ENTRIES, ids=_name)
def test_rows_match_the_schema(entry: ModelEntry) -> None:
    props: Schema = _schema(entry)["input"]["properties"]
    for upstream, name in _row_fields(entry).items():
        row, prop = entry.params[name], props[upstream]
        where = f"{entry.id}.{name}"
        assert row.behavior is (Behavior.PASSTHROUGH if name == upstream else Behavior.RENAMED), where
        assert _types(prop) == {row.type.value}, where
        enum = _enum(prop)
        assert row.enum == (tuple(enum) if enum is not None else None), where
        assert row.minimum == prop.get("minimum"), where
        assert row.maximum == prop.get("maximum"), where
        default = prop.get("default")
        assert row.default == default and type(row.default) is type(default), where
        assert _text(row.description) == _text(prop.get("description", "")), where
    if "guidance_scale" in props:
        assert entry.params["cfg_scale"].upstream == "guidance_scale"
    for name, row in entry.params.items():
        if row.behavior is Behavior.UNSUPPORTED:
            assert name not in props and row.upstream is None, f"{entry.id}.{name} exists upstream"


@pytest.mark.parametrize("entry", FAL_ENTRIES, ids=_name)
def test_structure_matches_the_schema(entry: ModelEntry) -> None:
    schema = _schema(entry)
    props: Schema = schema["input"]["properties"]
    if entry.images is not None:
        assert "edit" in entry.modes
        image = props[entry.images.field]
        assert (entry.images.kind == "list") == (image["type"] == "array")
        assert entry.images.kind == "list" or entry.images.max_images == 1
    else:
        assert entry.modes == ("generate",)
    if entry.count.field is not None:
        assert entry.count.max == props[entry.count.field].get("maximum", entry.count.max)
    if "output_format" in props:
        assert entry.output_format.field == "output_format"
        assert list(entry.output_format.values) == props["output_format"]["enum"]
        assert entry.output_format.default == props["output_format"].get("default")
    else:
        assert entry.output_format.field is None

    size = entry.size
    if size.kind == "none":
        assert not {"image_size", "aspect_ratio", "resolution_mode"} & set(props)
    elif size.kind in ("aspect_ratio", "pixel_enum"):
        assert size.field is not None
        assert list(size.values) == _enum(props[size.field])
    else:
        assert size.field is not None
        prop = props[size.field]
        assert "object" in _types(prop)
        assert set(size.presets) <= set(_enum(prop) or [])
        assert size.max_side == IMAGE_SIZE_MAX
        assert schema["input"]["$defs"]["ImageSize"]["properties"]["width"]["maximum"] == IMAGE_SIZE_MAX
        default = prop.get("default")
        expected = (default["width"], default["height"]) if isinstance(default, dict) else (None, None)
        assert (size.default_width, size.default_height) == expected

    output: Schema = schema["output"]
    assert entry.result_field in output["properties"]
    assert entry.result_field in output.get("required", [])


@pytest.mark.parametrize("entry", FAL_ENTRIES, ids=_name)
def test_required_fields_are_produced(entry: ModelEntry) -> None:
    produced = {entry.prompt_field, *entry.fixed}
    if entry.images is not None:
        produced.add(entry.images.field)
    required = set(_schema(entry)["input"].get("required", []))
    assert required <= produced, f"{entry.id}: required but never sent: {sorted(required - produced)}"
