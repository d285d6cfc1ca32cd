"""The models the fake Replicate serves: their input schemas, input validation, and output size rules.

Each model comes from its file in ``tests/fixtures/replicate_schemas/`` (copies of the shared
reference, see its README): ``input.properties`` with enums resolved, ``required``, and whether the
output is one URL string or a list. ``prunaai/hidream-e1.1`` has no schema there, only the fields its
public callers send: its types here are those callers' (unconfirmed), and unknown keys are let through.

Validation answers what Replicate's 422 lists (the reference, section 7.2): ``invalid_fields`` items
``{type, field, description}`` with the types ``required``, ``enum``, ``invalid_type``,
``number_gte``/``number_lte``, ``format`` and ``additional_property_not_allowed``. Whether Replicate
rejects unknown keys *inside* ``input`` is unconfirmed (cog models usually ignore them): this fake
rejects them by default (``FakeReplicate.strict_input``) so an adapter sending a wrong field name fails.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import JsonValue

from tests.fakes.fal_images import ImageFormat

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "replicate_schemas"
JsonObject = dict[str, JsonValue]

HIDREAM_E1_1 = "prunaai/hidream-e1.1"
# From the public callers listed in the fixture (types, required-ness and the output_format enum are
# unconfirmed: no schema of this model was found). output_format takes hidream-l1's enum.
_HIDREAM_E1_1_PROPERTIES: dict[str, JsonObject] = {
    "prompt": {"type": "string"},
    "image": {"type": "string", "format": "uri"},
    "seed": {"type": "integer", "default": -1},
    "guidance_scale": {"type": "number"},
    "image_guidance_scale": {"type": "number"},
    "num_inference_steps": {"type": "integer"},
    "refine_strength": {"type": "number"},
    "clip_cfg_norm": {"type": "boolean"},
    "speed_mode": {"type": "string"},
    "output_format": {"type": "string", "enum": ["png", "jpg", "webp"], "default": "webp"},
    "output_quality": {"type": "integer", "minimum": 1, "maximum": 100},
}
_VERSION_IN_TEXT = re.compile(r"\b[0-9a-f]{64}\b")
_RATIO = re.compile(r"^(\d+):(\d+)$")
_DISPLAY_SIZE = re.compile(r"^(\d+) \u00d7 (\d+)")  # the U+00D7 of hidream-l1 display sizes
_TIERS = {"1K": 1024, "2K": 2048, "4K": 4096}


@dataclass(frozen=True)
class ModelSpec:
    """One Replicate model as the fake serves it."""

    name: str
    """``owner/name``."""
    official: bool
    """Served on ``POST /v1/models/{owner}/{name}/predictions``; community models need the version route."""
    version: str
    """The 64-hex version id the version route accepts: the model file's own, else one its sources name
    (a version page), else a placeholder (hidream-l1-fast, whose version is not in the reference)."""
    properties: dict[str, JsonObject]
    required: tuple[str, ...]
    output_is_list: bool
    strict: bool
    """Unknown ``input`` keys are a 422 (when the fake is strict)."""
    pixels: dict[str, tuple[int, int]]
    """Pixel size per ``aspect_ratio`` where the schema file gives a table (flux-kontext-dev)."""

    def default(self, field: str) -> JsonValue:
        return self.properties.get(field, {}).get("default")

    def image_fields(self) -> list[str]:
        """Fields that take image URIs: a ``format: uri`` string or an array of them."""
        names = []
        for name, schema in self.properties.items():
            items = schema.get("items")
            if schema.get("format") == "uri" or (isinstance(items, dict) and items.get("format") == "uri"):
                names.append(name)
        return names


@functools.cache
def load_models() -> dict[str, ModelSpec]:
    """Every model of the fixture directory, by ``owner/name``."""
    models: dict[str, ModelSpec] = {}
    for path in sorted(FIXTURES.glob("*.json")):
        spec = _spec(json.loads(path.read_text(encoding="utf-8")))
        models[spec.name] = spec
    return models


def _spec(doc: JsonObject) -> ModelSpec:
    name = str(doc["model"])
    official = not name.startswith("prunaai/")
    version = doc.get("version_id")
    if not isinstance(version, str):
        # hidream-e1.1's version is named in its sources; hidream-l1-fast's is not in the reference at
        # all, so it gets a stable placeholder (the fake accepts it; the real API would not).
        found = _VERSION_IN_TEXT.search(json.dumps(doc.get("sources", "")))
        version = found.group(0) if found else hashlib.sha256(name.encode()).hexdigest()
    output = doc.get("output")
    output_is_list = isinstance(output, dict) and output.get("type") == "array"
    if name == HIDREAM_E1_1:
        return ModelSpec(name, official, version, _HIDREAM_E1_1_PROPERTIES, ("prompt", "image"), False, False, {})
    schema = doc["input"]
    assert isinstance(schema, dict)
    enums = doc.get("input_enums", {})
    assert isinstance(enums, dict)
    properties: dict[str, JsonObject] = {}
    raw_properties = schema["properties"]
    assert isinstance(raw_properties, dict)
    for field, raw in raw_properties.items():
        assert isinstance(raw, dict)
        properties[field] = _resolve(raw, enums)
    required = schema.get("required", [])
    assert isinstance(required, list)
    pixels: dict[str, tuple[int, int]] = {}
    table = doc.get("aspect_ratio_pixels")
    if isinstance(table, dict):
        for ratio, size in table.items():
            if isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size):
                pixels[ratio] = (int(str(size[0])), int(str(size[1])))
    return ModelSpec(name, official, version, properties, tuple(map(str, required)), output_is_list, True, pixels)


def _resolve(schema: JsonObject, enums: JsonObject) -> JsonObject:
    """Inline an ``allOf: [{$ref: #/components/schemas/X}]`` enum (raw cog schemas) from ``input_enums``."""
    all_of = schema.get("allOf")
    if not isinstance(all_of, list) or not all_of or not isinstance(all_of[0], dict):
        return schema
    ref = str(all_of[0].get("$ref", "")).rsplit("/", 1)[-1]
    target = enums.get(ref)
    resolved = {k: v for k, v in schema.items() if k != "allOf"}
    if isinstance(target, dict):
        resolved.update(type=target.get("type", "string"), enum=target.get("enum", []))
    return resolved


# -- validation -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Invalid:
    """One ``invalid_fields`` item of a 422."""

    type: str
    field: str
    description: str

    def as_json(self) -> JsonObject:
        return {"type": self.type, "field": self.field, "description": self.description}

    def detail_line(self) -> str:
        return f"- {self.description}" if self.field in ("", "(root)") else f"- {self.field}: {self.description}"


def validate_input(spec: ModelSpec, payload: JsonValue, *, strict: bool) -> list[Invalid]:
    """Everything wrong with ``input`` against the model's schema; empty when it is valid."""
    if not isinstance(payload, dict):
        return [Invalid("invalid_type", "input", f"Invalid type. Expected: object, given: {_json_type(payload)}")]
    problems = [Invalid("required", "input", f"{name} is required") for name in spec.required if name not in payload]
    for name, value in payload.items():
        schema = spec.properties.get(name)
        if schema is None:
            if strict and spec.strict:
                problems.append(
                    Invalid("additional_property_not_allowed", "input", f"Additional property {name} is not allowed")
                )
            continue
        problems.extend(_check(f"input.{name}", name, schema, value))
    return problems


def _check(path: str, name: str, schema: JsonObject, value: JsonValue) -> list[Invalid]:
    expected = schema.get("type")
    if value is None:
        if schema.get("nullable") is True:
            return []
        return [Invalid("invalid_type", path, f"Invalid type. Expected: {expected}, given: null")]
    if isinstance(expected, str) and not _has_type(value, expected):
        return [Invalid("invalid_type", path, f"Invalid type. Expected: {expected}, given: {_json_type(value)}")]
    enum = schema.get("enum")
    if isinstance(enum, list) and value not in enum:
        options = ", ".join(json.dumps(option, ensure_ascii=False) for option in enum)
        return [Invalid("enum", path, f"{name} must be one of the following: {options}")]
    if isinstance(value, int | float) and not isinstance(value, bool):
        minimum, maximum = schema.get("minimum"), schema.get("maximum")
        if isinstance(minimum, int | float) and value < minimum:
            return [Invalid("number_gte", path, f"Must be greater than or equal to {minimum}")]
        if isinstance(maximum, int | float) and value > maximum:
            return [Invalid("number_lte", path, f"Must be less than or equal to {maximum}")]
    if schema.get("format") == "uri" and isinstance(value, str) and not urlsplit(value).scheme:
        return [Invalid("format", path, "Does not match format 'uri'")]
    items = schema.get("items")
    if isinstance(value, list) and isinstance(items, dict):
        problems: list[Invalid] = []
        for index, item in enumerate(value):
            problems.extend(_check(f"{path}.{index}", f"{name}.{index}", items, item))
        return problems
    return []


def _has_type(value: JsonValue, expected: str) -> bool:
    checks = {
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
        "array": isinstance(value, list),
        "object": isinstance(value, dict),
    }
    return checks.get(expected, True)


def _json_type(value: JsonValue) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


# -- outputs --------------------------------------------------------------------------------------


def output_format(spec: ModelSpec, payload: JsonObject) -> ImageFormat:
    """The encoding of the model's outputs: its ``output_format`` (``jpg`` is JPEG), else JPEG."""
    value = payload.get("output_format", spec.default("output_format"))
    return "png" if value == "png" else "webp" if value == "webp" else "jpeg"


def output_count(spec: ModelSpec, payload: JsonObject) -> int:
    """flux-schnell's ``num_outputs``; seedream's ``max_images`` with sequential generation; else one."""
    if "num_outputs" in spec.properties:
        count = payload.get("num_outputs", spec.default("num_outputs"))
        return count if isinstance(count, int) else 1
    if payload.get("sequential_image_generation") == "auto":
        count = payload.get("max_images", spec.default("max_images"))
        return count if isinstance(count, int) else 1
    return 1


def output_size(spec: ModelSpec, payload: JsonObject, input_size: tuple[int, int] | None) -> tuple[int, int]:
    """The pixel size a model makes for ``payload`` (``input_size``: its first input image's, if any).

    Where the reference gives a table (flux-kontext-dev's ratios, hidream-l1's display strings) it is
    used; otherwise the size is the ratio at about the tier's area (1 MP; ``1K``/``2K``/``4K``;
    flux-schnell's ``megapixels``), in multiples of 16: an approximation of the real sizes.
    """

    def value(field: str) -> JsonValue:
        return payload.get(field, spec.default(field))

    resolution = value("resolution")
    if isinstance(resolution, str) and (display := _DISPLAY_SIZE.match(resolution)):
        return int(display.group(1)), int(display.group(2))
    ratio = value("aspect_ratio")
    side = 1024
    if value("size") == "custom" or ratio == "custom":
        width, height = value("width"), value("height")
        return _multiple(width if isinstance(width, int) else 1024), _multiple(
            height if isinstance(height, int) else 1024
        )
    for tier_field in ("size", "resolution"):
        tier = value(tier_field)
        if isinstance(tier, str) and tier in _TIERS:
            side = _TIERS[tier]
    if value("megapixels") == "0.25":
        side = 512
    if isinstance(ratio, str) and ratio in spec.pixels:
        return spec.pixels[ratio]
    if isinstance(ratio, str) and (match := _RATIO.match(ratio)):
        return _by_ratio(int(match.group(1)) / int(match.group(2)), side)
    if input_size is None:
        return side, side
    if side == 1024 and not any(f in spec.properties for f in ("size", "resolution", "megapixels")):
        return input_size  # an edit without a size control keeps its input's size
    return _by_ratio(input_size[0] / input_size[1], side)


def _by_ratio(ratio: float, side: int) -> tuple[int, int]:
    return _multiple(side * math.sqrt(ratio)), _multiple(side / math.sqrt(ratio))


def _multiple(value: float, step: int = 16) -> int:
    return max(step, round(value / step) * step)
