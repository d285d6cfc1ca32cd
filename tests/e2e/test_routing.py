"""Routing end to end: the openai SDK -> a live pixelgate -> fake fal, fake Replicate and fake Gemini.

Models are configured as a user would (YAML ``deployments``), so these tests hold whatever the built-in
tables say: forcing a deployment, the same client parameters arriving in each provider's own shape,
failover on each kind of failure another provider may not repeat, none on a client fault or a
refusal, every attempt in ``metadata.attempts``, and each call of a fanned-out ``n`` failing over on
its own. The cooling period has its own gateway (tests/e2e/test_routing_cooling.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import TEST_KEY
from tests.fakes.fake_fal import FakeFal
from tests.fakes.fake_gemini import FakeGemini
from tests.fakes.fake_replicate import FakeReplicate
from tests.images import png_bytes
from tests.live import LiveGateway, free_port, settings_from_yaml
from tests.polling import wait_until

FAL_KEY = "fal-routing-key"
TOKEN = "r8_routing_token_0123456789abcdef"
GEMINI_KEY = "AIza-routing-test"
FAL_EDIT = "fal-ai/hidream-e1-1"
QWEN = "qwen/qwen-image-edit"
SLOW_EDIT = "fal-ai/slow-edit"


def config(fal: FakeFal, replicate: FakeReplicate, gemini: FakeGemini, closed_port: int) -> str:
    return f"""
api_keys: [{TEST_KEY}]
breaker_failures: 1000
providers:
  fal: {{api_key: {FAL_KEY}, base_url: "{fal.base_url}", storage_url: "{fal.storage_url}", max_retries: 1}}
  replicate: {{api_key: {TOKEN}, base_url: "{replicate.base_url}", wait_seconds: 1, max_retries: 1}}
  gemini: {{api_key: {GEMINI_KEY}, base_url: "{gemini.base_url}", max_retries: 1}}
  down: {{kind: fal, api_key: k, base_url: "http://127.0.0.1:{closed_port}", max_retries: 0,
          storage_url: "http://127.0.0.1:{closed_port}"}}
  nokey: {{kind: replicate, base_url: "{replicate.base_url}"}}
  slowfal: {{kind: fal, api_key: {FAL_KEY}, base_url: "{fal.base_url}", storage_url: "{fal.storage_url}",
             max_retries: 0, read_timeout_seconds: 0.3}}
models:
  - id: routed-edit
    modes: [edit]
    deployments:
      - provider: fal
        upstream: {FAL_EDIT}
        images: {{field: image_url, kind: single}}
        size: {{kind: dimensions, field: image_size}}
        params: {{seed: {{type: integer}}, negative_prompt: {{type: string}}}}
      - provider: replicate
        upstream: {QWEN}
        params: {{seed: {{type: integer}}, negative_prompt: {{behavior: unsupported}}}}
  - id: unreachable-first
    modes: [edit]
    deployments:
      - {{provider: down, upstream: {FAL_EDIT}, images: {{field: image_url, kind: single}}}}
      - {{provider: replicate, upstream: {QWEN}}}
  - id: slow-first
    modes: [edit]
    deployments:
      - {{provider: slowfal, upstream: {SLOW_EDIT}, images: {{field: image_url, kind: single}}}}
      - {{provider: replicate, upstream: {QWEN}}}
  - id: unconfigured-first
    modes: [edit]
    deployments:
      - {{provider: nokey, upstream: {QWEN}}}
      - {{provider: fal, upstream: {FAL_EDIT}, images: {{field: image_url, kind: single}}}}
  - id: banana-like
    modes: [generate]
    deployments:
      - {{provider: gemini, upstream: gemini-2.5-flash-image}}
      - {{provider: fal, upstream: fal-ai/nano-banana, count: {{field: num_images, max: 4}}}}
