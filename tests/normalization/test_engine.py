"""plan_request, in process: the rule engine's decisions for built-in and hand-made catalog entries.

Pure: no server, no upstream. Covers the count split and seeds, pass-through collisions (a field
the translation sets or the entry fixes is a 400 naming it), the exact-size pixel caps, typed
warnings, strict mode's wording, the default response format and the prompt limit.
"""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import InvalidRequestError, UnsupportedParameterError
from core.images import probe_input
from normalization.catalog import Behavior, Mode, ModelEntry, load_builtin_catalog
from normalization.engine import PlanSettings, plan_request
from normalization.plan import ParamWarning, Plan
from normalization.request import EditInputs, ImageRequest
from tests.images import png_bytes

CATALOG = load_builtin_catalog()
INPUT = EditInputs(images=(probe_input(png_bytes(64, 48), param="image", max_pixels=10**6),))


def entry(model_id: str) -> ModelEntry:
    found = CATALOG.get(model_id)
    assert found is not None
    return found.primary


def plan(model_id: str, *, settings: PlanSettings | None = None, strict: bool = False, **fields: Any) -> Plan:
    model = entry(model_id)
    mode: Mode = "edit" if "edit" in model.modes else "generate"
    request = ImageRequest.model_validate({"model": model_id, "prompt": "a cat", **fields})
    inputs = INPUT if mode == "edit" else None
    return plan_request(request, model, mode, inputs, strict=strict, settings=settings)


def refused(model_id: str, *, settings: PlanSettings | None = None, **fields: Any) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as caught:
        plan(model_id, settings=settings, **fields)
    return caught.value


# --- count ----------------------------------------------------------------------------------------


def test_n_beyond_the_native_maximum_is_split_into_balanced_calls() -> None:
    result = plan("hidream-e1-1", n=6)
    assert [call.expected_images for call in result.calls] == [3, 3]
    assert [call.payload["num_images"] for call in result.calls] == [3, 3]
    assert result.parameters["n"].behavior is Behavior.EMULATED


def test_a_seed_on_an_upstream_without_per_image_seeds_makes_one_image_per_call() -> None:
    result = plan("hidream-e1-1", n=3, seed=100)
    assert [(call.payload["num_images"], call.payload["seed"]) for call in result.calls] == [
        (1, 100),
        (1, 101),
        (1, 102),
    ]


def test_the_sandbox_keeps_batches_with_a_seed() -> None:
    result = plan("sandbox-generate", n=4, seed=7)
    assert [(call.payload["num_images"], call.payload["seed"]) for call in result.calls] == [(4, 7)]


# --- pass-through collisions (issue 12 item 4) ----------------------------------------------------


def test_num_images_beside_n_is_refused_naming_it() -> None:
    error = refused("hidream-e1-1", num_images=4)
    assert (error.param, error.code) == ("num_images", "reserved_parameter")
    assert "send 'n' instead" in error.message


@pytest.mark.parametrize("field", ["width", "height"])
def test_raw_size_fields_cannot_override_the_translated_size(field: str) -> None:
    fields: dict[str, Any] = {field: 4096}
    error = refused("sandbox-generate", **fields)
    assert (error.param, error.code) == (field, "reserved_parameter")
    assert "send 'size' instead" in error.message


@pytest.mark.parametrize(
    ("model_id", "field", "owner"),
    [
        ("hidream-e1-1", "image_url", "image"),
        ("hidream-i1-full", "image_size", "size"),
        ("hidream-i1-full", "num_images", "n"),
    ],
)
def test_structural_upstream_fields_are_reserved(model_id: str, field: str, owner: str) -> None:
    fields: dict[str, Any] = {field: "x"}
    error = refused(model_id, **fields)
    assert error.param == field and f"send '{owner}' instead" in error.message


def test_an_entrys_fixed_field_cannot_be_set_by_the_client() -> None:
    custom = ModelEntry.model_validate(
        {"id": "fixed", "provider": "fal", "upstream": "x/y", "modes": ["generate"], "fixed": {"sync_mode": True}}
    )
    request = ImageRequest.model_validate({"model": "fixed", "prompt": "p", "sync_mode": False})
    with pytest.raises(InvalidRequestError) as caught:
        plan_request(request, custom, "generate", None)
    assert (caught.value.param, caught.value.code) == ("sync_mode", "reserved_parameter")


def test_standard_parameters_named_like_upstream_fields_keep_their_meaning() -> None:
    # gpt-image's upstream fields are called n and output_format too: the standard parameters.
    result = plan("gpt-image-1", n=2, output_format="webp")
    assert (result.calls[0].payload["n"], result.calls[0].payload["output_format"]) == (2, "webp")


def test_a_row_sent_under_both_its_names_is_refused() -> None:
    error = refused("hidream-e1-1", cfg_scale=3, guidance_scale=4)
    assert error.code == "conflicting_parameters"
    assert {"cfg_scale", "guidance_scale"} <= set(error.message.replace("'", " ").split())


def test_the_upstream_name_of_a_row_alone_is_that_row() -> None:
    result = plan("hidream-e1-1", guidance_scale="4.5")
    assert result.calls[0].payload["guidance_scale"] == 4.5


def test_an_unknown_field_still_passes_through_as_sent() -> None:
    result = plan("hidream-e1-1", lora_strength={"a": 1})
    assert result.calls[0].payload["lora_strength"] == {"a": 1}
    assert result.parameters["lora_strength"].behavior is Behavior.PASSTHROUGH


