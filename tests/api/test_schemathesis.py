"""schemathesis against the live gateway's own ``/openapi.json``: no 500, every error in the OpenAI shape.

The gateway serves the offline sandbox models, the fal models over the fake fal, and the openai
models over the fake OpenAI upstream; schemathesis generates bodies from the schema the routes
publish (``app/api/openapi_bodies.py``: multipart and JSON edits, JSON generations), valid and not.
Bounded: a few dozen examples per operation, no shrinking of passing runs, well under a minute.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from tests.conftest import TEST_KEY, upstream_settings
from tests.fakes.fake_fal import FakeFal
from tests.fakes.fake_openai import FakeOpenAI, FakeOpenAIServer
from tests.live import LiveGateway

FAL_KEY = "schemathesis-fal-key:secret-5c1d"
OPENAI_KEY = "sk-schemathesis-upstream-77aa"
SECRETS = (FAL_KEY, *FAL_KEY.split(":"), OPENAI_KEY, TEST_KEY)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    data_dir: Path = tmp_path_factory.mktemp("schemathesis")
    with (
        FakeFal(api_key=FAL_KEY, latency=0.01) as fal,
        FakeOpenAIServer(FakeOpenAI(capture=False)) as upstream,
    ):
        conf = upstream_settings(
            data_dir,
            fal=fal,
            fal_key=FAL_KEY,
            openai_server=upstream,
            openai_key=OPENAI_KEY,
            max_retries=0,
            request_timeout_seconds=10,
        )
        with LiveGateway(conf) as gateway:
            yield gateway


MODELS = ("sandbox-edit", "sandbox-generate", "hidream-e1-1", "hidream-i1-fast", "gpt-image-1", "dall-e-2")
# The operations fuzzed, one test each; test_every_published_operation_is_fuzzed keeps this list whole.
OPERATIONS = [
    ("/healthz", "GET"),
    ("/readyz", "GET"),
    ("/v1/images/edits", "POST"),
    ("/v1/images/generations", "POST"),
    ("/v1/images/jobs/{job_id}", "DELETE"),
    ("/v1/images/jobs/{job_id}", "GET"),
    ("/v1/models", "GET"),
    ("/v1/models/{model_id}", "GET"),
]


@pytest.fixture(scope="module")
def published(live: LiveGateway) -> dict[str, Any]:
    """The OpenAPI document the live gateway serves."""
    document: dict[str, Any] = httpx.get(f"{live.base_url}/openapi.json", timeout=30).json()
    return document


def _error_body_problems(body: object) -> list[str]:
    if not isinstance(body, dict) or set(body) != {"error"} or not isinstance(body["error"], dict):
        return [f"not an OpenAI error object: {body!r:.300}"]
    error = body["error"]
    problems = [f"missing '{key}'" for key in ("message", "type", "param", "code") if key not in error]
    if not isinstance(error.get("message"), str) or not error.get("message"):
        problems.append("message is not a non-empty string")
    if not isinstance(error.get("type"), str):
        problems.append("type is not a string")
    for key in ("param", "code"):
        if error.get(key) is not None and not isinstance(error.get(key), str):
            problems.append(f"{key} is neither null nor a string")
    return problems


def test_the_schema_describes_the_hand_read_bodies(published: dict[str, Any]) -> None:
    edit_body = published["paths"]["/v1/images/edits"]["post"]["requestBody"]["content"]
    assert set(edit_body) == {"multipart/form-data", "application/json"}
    assert "application/json" in published["paths"]["/v1/images/generations"]["post"]["requestBody"]["content"]


def test_every_published_operation_is_fuzzed(published: dict[str, Any]) -> None:
    served = sorted((path, method.upper()) for path, item in published["paths"].items() for method in item)
    assert served == OPERATIONS


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_every_operation_answers_within_the_contract(
    live: LiveGateway, published: dict[str, Any], path: str, method: str
) -> None:
    operation = schemathesis.openapi.from_dict(published)[path][method]

    @settings(
        max_examples=80,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    @given(
        case=operation.as_strategy() | operation.as_strategy(schemathesis.GenerationMode.NEGATIVE),
        model=st.none() | st.sampled_from(MODELS),
    )
    def exchange(case: schemathesis.Case[Any], model: str | None) -> None:
        if model is not None and isinstance(case.body, dict):
            case.body["model"] = model  # go past model lookup into the engine and the providers
        response = case.call(base_url=live.base_url, headers={"Authorization": f"Bearer {TEST_KEY}"}, timeout=30)
        case.validate_response(
            response, checks=[not_a_server_error, content_type_conformance, response_schema_conformance]
        )
        assert response.status_code != 500, response.text
        assert "x-request-id" in response.headers
        if response.status_code >= 400:
            assert _error_body_problems(response.json()) == [], (case.body, response.text)
        text = response.text + " ".join(f"{k}: {v}" for k, v in response.headers.items())
        assert not any(secret in text for secret in SECRETS[:-1])

    exchange()
