"""The Gemini error mapping and request placement in process: Google's texts the fake does not send."""

from __future__ import annotations

import httpx
import pytest

from core.errors import InvalidRequestError, UpstreamError
from providers.gemini.errors import error_from_response, upstream_param
from providers.gemini.request import camel


@pytest.mark.parametrize(
    ("message", "param"),
    [
        (
            "Invalid JSON payload received. Unknown name \"aspectRatio\" at 'generation_config': Cannot find field.",
            "aspectRatio",
        ),
        ("Invalid value at 'generation_config.image_config.aspect_ratio' (TYPE_STRING), \"7:1\"", "aspectRatio"),
        ("Invalid value at 'contents[0].parts[0].inline_data.data' (TYPE_BYTES), Base64 decoding failed", "inlineData"),
        ("Unable to process input image. Please retry", "inlineData"),
        ("Multiple candidates is not enabled for models/gemini-2.5-flash-image", None),
    ],
)
def test_a_400_names_the_request_field(message: str, param: str | None) -> None:
    assert upstream_param(message) == param


def test_a_failed_precondition_is_the_accounts_problem_not_the_clients() -> None:
    body = {"error": {"code": 400, "status": "FAILED_PRECONDITION", "message": "User location is not supported"}}
    error = error_from_response(httpx.Response(400, json=body), upstream="m", secret=None)
    assert type(error) is UpstreamError and "FAILED_PRECONDITION" in error.message


def test_a_400_quoting_the_key_is_scrubbed() -> None:
    body = {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "bad request for key AIza-secret-key"}}
    error = error_from_response(httpx.Response(400, json=body), upstream="m", secret="AIza-secret-key")
    assert isinstance(error, InvalidRequestError) and "AIza-secret-key" not in error.message


def test_a_429_without_retry_info_passes_retry_after_on() -> None:
    error = error_from_response(httpx.Response(429, headers={"retry-after": "7"}, text="{}"), upstream="m", secret=None)
    assert error.code == "upstream_rate_limited" and error.headers == {"retry-after": "7"}


@pytest.mark.parametrize(
    ("name", "expected"), [("aspect_ratio", "aspectRatio"), ("imageSize", "imageSize"), ("seed", "seed")]
)
def test_field_names_are_placed_by_their_camel_case(name: str, expected: str) -> None:
    assert camel(name) == expected
