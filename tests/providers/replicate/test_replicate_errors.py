"""The Replicate error mapping in process: problem+json bodies and failure texts the fake does not send."""

from __future__ import annotations

import httpx
import pytest
from pydantic import JsonValue

from core.errors import InvalidRequestError, ModerationBlockedError, UpstreamError
from providers.replicate.errors import error_from_failed, error_from_response


def _problem(status: int, body: JsonValue) -> httpx.Response:
    return httpx.Response(status, json=body, headers={"content-type": "application/problem+json"})


@pytest.mark.parametrize(
    ("item", "param"),
    [
        ({"type": "required", "field": "input", "description": "prompt is required"}, "prompt"),
        (
            {"type": "number_lte", "field": "input.num_inference_steps", "description": "Must be ..."},
            "num_inference_steps",
        ),
        (
            {"type": "format", "field": "input.image_input.0", "description": "Does not match format 'uri'"},
            "image_input",
        ),
        (
            {
                "type": "additional_property_not_allowed",
                "field": "input",
                "description": "Additional property foo is not allowed",
            },
            "foo",
        ),
        ({"type": "required", "field": "(root)", "description": "version is required"}, None),
    ],
)
def test_each_invalid_field_names_its_input_field(item: dict[str, JsonValue], param: str | None) -> None:
    error = error_from_response(
        _problem(422, {"status": 422, "title": "Input validation failed", "detail": "-", "invalid_fields": [item]}),
        phase="create",
        upstream="o/m",
        secret=None,
    )
    assert isinstance(error, InvalidRequestError) and error.param == param


def test_a_body_that_is_not_problem_json_still_maps_by_status() -> None:
    error = error_from_response(
        httpx.Response(502, text="<html>bad gateway</html>"), phase="poll", upstream="o/m", secret=None
    )
    assert type(error) is UpstreamError and error.message == "Replicate failed during poll: HTTP 502"


@pytest.mark.parametrize(
    "text",
    [
        "Prediction failed: Async prediction failed: ModelError: The input or output was flagged as sensitive. "
        "Please try again with different inputs. (E005) (uIJ6l3ruRD)",
        "Generated image contained NSFW content. Try running it again with a different prompt.",
    ],
)
def test_sensitive_failures_in_their_wild_forms_are_moderation(text: str) -> None:
    assert isinstance(error_from_failed(text, None), ModerationBlockedError)


def test_a_failure_without_a_code_says_only_that_it_failed() -> None:
    error = error_from_failed("Traceback (most recent call last): KeyError: 'sample' at /src/predict.py", None)
    assert error.message == "the Replicate prediction failed" and error.code == "upstream_job_failed"