"""


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeFal, FakeReplicate, FakeGemini]]:
    with (
        FakeFal(api_key=FAL_KEY, latency=0.05) as fal,
        FakeReplicate(token=TOKEN, latency=0.05) as replicate,
        FakeGemini(api_key=GEMINI_KEY) as gemini,
    ):
        yield fal, replicate, gemini


@pytest.fixture(scope="module")
def live(
    fakes: tuple[FakeFal, FakeReplicate, FakeGemini], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveGateway]:
    settings = settings_from_yaml(tmp_path_factory.mktemp("routing"), config(*fakes, closed_port=free_port()))
    with LiveGateway(settings) as gateway:
        yield gateway


@pytest.fixture
def fal(fakes: tuple[FakeFal, FakeReplicate, FakeGemini]) -> FakeFal:
    fakes[0].reset()
    return fakes[0]


@pytest.fixture
def replicate(fakes: tuple[FakeFal, FakeReplicate, FakeGemini]) -> FakeReplicate:
    fakes[1].reset()
    fakes[1].max_output_side = 96
    return fakes[1]


@pytest.fixture
def gemini(fakes: tuple[FakeFal, FakeReplicate, FakeGemini]) -> FakeGemini:
    fakes[2].reset()
    fakes[2].max_output_side = 96
    return fakes[2]


@pytest.fixture
def sdk(live: LiveGateway, fal: FakeFal, replicate: FakeReplicate, gemini: FakeGemini) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=live.api_url, api_key=TEST_KEY, max_retries=0, timeout=60) as client:
        yield client


def edit(sdk: openai.OpenAI, model: str, **extra: Any) -> tuple[dict[str, Any], Mapping[str, str]]:
    """An edit through the SDK; the answer's metadata and headers."""
    n = extra.pop("n", 1)
    raw = sdk.images.with_raw_response.edit(
        model=model,
        image=("in.png", png_bytes(64, 48), "image/png"),
        prompt=extra.pop("prompt", "make it blue"),
        n=n,
        response_format="b64_json",
        extra_body=extra or None,
    )
    result = raw.parse()
    assert result.data is not None and len(result.data) == n
    metadata: dict[str, Any] = (result.model_extra or {})["metadata"]
    return metadata, raw.headers


def tried(metadata: dict[str, Any]) -> list[tuple[str, int, str | None]]:
    return [(a["provider"], a["status"], a["code"]) for a in metadata["attempts"]]


def test_the_first_deployment_serves_when_it_can(sdk: openai.OpenAI, fal: FakeFal, replicate: FakeReplicate) -> None:
    metadata, headers = edit(sdk, "routed-edit")
    assert tried(metadata) == [("fal", 200, None)]
    assert metadata["provider"] == "fal" and headers["x-pixelgate-provider"] == "fal"
    assert metadata["attempts"][0]["upstream"] == FAL_EDIT and metadata["attempts"][0]["ms"] >= 0
    assert len(fal.submissions) == 1 and replicate.creates == []


@pytest.mark.parametrize("provider", ["fal", "replicate"])
def test_a_forced_deployment_serves_and_the_same_parameters_arrive_in_its_own_shape(
    sdk: openai.OpenAI, fal: FakeFal, replicate: FakeReplicate, provider: str
) -> None:
    metadata, headers = edit(sdk, f"{provider}/routed-edit", seed=7, size="128x72")
    assert tried(metadata) == [(provider, 200, None)] and headers["x-pixelgate-provider"] == provider
    if provider == "fal":
        assert replicate.creates == []
        [submission] = fal.submissions
        assert submission.endpoint_id == FAL_EDIT
        assert submission.payload["seed"] == 7
        assert submission.payload["image_size"] == {"width": 128, "height": 72}
        assert str(submission.payload["image_url"]).startswith(("data:", "http"))
    else:
        assert fal.submissions == []
        [create] = replicate.creates
        assert create.model == QWEN
        assert create.input["seed"] == 7
        assert "aspect_ratio" not in create.input and "size" not in create.input  # no size field: resized here
        assert metadata["parameters"]["size"]["behavior"] == "emulated"
        assert str(create.input["image"]).startswith(("data:", "http"))


