"""The openai adapter against the fake upstream: request shapes, credentials, b64 and url results."""

from __future__ import annotations

import pytest
from pydantic import JsonValue

from core.errors import ProviderNotConfiguredError, UpstreamError
from tests.fakes.fake_openai import FakeOpenAIServer, result_png
from tests.providers.openai_calls import (
    API_KEY,
    edit_call,
    generate_call,
    png_input,
    run_call,
    settings,
    webp_input,
)


def test_generation_is_json_with_model_and_bearer(fake_openai: FakeOpenAIServer) -> None:
    call = generate_call(
        {"prompt": "a red fox", "n": 2, "size": "1024x1536", "quality": "high", "background": None},
        upstream="gpt-image-1.5",
    )
    result = run_call(settings(fake_openai.base_url), call)

    [request] = fake_openai.app.requests
    assert request.path == "/v1/images/generations"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.json() == {
        "model": "gpt-image-1.5",
        "prompt": "a red fox",
        "n": 2,
        "size": "1024x1536",
        "quality": "high",
        "background": None,
    }
    assert [image.data for image in result.images] == [result_png(), result_png()]
    assert result.upstream_request_id == "req_fake"


def test_single_image_edit_is_multipart_with_image_and_mask(fake_openai: FakeOpenAIServer) -> None:
    source, mask = png_input(), png_input(color=(0, 0, 0, 0))
    payload: dict[str, JsonValue] = {
        "prompt": "make it blue",
        "n": 1,
        "stream": False,
        "output_compression": 80,
        "user": None,
    }
    result = run_call(settings(fake_openai.base_url), edit_call(payload, (source,), mask))

    [request] = fake_openai.app.requests
    assert request.path == "/v1/images/edits"
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    form = request.form()
    assert form.fields == [
        ("model", "gpt-image-1"),
        ("prompt", "make it blue"),
        ("n", "1"),
        ("stream", "false"),
        ("output_compression", "80"),
    ]
    assert [(f.name, f.filename, f.content_type) for f in form.files] == [
        ("image", "image-0.png", "image/png"),
        ("mask", "mask.png", "image/png"),
    ]
    assert form.files[0].data == source.data
    assert form.files[1].data == mask.data
    assert len(result.images) == 1


def test_several_images_go_as_image_brackets_in_order(fake_openai: FakeOpenAIServer) -> None:
    first, second, third = png_input(color=(1, 2, 3, 255)), webp_input(), png_input(color=(9, 9, 9, 255))
    payload: dict[str, JsonValue] = {"prompt": "combine", "tags": ["a", "b"], "extra": {"seed": 7, "raw": True}}
    run_call(settings(fake_openai.base_url), edit_call(payload, (first, second, third)))

    form = fake_openai.app.requests[0].form()
    assert [(f.name, f.filename, f.content_type) for f in form.files] == [
        ("image[]", "image-0.png", "image/png"),
        ("image[]", "image-1.webp", "image/webp"),
        ("image[]", "image-2.png", "image/png"),
    ]
    assert [f.data for f in form.files] == [first.data, second.data, third.data]
    assert ("tags[]", "a") in form.fields and ("tags[]", "b") in form.fields
    assert ("extra[seed]", "7") in form.fields and ("extra[raw]", "true") in form.fields


def test_revised_prompt_is_kept(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.app.revised_prompt = "A photograph of a red fox in snow"
    result = run_call(settings(fake_openai.base_url), generate_call({"prompt": "fox"}, upstream="dall-e-3"))
    assert result.images[0].revised_prompt == "A photograph of a red fox in snow"


def test_url_results_are_downloaded_from_the_configured_host(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.app.result = "url"
    result = run_call(settings(fake_openai.base_url), generate_call({"prompt": "fox", "n": 3}))
    assert [image.data for image in result.images] == [result_png()] * 3
    assert [r.path for r in fake_openai.app.requests] == ["/v1/images/generations"]


def test_url_results_on_an_unconfigured_private_host_are_refused(fake_openai: FakeOpenAIServer) -> None:
    # The adapter talks to "localhost", the result URL names 127.0.0.1: not a configured host.
    fake_openai.app.result = "url"
    fake_openai.app.url_host = f"127.0.0.1:{fake_openai.port}"
    base = fake_openai.base_url.replace("127.0.0.1", "localhost")
    with pytest.raises(UpstreamError) as failure:
        run_call(settings(base), generate_call({"prompt": "fox"}))
    assert failure.value.code == "upstream_fetch_failed"


def test_url_results_on_a_fetch_host_are_allowed(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.app.result = "url"
    fake_openai.app.url_host = f"127.0.0.1:{fake_openai.port}"
    base = fake_openai.base_url.replace("127.0.0.1", "localhost")
    result = run_call(settings(base, fetch_hosts=("127.0.0.1",)), generate_call({"prompt": "fox"}))
    assert result.images[0].data == result_png()


def test_no_key_on_a_remote_base_url_is_not_configured() -> None:
    with pytest.raises(ProviderNotConfiguredError) as failure:
        run_call(settings("https://api.openai.example/v1", api_key=None), generate_call({"prompt": "fox"}))
    assert failure.value.status_code == 503


def test_no_key_on_loopback_sends_no_authorization(fake_openai: FakeOpenAIServer) -> None:
    result = run_call(settings(fake_openai.base_url, api_key=None), generate_call({"prompt": "fox"}))
    assert len(result.images) == 1
    assert "authorization" not in fake_openai.app.requests[0].headers


def test_field_names_cannot_break_out_of_their_part(fake_openai: FakeOpenAIServer) -> None:
    payload: dict[str, JsonValue] = {"prompt": "x", 'evil"; filename="x': "1"}
    run_call(settings(fake_openai.base_url), edit_call(payload, (png_input(),)))
    form = fake_openai.app.requests[0].form()
    assert ("evil%22; filename=%22x", "1") in form.fields
    assert [f.name for f in form.files] == ["image"]
