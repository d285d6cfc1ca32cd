"""The openai adapter's streamed calls (``partial_images``) against the fake upstream's image stream.

What the adapter must do (the wire contract, sections 1.5 and 3.6): send ``stream: true`` and
``partial_images`` (JSON for generations, form fields for edits) only when the call asks for
partial images; tell each ``*.partial_image`` event to ``on_partial`` and return the
``*.completed`` images; map an ``error`` event (nested or flat: which one OpenAI's image streams
send is unconfirmed) as a failed request is mapped; retry only before the stream starts; read a
JSON answer from an upstream that ignores ``stream``.
"""

from __future__ import annotations

import base64

import orjson
import pytest
from pydantic import JsonValue

from core.errors import InvalidRequestError, ModerationBlockedError, UpstreamError
from providers.base import PartialImage, UpstreamCall
from tests.fakes.fake_openai import FakeOpenAIServer, partial_png, result_png
from tests.providers.openai_calls import edit_call, generate_call, png_input, run_streamed, settings


def _asking(call: UpstreamCall, partials: int) -> UpstreamCall:
    return call.model_copy(update={"partial_images": partials})


def test_a_generation_streams_its_partials_then_returns_the_images(fake_openai: FakeOpenAIServer) -> None:
    payload: dict[str, JsonValue] = {"prompt": "a fox", "n": 2, "partial_images": 2}
    call = _asking(generate_call(payload), 2).model_copy(update={"index": 3})
    result, partials = run_streamed(settings(fake_openai.base_url), call)

    [request] = fake_openai.app.requests
    assert request.json() == {"model": "gpt-image-1", "prompt": "a fox", "n": 2, "partial_images": 2, "stream": True}
    assert [(p.index, p.call, p.size, p.output_format) for p in partials] == [
        (0, 3, "1024x1024", "png"),
        (1, 3, "1024x1024", "png"),
    ]
    assert all(base64.b64decode(p.b64_json) == partial_png() for p in partials)
    assert [image.data for image in result.images] == [result_png(), result_png()]
    assert result.upstream_request_id == "req_fake"


def test_an_edit_sends_stream_and_partial_images_as_form_fields(fake_openai: FakeOpenAIServer) -> None:
    call = _asking(edit_call({"prompt": "blue"}, (png_input(),)), 1)
    result, partials = run_streamed(settings(fake_openai.base_url), call)

    fields = dict(fake_openai.app.requests[0].form().fields)
    assert (fields["stream"], fields["partial_images"]) == ("true", "1")
    assert [p.index for p in partials] == [0]
    assert [image.data for image in result.images] == [result_png()]


def test_no_partials_asked_is_an_ordinary_request(fake_openai: FakeOpenAIServer) -> None:
    result, partials = run_streamed(settings(fake_openai.base_url), generate_call({"prompt": "x"}))
    assert fake_openai.app.requests[0].json() == {"model": "gpt-image-1", "prompt": "x"}
    assert partials == [] and len(result.images) == 1


def _streamed_partials(
    fake_openai: FakeOpenAIServer, *, max_retries: int, told: list[PartialImage] | None = None
) -> list[int]:
    call = _asking(generate_call({"prompt": "x"}), 2)
    _, partials = run_streamed(settings(fake_openai.base_url, max_retries=max_retries), call, told=told)
    return [p.index for p in partials]


@pytest.mark.parametrize("flat", [False, True])
def test_an_error_event_fails_the_call_after_the_partials_it_followed(
    fake_openai: FakeOpenAIServer, flat: bool
) -> None:
    fake_openai.app.fail_stream_next(after_partials=1, message="boom", error_type="server_error", flat=flat)
    told: list[PartialImage] = []
    with pytest.raises(UpstreamError) as failure:
        _streamed_partials(fake_openai, max_retries=2, told=told)
    assert (failure.value.status_code, failure.value.code) == (502, "upstream_error")
    assert "boom" not in failure.value.message  # an upstream's server error is not quoted to the client
    assert any("boom" in note for note in failure.value.__notes__)  # but is logged
    assert [p.index for p in told] == [0]  # the preview before the failure was passed on
    assert len(fake_openai.app.requests) == 1  # a stream that started is never sent again


def test_a_moderation_error_event_is_moderation_blocked(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.app.fail_stream_next(
        after_partials=2, message="rejected", error_type="image_generation_user_error", code="moderation_blocked"
    )
    with pytest.raises(ModerationBlockedError) as failure:
        _streamed_partials(fake_openai, max_retries=0)
    assert (failure.value.status_code, failure.value.code) == (400, "moderation_blocked")


def test_a_user_error_event_names_the_upstream_param(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.app.fail_stream_next(
        message="Invalid size", error_type="invalid_request_error", code="invalid_value", param="size"
    )
    with pytest.raises(InvalidRequestError) as failure:
        _streamed_partials(fake_openai, max_retries=0)
    assert (failure.value.param, failure.value.code, failure.value.message) == ("size", "invalid_value", "Invalid size")


def test_a_refusal_before_the_stream_is_retried_then_streams(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.app.fail_next(500, error_type="server_error")
    assert _streamed_partials(fake_openai, max_retries=1) == [0, 1]
    assert len(fake_openai.app.requests) == 2


def test_a_status_error_of_a_streamed_request_is_mapped_as_usual(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.app.fail_next(429, error_type="insufficient_quota", code="insufficient_quota")
    with pytest.raises(UpstreamError) as failure:
        _streamed_partials(fake_openai, max_retries=2)
    assert failure.value.code == "upstream_quota_exhausted"
    assert len(fake_openai.app.requests) == 1


def test_an_upstream_that_ignores_stream_answers_json(fake_openai: FakeOpenAIServer) -> None:
    body = orjson.dumps({"created": 1, "data": [{"b64_json": base64.b64encode(result_png()).decode()}]})
    fake_openai.app.answer_next(200, body)
    result, partials = run_streamed(settings(fake_openai.base_url), _asking(generate_call({"prompt": "x"}), 2))
    assert partials == [] and [image.data for image in result.images] == [result_png()]


def test_a_stream_without_a_completed_image_is_a_bad_response(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.app.answer_next(200, b"event: x\ndata: {}\n\n", headers={"content-type": "text/event-stream"})
    with pytest.raises(UpstreamError) as failure:
        _streamed_partials(fake_openai, max_retries=0)
    assert failure.value.code == "upstream_bad_response"
