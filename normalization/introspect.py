"""The parameter table a user reads in ``GET /v1/models/{id}``: every parameter, one row each.

Rows for the standard parameters are derived from the entry's structural specs by the same rules
the engine applies; the model's own rows come from its table. What this shows is what happens.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, JsonValue

from core.images import FORMAT_NAMES
from normalization.catalog import Behavior, ModelEntry, ParamSpec
from normalization.emulation.response_format import choose_response_format
from normalization.engine import PlanSettings
from normalization.planner import CONTRACT_TABLE_FIELDS, OPENAI_ONLY_FIELDS


class ParamRow(BaseModel):
    """One row of the table. ``minimum``/``maximum`` bound a number; ``max_length`` a string's
    characters; ``max_items`` how many files or items a list parameter takes."""

    model_config = ConfigDict(frozen=True)

    behavior: Behavior
    upstream: str | None = None
    type: str = "string"
    values: tuple[JsonValue, ...] | None = None
    # int first: integer bounds render as 50, not 50.0 (pydantic's smart union keeps the type).
    minimum: int | float | None = None
    maximum: int | float | None = None
    min_length: int | None = None
    max_length: int | None = None
    max_items: int | None = None
    default: JsonValue = None
    description: str = ""


def parameter_table(entry: ModelEntry, settings: PlanSettings | None = None) -> dict[str, ParamRow]:
    """Every parameter a client may send to ``entry``, by the client's name, under ``settings``
    (the gateway's prompt limit and default response format)."""
    settings = settings or PlanSettings()
    rows: dict[str, ParamRow] = {
        "model": ParamRow(
            behavior=Behavior.CONVERTED, upstream=entry.upstream, description="selects the upstream endpoint"
        ),
        "prompt": _prompt_row(entry, settings.max_prompt_chars),
    }
    if "edit" in entry.modes and entry.images:
        spec = entry.images
        rows["image"] = ParamRow(
            behavior=Behavior.RENAMED if spec.kind == "single" else Behavior.CONVERTED,
            upstream=spec.field,
            type="file" if spec.kind == "single" else "file[]",
            max_items=spec.max_images,
            description=f"PNG, JPEG or WebP; at most {spec.max_images}; sent as "
            + ("one URL" if spec.kind == "single" else "a list of URLs"),
        )
        rows["mask"] = (
            ParamRow(behavior=Behavior.RENAMED, upstream=spec.mask_field, type="file", description="PNG mask")
            if spec.mask_field
            else ParamRow(behavior=Behavior.UNSUPPORTED, type="file", description="the model takes no mask")
        )
    rows["n"] = _n_row(entry)
    rows.update(_size_rows(entry))
    rows["response_format"] = ParamRow(
        behavior=Behavior.EMULATED,
        values=("url", "b64_json"),
        default=choose_response_format(None, entry, settings.default_response_format),
        description="url: a signed, expiring link to the image hosted by pixelgate; b64_json: inline",
    )
    rows["output_format"] = _format_row(entry)
    compression = entry.params.get("output_compression")
    rows["output_compression"] = ParamRow(
        behavior=compression.behavior if compression else Behavior.EMULATED,
        upstream=(compression.upstream or "output_compression") if compression else None,
        type="integer",
        minimum=0,
        maximum=100,
        description="0-100, higher keeps more quality (jpeg, webp, avif quality; png zlib effort)",
    )
    for name in sorted(CONTRACT_TABLE_FIELDS | OPENAI_ONLY_FIELDS):
        if name not in entry.params:
            rows[name] = ParamRow(behavior=Behavior.UNSUPPORTED, description="the model has no such setting; ignored")
    for name, param in entry.params.items():
        rows[name] = _row(name, param)
    return rows


def _row(name: str, spec: ParamSpec) -> ParamRow:
    behavior = spec.behavior
    if behavior is Behavior.PASSTHROUGH and spec.upstream and spec.upstream != name:
        behavior = Behavior.RENAMED
    return ParamRow(
        behavior=behavior,
        upstream=None if behavior in (Behavior.UNSUPPORTED, Behavior.EMULATED) else (spec.upstream or name),
        type=spec.type.value,
        values=spec.enum,
        minimum=spec.minimum,
        maximum=spec.maximum,
        min_length=spec.min_length,
        max_length=spec.max_length,
        default=spec.default,
        description=spec.description,
    )


def _prompt_row(entry: ModelEntry, max_chars: int) -> ParamRow:
    renamed = entry.prompt_field != "prompt" or entry.prompt_template is not None
    note = f"formatted as {entry.prompt_template!r}" if entry.prompt_template else "the instruction or description"
    return ParamRow(
        behavior=Behavior.RENAMED if renamed else Behavior.PASSTHROUGH,
        upstream=entry.prompt_field,
        min_length=1,
        max_length=max_chars,
        description=f"required; {note}",
    )


def _n_row(entry: ModelEntry) -> ParamRow:
    count = entry.count
    if count.field:
        return ParamRow(
            behavior=Behavior.CONVERTED,
            upstream=count.field,
            type="integer",
            minimum=1,
            maximum=10,
            default=1,
            description=f"native up to {count.max}; beyond that pixelgate makes parallel calls (emulated)",
        )
    return ParamRow(
        behavior=Behavior.EMULATED,
        type="integer",
        minimum=1,
        maximum=10,
        default=1,
        description="one image per upstream call; pixelgate makes n parallel calls",
    )


def _size_rows(entry: ModelEntry) -> dict[str, ParamRow]:
    spec = entry.size
    if spec.kind == "none":
        note = "the model has no size control: pixelgate resizes the result (cover, center-crop)"
        behavior, upstream, values = Behavior.EMULATED, None, None
    elif spec.kind == "dimensions":
        note = f"sent as width/height within {spec.min_side}-{spec.max_side}, multiples of {spec.multiple_of}"
        behavior, upstream, values = (
            Behavior.CONVERTED,
            spec.field or f"{spec.width_field}/{spec.height_field}",
            None,
        )
    else:
        note = "mapped to the nearest supported value; an exact WxH is then fitted by pixelgate"
        behavior, upstream, values = Behavior.CONVERTED, spec.field, spec.values
    default = f"{spec.default_width}x{spec.default_height}" if spec.default_width and spec.default_height else None
    rows = {
        "size": ParamRow(
            behavior=behavior,
            upstream=upstream,
            values=values if spec.kind == "pixel_enum" else None,
            default=default,
            description=f"WxH, W:H or auto; {note}",
        ),
        "aspect_ratio": ParamRow(
            behavior=behavior,
            upstream=upstream,
            values=values if spec.kind == "aspect_ratio" else None,
            description=f"W:H, any ratio; {note}",
        ),
    }
    if spec.tier_field:
        rows["resolution"] = ParamRow(
            behavior=Behavior.CONVERTED,
            upstream=spec.tier_field,
            values=spec.tier_values,
            description="nearest supported tier",
        )
    else:
        # A tier picks native dimensions or the nearest pixel value; a ratio enum has no scale to set.
        native = spec.kind in ("dimensions", "pixel_enum")
        rows["resolution"] = ParamRow(
            behavior=Behavior.CONVERTED if native else Behavior.EMULATED,
            upstream=upstream if native else None,
            values=("0.5K", "1K", "2K", "4K"),
            description="0.5K, 1K, 2K, 4K or megapixels (0.25, 1, ...); " + note,
        )
    return rows


def _format_row(entry: ModelEntry) -> ParamRow:
    spec = entry.output_format
    native = [fmt for fmt in FORMAT_NAMES if fmt in spec.values]
    emulated = [fmt for fmt in FORMAT_NAMES if fmt not in spec.values]
    parts = []
    if native:
        parts.append(f"native: {', '.join(native)}")
    if emulated:
        parts.append(f"converted by pixelgate: {', '.join(emulated)}")
    return ParamRow(
        behavior=Behavior.PASSTHROUGH if spec.field and native else Behavior.EMULATED,
        upstream=spec.field,
        values=FORMAT_NAMES,
        default="png",
        description="; ".join(parts),
    )
