"""The model table (GET /v1/models/{id}) in process: configured limits, integer bounds, named fields."""

from __future__ import annotations

import orjson

from normalization.catalog import load_builtin_catalog
from normalization.engine import PlanSettings
from normalization.introspect import parameter_table

CATALOG = load_builtin_catalog()


def table(model_id: str, settings: PlanSettings | None = None) -> dict[str, dict[str, object]]:
    entry = CATALOG.get(model_id)
    assert entry is not None
    rows = parameter_table(entry.primary, settings)
    # As the route renders it: the JSON text decides whether 50 reads as 50 or 50.0.
    rendered = orjson.dumps({name: row.model_dump(mode="json", exclude_none=True) for name, row in rows.items()})
    decoded: dict[str, dict[str, object]] = orjson.loads(rendered)
    return decoded


def test_the_prompt_row_shows_the_configured_limit_as_a_length() -> None:
    prompt = table("sandbox-edit", PlanSettings(max_prompt_chars=1234))["prompt"]
    assert prompt["max_length"] == 1234 and "maximum" not in prompt
    assert table("sandbox-edit")["prompt"]["max_length"] == 32_000


def test_the_image_row_counts_files_as_max_items() -> None:
    image = table("gpt-image-1")["image"]
    assert image["max_items"] == 16 and "maximum" not in image


def test_integer_bounds_are_integers() -> None:
    steps = table("hidream-e1-1")["num_inference_steps"]
    assert (steps["minimum"], steps["maximum"], steps["default"]) == (1, 50, 50)
    assert type(steps["minimum"]) is int and type(steps["maximum"]) is int
    seed = table("sandbox-edit")["seed"]
    assert seed["maximum"] == 4294967295 and type(seed["maximum"]) is int
    cfg = table("hidream-e1-1")["cfg_scale"]
    assert cfg["maximum"] == 20 and type(cfg["maximum"]) is int  # written 20 in the catalog


def test_the_response_format_default_is_the_one_that_applies() -> None:
    assert table("sandbox-edit")["response_format"]["default"] == "url"
    assert table("sandbox-edit", PlanSettings(default_response_format="b64_json"))["response_format"]["default"] == (
        "b64_json"
    )
    assert table("gpt-image-1")["response_format"]["default"] == "b64_json"


def test_output_formats_come_from_the_one_table() -> None:
    assert table("sandbox-edit")["output_format"]["values"] == ["png", "jpeg", "gif", "webp", "avif"]