@pytest.mark.parametrize(
    ("scenario", "status", "code"),
    [
        ("503_always", 502, "upstream_error"),  # failed after the adapter's retries
        ("429_always", 502, "upstream_rate_limited"),
        ("404", 502, "upstream_model_not_found"),
        ("401", 502, "upstream_auth_failed"),
        ("completed_error", 502, "upstream_error"),
        ("missing_fields", 502, "upstream_bad_response"),
    ],
)
def test_a_failure_another_provider_may_not_repeat_fails_over(
    sdk: openai.OpenAI, fal: FakeFal, replicate: FakeReplicate, scenario: str, status: int, code: str
) -> None:
    fal.endpoint_scenarios[FAL_EDIT] = scenario
    metadata, headers = edit(sdk, "routed-edit")
    [(first, first_status, first_code), served] = tried(metadata)
    assert (first, first_status, first_code) == ("fal", status, code)
    assert served == ("replicate", 200, None)
    assert headers["x-pixelgate-provider"] == "replicate" and len(replicate.creates) == 1


def test_an_unreachable_provider_fails_over(sdk: openai.OpenAI, replicate: FakeReplicate) -> None:
    metadata, _ = edit(sdk, "unreachable-first")
    [(first, first_status, _code), served] = tried(metadata)
    assert first == "down" and first_status in (502, 503, 504)
    assert served == ("replicate", 200, None)


def test_a_provider_that_times_out_fails_over(sdk: openai.OpenAI, fal: FakeFal, replicate: FakeReplicate) -> None:
    fal.endpoint_scenarios[SLOW_EDIT] = "slow_submit:2"  # the submit answers after 2 s; slowfal waits 0.3 s
    metadata, _ = edit(sdk, "slow-first")
    assert tried(metadata)[0][:2] == ("slowfal", 504)
    assert tried(metadata)[1:] == [("replicate", 200, None)]
    # The slow submit lands in the fake later: wait for it so that it cannot fall into another test.
    wait_until(lambda: any(s.endpoint_id == SLOW_EDIT for s in fal.submissions), what="the slow submit", timeout=10)


def test_a_provider_without_credentials_is_passed_over_without_an_attempt(sdk: openai.OpenAI, fal: FakeFal) -> None:
    metadata, headers = edit(sdk, "unconfigured-first")
    assert tried(metadata) == [("fal", 200, None)] and headers["x-pixelgate-provider"] == "fal"


