"""The pure parts of async jobs: the packed bytes, the Prefer header, the intake, the stored request."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.jobs import blobs
from app.jobs.intake import async_intake, prefers_async
from app.jobs.models import JobRequest, is_job_id, new_job_id
from core.errors import InvalidRequestError
from core.images import probe_input
from normalization.request import EditInputs, ImageRequest
from tests.images import png_bytes


@given(st.lists(st.binary(max_size=64), max_size=8))
def test_packed_parts_come_back_unchanged(parts: list[bytes]) -> None:
    assert blobs.unpack(blobs.pack(parts)) == parts


@pytest.mark.parametrize("blob", [b"", b"\x00\x00", b"\x00\x00\x00\x02" + b"\x00" * 8, blobs.pack([b"abc"])[:-1]])
def test_a_value_pack_did_not_make_is_refused(blob: bytes) -> None:
    with pytest.raises(ValueError, match="not a packed value"):
        blobs.unpack(blob)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["respond-async"], True),
        (["Respond-Async"], True),
        (["wait=10, respond-async"], True),
        (["return=minimal", "respond-async; foo=bar"], True),
        (["respond-async=1"], True),
        ([], False),
        (["wait=10"], False),
        (["respond-asynchronously"], False),
        (["return=respond-async"], False),
    ],
)
def test_prefer_respond_async_is_read_as_rfc_7240_writes_it(values: list[str], expected: bool) -> None:
    assert prefers_async(values) is expected


def test_a_synchronous_request_is_no_job_and_refuses_a_webhook_url() -> None:
    assert async_intake(ImageRequest(model="m", prompt="p"), respond_async=False) is None
    with pytest.raises(InvalidRequestError) as refused:
        async_intake(
            ImageRequest.model_validate({"model": "m", "webhook_url": "https://x.example/h"}), respond_async=False
        )
    assert refused.value.param == "webhook_url"


def test_the_webhook_url_is_taken_out_of_the_request_it_would_otherwise_pass_upstream() -> None:
    request = ImageRequest.model_validate(
        {"model": "m", "prompt": "p", "seed": 3, "webhook_url": "https://x.example/h"}
    )
    intake = async_intake(request, respond_async=True)
    assert intake is not None
    assert intake.webhook_url == "https://x.example/h"
    assert intake.request.sent_fields() == {"model": "m", "prompt": "p", "seed": 3}


@pytest.mark.parametrize(("fields", "param"), [({"webhook_url": 7}, "webhook_url"), ({"stream": True}, "stream")])
def test_an_async_request_that_cannot_be_one_is_a_400(fields: dict[str, object], param: str) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        async_intake(ImageRequest.model_validate({"model": "m", **fields}), respond_async=True)
    assert refused.value.param == param


def test_a_stored_request_replays_the_same_fields_and_images() -> None:
    request = ImageRequest.model_validate({"model": "m", "prompt": "p", "n": 2, "custom": {"a": [1, 2]}})
    image = probe_input(png_bytes(8, 6), param="image", max_pixels=10**6)
    mask = probe_input(png_bytes(8, 6, color=(0, 0, 0)), param="mask", max_pixels=10**6)
    inputs = EditInputs(images=(image, image), mask=mask)
    stored = JobRequest.of(
        request, "edit", inputs, strict=True, url_fallback=False, base_url="http://gw/", response_format="url"
    )
    again = JobRequest.model_validate_json(stored.model_dump_json())
    assert again.image_request().sent_fields() == request.sent_fields()
    assert again.edit_inputs(blobs.unpack(blobs.pack(stored.input_parts(inputs)))) == inputs
    with pytest.raises(ValueError, match="input images"):
        again.edit_inputs([image.data])


def test_job_ids_are_recognised_and_unguessable() -> None:
    ids = {new_job_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(is_job_id(job_id) for job_id in ids)
    assert not is_job_id("job_../../etc") and not is_job_id("job_" + "0" * 23) and not is_job_id("key_" + "0" * 24)