def test_translated_fields_always_win_over_nothing_sent() -> None:
    result = plan("sandbox-generate", size="512x256")
    assert (result.calls[0].payload["width"], result.calls[0].payload["height"]) == (512, 256)


# --- exact size within the pixel caps (issue 12 item 3) -------------------------------------------


def test_an_exact_size_over_the_per_image_cap_is_refused_naming_size() -> None:
    error = refused("sandbox-edit", size="16384x16384", n=10)
    assert (error.param, error.code) == ("size", "size_too_large")
    assert "per image" in error.message


def test_n_images_of_an_exact_size_over_the_per_request_cap_are_refused() -> None:
    settings = PlanSettings(max_pixels=64_000_000, max_request_pixels=100_000_000)
    assert plan("sandbox-edit", settings=settings, size="6000x6000", n=2).emulation.target == (6000, 6000)
    error = refused("sandbox-edit", settings=settings, size="6000x6000", n=3)
    assert (error.param, error.code) == ("size", "size_too_large")
    assert "per request" in error.message


def test_a_resolution_tier_resized_by_pixelgate_is_capped_too() -> None:
    error = refused("sandbox-edit", settings=PlanSettings(max_pixels=4_000_000), resolution="4K")
    assert error.param == "size"


def test_no_target_means_no_cap_check() -> None:
    assert plan("sandbox-edit", settings=PlanSettings(max_pixels=1, max_request_pixels=1)).emulation.target is None


# --- warnings, strict mode -----------------------------------------------------------------------


def test_warnings_are_typed() -> None:
    result = plan("sandbox-edit", size="256x256", aspect_ratio="16:9", quality="high")
    assert (
        ParamWarning(
            param="aspect_ratio",
            code="parameter_ignored",
            message="aspect_ratio ignored: size 256x256 fixes shape and scale",
        )
        in result.warnings
    )
    quality = next(warning for warning in result.warnings if warning.param == "quality")
    assert quality.code == "unsupported_parameter" and "was ignored" in quality.message


def test_a_note_that_merely_mentions_ignoring_is_no_warning() -> None:
    # Size notes that are not about an ignored parameter never became warnings by their wording.
    result = plan("sandbox-edit", size="300x200")
    assert result.warnings == ()
    assert result.parameters["size"].note is not None


def test_strict_mode_says_the_request_was_refused() -> None:
    with pytest.raises(UnsupportedParameterError) as caught:
        plan("sandbox-edit", strict=True, quality="high")
    message = caught.value.message
    assert caught.value.param == "quality"
    assert "refused" in message and "was ignored" not in message


# --- response format, prompt limit ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("model_id", "default", "sent", "expected"),
    [
        ("sandbox-generate", "url", None, "url"),
        ("sandbox-generate", "b64_json", None, "b64_json"),
        ("sandbox-generate", "b64_json", "url", "url"),
        ("gpt-image-1", "url", None, "b64_json"),  # the upstream always answers base64, as OpenAI does
        ("gpt-image-1", "url", "url", "url"),
        ("dall-e-3", "url", None, "url"),
    ],
)
def test_response_format_defaults(model_id: str, default: Any, sent: str | None, expected: str) -> None:
    fields: dict[str, Any] = {} if sent is None else {"response_format": sent}
    result = plan(model_id, settings=PlanSettings(default_response_format=default), **fields)
    assert result.emulation.response_format == expected


def test_the_prompt_limit_is_the_configured_one() -> None:
    settings = PlanSettings(max_prompt_chars=10)
    assert plan("sandbox-generate", settings=settings, prompt="x" * 10).calls[0].payload["prompt"] == "x" * 10
    error = refused("sandbox-generate", settings=settings, prompt="x" * 11)
    assert (error.param, error.code) == ("prompt", "string_above_max_length")


# --- stream and partial_images --------------------------------------------------------------------


def test_a_streamed_request_asks_a_model_with_a_partial_images_row_for_them() -> None:
    result = plan("gpt-image-1", stream=True, partial_images=2)
    [call] = result.calls
    assert call.partial_images == 2 and call.payload["partial_images"] == 2
    assert "stream" not in call.payload  # the adapter streams; the engine never sends the field
    assert result.parameters["partial_images"].behavior is Behavior.PASSTHROUGH
    assert result.parameters["stream"].behavior is Behavior.EMULATED
    assert result.warnings == ()


def test_without_stream_partial_images_is_an_ordinary_row() -> None:
    [call] = plan("gpt-image-1", partial_images=2).calls
    assert call.partial_images == 0 and call.payload["partial_images"] == 2


@pytest.mark.parametrize("strict", [False, True])
def test_streamed_partial_images_on_a_model_without_the_row_is_a_warning_even_when_strict(strict: bool) -> None:
    result = plan("sandbox-generate", stream=True, partial_images=2, strict=strict)
    assert all(call.partial_images == 0 and "partial_images" not in call.payload for call in result.calls)
    [warning] = result.warnings
    assert (warning.param, warning.code) == ("partial_images", "unsupported_parameter")
    assert "streams no partial images" in warning.message


def test_stream_false_is_no_warning_nor_are_zero_partial_images_when_streamed() -> None:
    assert plan("sandbox-generate", stream=False).warnings == ()
    assert plan("sandbox-generate", stream=True, partial_images=0).warnings == ()