def test_a_forced_deployment_without_credentials_is_a_503(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        edit(sdk, "nokey/unconfigured-first")
    assert caught.value.status_code == 503
    assert caught.value.code == "provider_not_configured"


@pytest.mark.parametrize(
    ("scenario", "code"),
    [("text_only", "upstream_no_image"), ("429_always", "upstream_rate_limited"), ("503_always", None)],
)
def test_gemini_failures_another_provider_may_not_repeat_fail_over(
    sdk: openai.OpenAI, fal: FakeFal, gemini: FakeGemini, scenario: str, code: str | None
) -> None:
    gemini.model_scenarios["gemini-2.5-flash-image"] = scenario
    raw = sdk.images.with_raw_response.generate(model="banana-like", prompt="a cat", response_format="b64_json")
    metadata = (raw.parse().model_extra or {})["metadata"]
    [(first, first_status, first_code), served] = tried(metadata)
    assert first == "gemini" and first_status >= 500 and (code is None or first_code == code)
    assert served == ("fal", 200, None)
    assert [s.endpoint_id for s in fal.submissions if s.endpoint_id != SLOW_EDIT] == ["fal-ai/nano-banana"]


@pytest.mark.parametrize(("scenario", "code"), [("422", None), ("content_policy", "moderation_blocked")])
def test_no_failover_on_a_client_fault_or_a_refusal(
    sdk: openai.OpenAI, fal: FakeFal, replicate: FakeReplicate, scenario: str, code: str | None
) -> None:
    fal.endpoint_scenarios[FAL_EDIT] = scenario
    with pytest.raises(openai.BadRequestError) as caught:
        edit(sdk, "routed-edit")
    assert code is None or caught.value.code == code
    assert replicate.creates == [], "a 400 must not be routed around"


def test_every_deployment_failing_answers_the_last_failure_naming_each_provider(
    sdk: openai.OpenAI, fal: FakeFal, replicate: FakeReplicate
) -> None:
    fal.endpoint_scenarios[FAL_EDIT] = "401"
    replicate.model_scenarios[QWEN] = "402"
    with pytest.raises(openai.APIStatusError) as caught:
        edit(sdk, "routed-edit")
    assert caught.value.status_code == 502
    message = str(caught.value.message)
    assert "fal" in message and "replicate" in message
    # A refused key is not retried: one submit each, none accepted.
    assert (len(fal.attempts), len(fal.submissions), len(replicate.attempts), replicate.creates) == (1, 0, 1, [])


def test_a_forced_deployment_never_fails_over(sdk: openai.OpenAI, fal: FakeFal, replicate: FakeReplicate) -> None:
    fal.endpoint_scenarios[FAL_EDIT] = "401"
    with pytest.raises(openai.APIStatusError) as caught:
        edit(sdk, "fal/routed-edit")
    assert caught.value.status_code == 502 and replicate.creates == []


def test_each_call_of_a_fanned_out_n_fails_over_on_its_own(
    sdk: openai.OpenAI, fal: FakeFal, replicate: FakeReplicate
) -> None:
    # One image per fal call here (no count field): n=3 is three calls; the first submit fails.
    fal.next_scenarios.append("401")
    metadata, _ = edit(sdk, "routed-edit", n=3, seed=100)
    outcomes = sorted(tried(metadata), key=lambda a: (a[0], a[1]))
    assert outcomes == [
        ("fal", 200, None),
        ("fal", 200, None),
        ("fal", 502, "upstream_auth_failed"),
        ("replicate", 200, None),
    ]
    [create] = replicate.creates  # only the failed call's share moved
    assert create.input["seed"] in (100, 101, 102)
    assert metadata["provider"] in ("fal,replicate", "replicate,fal")


def test_cancellation_reaches_replicate_when_the_client_leaves_after_a_failover(
    live: LiveGateway, fal: FakeFal, replicate: FakeReplicate
) -> None:
    fal.endpoint_scenarios[FAL_EDIT] = "401"
    replicate.model_scenarios[QWEN] = "never"
    with (
        openai.OpenAI(base_url=live.api_url, api_key=TEST_KEY, max_retries=0, timeout=1.5) as impatient,
        pytest.raises(openai.APITimeoutError),
    ):
        edit(impatient, "routed-edit")
    wait_until(lambda: len(replicate.cancels) == 1, timeout=15, what="the Replicate prediction cancelled")


def test_models_list_each_model_once_and_show_its_deployments(sdk: openai.OpenAI, live: LiveGateway) -> None:
    ids = [model.id for model in sdk.models.list()]
    assert ids.count("routed-edit") == 1 and "fal/routed-edit" not in ids
    body = httpx.get(f"{live.api_url}/models/routed-edit", headers={"authorization": f"Bearer {TEST_KEY}"}).json()
    assert [(d["provider"], d["upstream"]) for d in body["deployments"]] == [("fal", FAL_EDIT), ("replicate", QWEN)]
    assert body["deployments"][0]["parameters"]["size"]["upstream"] == "image_size"
    assert body["deployments"][1]["parameters"]["size"]["behavior"] == "emulated"
    forced = httpx.get(
        f"{live.api_url}/models/replicate/routed-edit", headers={"authorization": f"Bearer {TEST_KEY}"}
    ).json()
    assert forced["provider"] == "replicate" and len(forced["deployments"]) == 1
    missing = httpx.get(f"{live.api_url}/models/gemini/routed-edit", headers={"authorization": f"Bearer {TEST_KEY}"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"


def test_a_dry_run_shows_the_request_each_deployment_would_get(
    live: LiveGateway, fal: FakeFal, replicate: FakeReplicate
) -> None:
    answer = httpx.post(
        f"{live.api_url}/images/edits?dry_run=true",
        headers={"authorization": f"Bearer {TEST_KEY}"},
        files={"image": ("in.png", png_bytes(64, 48), "image/png")},
        data={"model": "routed-edit", "prompt": "blue", "seed": "5", "size": "128x72"},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    fal_request, replicate_request = (d["upstream_requests"][0]["body"] for d in body["deployments"])
    assert fal_request["image_size"] == {"width": 128, "height": 72} and fal_request["seed"] == 5
    assert replicate_request["seed"] == 5 and "image_size" not in replicate_request
    assert str(replicate_request["image"]).startswith("<image/png 64x48")
    assert fal.submissions == [] and replicate.creates == []
