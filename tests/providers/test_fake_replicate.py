"""The fake Replicate speaks Replicate's protocol: every documented answer shape and every scenario.

Raw httpx against the running fake (what an adapter sees), plus the official ``replicate`` Python
client against it, so adapter tests written against the fake can be trusted.
"""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image
from replicate.client import Client
from replicate.exceptions import ModelError, ReplicateError

from tests.fakes.fake_replicate import FakeReplicate
from tests.fakes.fal_images import render_as
from tests.polling import wait_until

TOKEN = "r8_fake_test_token"
SIDE = 256
KONTEXT = "/models/black-forest-labs/flux-kontext-pro/predictions"
SCHNELL = "/models/black-forest-labs/flux-schnell/predictions"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeReplicate]:
    with FakeReplicate(token=TOKEN, latency=0.05) as fake:
        yield fake


@pytest.fixture
def fake(server: FakeReplicate) -> FakeReplicate:
    server.reset()
    server.max_output_side = SIDE
    server.latency = 0.05
    return server


@pytest.fixture
def api(fake: FakeReplicate) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=20) as client:
        yield client


def data_uri(width: int, height: int, fmt: str = "png") -> str:
    data = render_as(width, height, 3, "png" if fmt == "png" else "jpeg")
    return f"data:image/{fmt};base64,{base64.b64encode(data).decode('ascii')}"


def poll(api: httpx.Client, prediction: dict[str, Any], until: frozenset[str] | None = None) -> dict[str, Any]:
    """Poll ``urls.get`` as a client does until the status is terminal (or in ``until``)."""
    statuses = until or frozenset({"succeeded", "failed", "canceled", "aborted"})
    latest = prediction

    def settled() -> bool:
        nonlocal latest
        latest = api.get(prediction["urls"]["get"]).raise_for_status().json()
        return latest["status"] in statuses

    wait_until(settled, f"prediction {prediction['id']} reaches {sorted(statuses)}")
    return latest


def waited(api: httpx.Client, path: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Create with ``Prefer: wait=5`` and return the prediction."""
    body: dict[str, Any] = api.post(path, json={"input": payload}, headers={"Prefer": "wait=5"}).json()
    return body


def fetch_image(url: str) -> Image.Image:
    response = httpx.get(url)  # output URLs are served without auth
    assert response.status_code == 200, response.text
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image


# -- creating and polling ------------------------------------------------------------------------


def test_official_model_create_is_starting_then_polls_to_a_list_of_urls(api: httpx.Client, fake: FakeReplicate) -> None:
    fake.latency = 1.0  # "starting" for half a second: room for the answer on a loaded machine
    created = api.post(SCHNELL, json={"input": {"prompt": "a fox", "num_outputs": 2, "aspect_ratio": "16:9"}})
    assert created.status_code == 201
    assert created.headers["content-type"].startswith("application/json")
    body = created.json()
    assert body["status"] == "starting" and body["output"] is None and body["error"] is None
    assert body["model"] == "black-forest-labs/flux-schnell" and body["version"] == "hidden"
    assert body["urls"]["get"] == f"{fake.base_url}/predictions/{body['id']}"
    assert body["urls"]["cancel"] == f"{fake.base_url}/predictions/{body['id']}/cancel"
    assert body["input"] == {"prompt": "a fox", "num_outputs": 2, "aspect_ratio": "16:9"}
    assert "Preference-Applied" not in created.headers
    done = poll(api, body)
    assert done["status"] == "succeeded" and done["completed_at"] and done["metrics"]["predict_time"] >= 0
    assert isinstance(done["output"], list) and len(done["output"]) == 2
    image = fetch_image(done["output"][0])
    assert image.format == "WEBP"  # flux-schnell's default output_format
    assert max(image.size) == SIDE and abs(image.size[0] / image.size[1] - 16 / 9) < 0.05
    assert fake.polls and fake.polls[-1] == body["id"]
    assert [a.prediction_id for a in fake.creates] == [body["id"]]


def test_string_output_model_keeps_the_input_size_and_its_default_format(api: httpx.Client) -> None:
    created = api.post(
        KONTEXT, json={"input": {"prompt": "blue", "input_image": data_uri(120, 80)}}, headers={"Prefer": "wait"}
    )
    body = created.json()
    assert created.headers["preference-applied"] == "wait"
    assert body["status"] == "succeeded"
    assert isinstance(body["output"], str)  # kontext's schema: one URI
    image = fetch_image(body["output"])
    assert image.format == "PNG" and image.size == (120, 80)


@pytest.mark.parametrize(
    ("path", "payload", "fmt", "size"),
    [
        ("/models/google/nano-banana/predictions", {"prompt": "x"}, "JPEG", None),
        ("/models/bytedance/seedream-4/predictions", {"prompt": "x", "aspect_ratio": "9:16"}, "JPEG", 9 / 16),
        ("/models/prunaai/hidream-l1-fast/predictions", None, "WEBP", 1360 / 768),
        (
            "/models/qwen/qwen-image-edit/predictions",
            {"prompt": "x", "image": "IMG", "output_format": "png"},
            "PNG",
            1.5,
        ),
    ],
)
def test_output_formats_and_sizes_follow_each_models_schema(
    api: httpx.Client, fake: FakeReplicate, path: str, payload: dict[str, Any] | None, fmt: str, size: float | None
) -> None:
    if payload is None:  # a community model: the version route
        body: dict[str, Any] = {
            "version": f"prunaai/hidream-l1-fast:{fake.versions()['prunaai/hidream-l1-fast']}",
            "input": {"prompt": "x", "resolution": "1360 \u00d7 768 (Landscape)"},
        }
        path = "/predictions"
    else:
        body = {"input": {k: data_uri(300, 200) if v == "IMG" else v for k, v in payload.items()}}
    done = api.post(path, json=body, headers={"Prefer": "wait=5"}).json()
    assert done["status"] == "succeeded", done
    url = done["output"][0] if isinstance(done["output"], list) else done["output"]
    image = fetch_image(url)
    assert image.format == fmt
    expected = 1.0 if size is None else size
    assert abs(image.size[0] / image.size[1] - expected) < 0.03


def test_a_waited_create_can_come_back_still_starting_or_processing(api: httpx.Client, fake: FakeReplicate) -> None:
    started = time.monotonic()
    slow = api.post(SCHNELL, json={"input": {"prompt": "[fake:slow:5]"}}, headers={"Prefer": "wait=1"})
    assert time.monotonic() - started >= 0.9  # held for the wait, then answered as it stood
    assert slow.status_code == 201 and slow.headers["preference-applied"] == "wait=1"
    assert slow.json()["status"] in ("starting", "processing") and slow.json()["output"] is None
    early = api.post(KONTEXT, json={"input": {"prompt": "[fake:sync_processing:0.5]"}}, headers={"Prefer": "wait=5"})
    assert early.json()["status"] == "processing"
    assert isinstance(early.json()["output"], str)  # the output is there before the prediction is terminal
    assert poll(api, early.json())["status"] == "succeeded"
    cancelled = api.post(slow.json()["urls"]["cancel"])
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "canceled"
    assert fake.cancels == [slow.json()["id"]]


def test_cancel_of_a_finished_prediction_leaves_it_as_it_is(api: httpx.Client, fake: FakeReplicate) -> None:
    done = waited(api, KONTEXT, {"prompt": "x"})
    assert api.post(done["urls"]["cancel"]).json()["status"] == "succeeded"
    assert fake.cancels == [done["id"]]
    assert api.post("/predictions/nope/cancel").status_code == 404
    assert api.get("/predictions/nope").json() == {
        "detail": "The requested resource could not be found.",
        "status": 404,
    }


def test_cancel_after_aborts_a_prediction_not_started_and_cancels_a_running_one(
    api: httpx.Client, fake: FakeReplicate
) -> None:
    fake.min_cancel_after_seconds = 1
    queued = api.post(KONTEXT, json={"input": {"prompt": "[fake:slow:8]"}}, headers={"Cancel-After": "1s"}).json()
    running = api.post(KONTEXT, json={"input": {"prompt": "[fake:never]"}}, headers={"Cancel-After": "1"}).json()
    assert queued["deadline"] and queued["status"] == "starting"
    assert poll(api, queued)["status"] == "aborted"
    assert poll(api, running)["status"] == "canceled"
    fake.min_cancel_after_seconds = 5
    short = api.post(KONTEXT, json={"input": {"prompt": "x"}}, headers={"Cancel-After": "4s"})
    assert short.status_code == 422 and "Cancel-After" in short.text


def test_prefer_outside_its_pattern_is_refused(api: httpx.Client) -> None:
    for value in ("wait=0", "wait=61", "respond-async"):
        response = api.post(KONTEXT, json={"input": {"prompt": "x"}}, headers={"Prefer": value})
        assert response.status_code == 422, value


# -- routes, versions and the strict body --------------------------------------------------------


def test_version_route_takes_each_version_form_and_refuses_the_rest(api: httpx.Client, fake: FakeReplicate) -> None:
    hidream = fake.versions()["prunaai/hidream-e1.1"]
    assert hidream.startswith("433436fa")
    edit = {"prompt": "x", "image": data_uri(64, 48)}
    for version in (f"prunaai/hidream-e1.1:{hidream}", hidream):
        body = api.post("/predictions", json={"version": version, "input": edit}).json()
        assert body["model"] == "prunaai/hidream-e1.1" and body["version"] == hidream
    official = api.post("/predictions", json={"version": "google/nano-banana", "input": {"prompt": "x"}})
    assert official.status_code == 201 and official.json()["model"] == "google/nano-banana"
    community = api.post("/models/prunaai/hidream-e1.1/predictions", json={"input": edit})
    assert community.status_code == 404
    assert community.json() == {"detail": "The requested resource could not be found.", "status": 404}
    unknown = api.post("/predictions", json={"version": "f" * 64, "input": edit})
    assert unknown.status_code == 422 and unknown.json()["title"] == "Invalid version or not permitted"
    assert api.post("/predictions", json={"version": "prunaai/hidream-e1.1", "input": edit}).status_code == 422


def test_top_level_body_is_strict(api: httpx.Client) -> None:
    response = api.post("/predictions", json={"model": "x", "input": {"prompt": "x"}})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["detail"] == "- version is required\n- Additional property model is not allowed\n"
    assert [f["type"] for f in body["invalid_fields"]] == ["required", "additional_property_not_allowed"]
    assert api.post(KONTEXT, json={"version": "x", "input": {"prompt": "x"}}).status_code == 422
    assert api.post(KONTEXT, json={"webhook": "https://example.com/h"}).json()["detail"] == "- input is required\n"
    assert api.post(KONTEXT, content=b"{not json").status_code == 400


def test_authorization_is_checked(fake: FakeReplicate) -> None:
    url = f"{fake.base_url}{KONTEXT}"
    missing = httpx.post(url, json={"input": {"prompt": "x"}})
    assert missing.status_code == 401 and missing.headers["content-type"] == "application/problem+json"
    assert missing.json() == {
        "title": "Unauthenticated",
        "detail": "You did not pass an authentication token",
        "status": 401,
    }
    wrong = httpx.post(url, json={"input": {"prompt": "x"}}, headers={"Authorization": "Bearer r8_wrong"})
    assert wrong.json()["detail"] == "You did not pass a valid authentication token"
    legacy = httpx.post(url, json={"input": {"prompt": "x"}}, headers={"Authorization": f"Token {TOKEN}"})
    assert legacy.status_code == 201
    assert httpx.get(legacy.json()["urls"]["get"]).status_code == 401
    assert fake.attempts[-1].status_code == 201


# -- input validation ----------------------------------------------------------------------------


def test_422_lists_each_invalid_field_as_replicate_does(api: httpx.Client) -> None:
    response = api.post(KONTEXT, json={"input": {"prompt": "x", "output_format": "webp"}})
    assert response.status_code == 422
    assert response.json() == {  # the reference's recorded answer, byte for byte in content
        "detail": '- input.output_format: output_format must be one of the following: "jpg", "png"\n',
        "status": 422,
        "title": "Input validation failed",
        "invalid_fields": [
            {
                "type": "enum",
                "field": "input.output_format",
                "description": 'output_format must be one of the following: "jpg", "png"',
            }
        ],
    }
    many = api.post(
        SCHNELL, json={"input": {"num_outputs": 5, "seed": "7", "go_fast": 1, "megapixels": 1, "image_url": "x"}}
    ).json()
    assert [(f["type"], f["field"]) for f in many["invalid_fields"]] == [
        ("required", "input"),
        ("number_lte", "input.num_outputs"),
        ("invalid_type", "input.seed"),
        ("invalid_type", "input.go_fast"),
        ("invalid_type", "input.megapixels"),
        ("additional_property_not_allowed", "input"),
    ]
    assert many["invalid_fields"][0]["description"] == "prompt is required"
    assert many["invalid_fields"][1]["description"] == "Must be less than or equal to 4"
    assert "- input.num_outputs: Must be less than or equal to 4\n" in many["detail"]
    uri = api.post("/models/google/nano-banana/predictions", json={"input": {"prompt": "x", "image_input": ["a.png"]}})
    assert uri.json()["invalid_fields"] == [
        {"type": "format", "field": "input.image_input.0", "description": "Does not match format 'uri'"}
    ]
    nullable = api.post(KONTEXT, json={"input": {"prompt": "x", "seed": None, "input_image": None}})
    assert nullable.status_code == 201


def test_unknown_input_keys_pass_when_the_fake_is_lenient(api: httpx.Client, fake: FakeReplicate) -> None:
    assert api.post(KONTEXT, json={"input": {"prompt": "x", "num_images": 2}}).status_code == 422
    fake.strict_input = False
    assert api.post(KONTEXT, json={"input": {"prompt": "x", "num_images": 2}}).status_code == 201
    fake.strict_input = True
    # No schema for this model: unknown keys always pass.
    edit = {"prompt": "x", "image": data_uri(8, 8), "extra_field": 1}
    hidream = {"version": fake.versions()["prunaai/hidream-e1.1"], "input": edit}
    assert api.post("/predictions", json=hidream).status_code == 201


# -- the Files API -------------------------------------------------------------------------------


def test_files_api_upload_then_use_as_input(api: httpx.Client, fake: FakeReplicate) -> None:
    png = render_as(90, 60, 1, "png")
    uploaded = api.post(
        "/files",
        files={"content": ("in.png", png, "image/png")},
        data={"filename": "input.png", "type": "image/png", "metadata": json.dumps({"k": "v"})},
    )
    assert uploaded.status_code == 201
    file = uploaded.json()
    assert file["name"] == "input.png" and file["content_type"] == "image/png" and file["size"] == len(png)
    assert file["metadata"] == {"k": "v"} and file["etag"] and file["checksums"]["sha256"]
    assert file["urls"]["get"] == f"{fake.base_url}/files/{file['id']}"
    assert file["expires_at"] > file["created_at"]
    assert api.get(file["urls"]["get"]).json() == file
    assert api.get("/files").json()["results"] == [file]
    assert api.get(f"/files/{file['id']}/download").content == png
    done = waited(
        api,
        "/models/qwen/qwen-image-edit/predictions",
        {"prompt": "x", "image": file["urls"]["get"], "output_format": "png"},
    )
    assert fetch_image(done["output"][0]).size == (90, 60)  # the uploaded image was read
    assert api.delete(f"/files/{file['id']}").status_code == 204
    assert api.get(f"/files/{file['id']}").json() == {"detail": "File not found", "status": 404}


def test_files_api_refuses_large_files_and_a_missing_content_part(api: httpx.Client, fake: FakeReplicate) -> None:
    fake.max_file_bytes = 1000
    try:
        big = api.post("/files", files={"content": ("big.bin", b"x" * 1000, "application/octet-stream")})
    finally:
        fake.max_file_bytes = 100 * 1024 * 1024
    assert big.status_code == 413 and big.json()["detail"] == "Files must be less than 100MB in size"
    assert api.post("/files", data={"filename": "x"}).status_code == 422
    assert not fake.files


# -- scenarios: failures at create and on polls --------------------------------------------------


@pytest.mark.parametrize(
    ("marker", "status"),
    [("429", 429), ("500", 500), ("502", 502), ("503", 503), ("504", 504)],
)
def test_transient_create_failures_pass_on_a_retry_or_never(
    api: httpx.Client, fake: FakeReplicate, marker: str, status: int
) -> None:
    once = {"input": {"prompt": f"[fake:{marker}]"}}
    first = api.post(SCHNELL, json=once)
    assert first.status_code == status
    if status in (502, 504):
        assert first.headers["content-type"].startswith("text/html")
    else:
        assert first.headers["content-type"] == "application/problem+json" and first.json()["status"] == status
    assert api.post(SCHNELL, json=once).status_code == 201
    always = {"input": {"prompt": f"[fake:{marker}_always]"}}
    assert [api.post(SCHNELL, json=always).status_code for _ in range(3)] == [status] * 3
    assert [a.status_code for a in fake.attempts] == [status, 201, status, status, status]
    assert len(fake.creates) == 1


def test_429_says_when_to_come_back(api: httpx.Client) -> None:
    throttled = api.post(SCHNELL, json={"input": {"prompt": "[fake:429:7]"}})
    assert throttled.headers["retry-after"] == "7"
    assert throttled.json() == {"detail": "Request was throttled. Your rate limit resets in ~7s.", "status": 429}
    bare = api.post(SCHNELL, json={"input": {"prompt": "[fake:429:none]"}})
    assert bare.status_code == 429 and "retry-after" not in bare.headers


def test_connection_reset_at_create(api: httpx.Client) -> None:
    with pytest.raises(httpx.HTTPError):
        api.post(SCHNELL, json={"input": {"prompt": "[fake:reset_always]"}})
    with pytest.raises(httpx.HTTPError):
        api.post(SCHNELL, json={"input": {"prompt": "[fake:reset]"}})
    assert api.post(SCHNELL, json={"input": {"prompt": "[fake:reset]"}}).status_code == 201


@pytest.mark.parametrize(
    ("marker", "status", "title"),
    [("401", 401, "Unauthenticated"), ("402", 402, "Insufficient credit"), ("404", 404, None)],
)
def test_permanent_create_failures(api: httpx.Client, marker: str, status: int, title: str | None) -> None:
    for _ in range(2):
        response = api.post(SCHNELL, json={"input": {"prompt": f"[fake:{marker}]"}})
        assert response.status_code == status and response.json().get("title") == title


def test_422_marker_names_the_field(api: httpx.Client) -> None:
    body = api.post(SCHNELL, json={"input": {"prompt": "[fake:422:guidance]"}}).json()
    assert body["invalid_fields"][0]["field"] == "input.guidance"


def test_scenarios_from_next_scenarios_and_per_model(api: httpx.Client, fake: FakeReplicate) -> None:
    fake.next_scenarios.extend(["503", "429:3"])
    assert [api.post(SCHNELL, json={"input": {"prompt": "x"}}).status_code for _ in range(3)] == [503, 429, 201]
    fake.model_scenarios["google/nano-banana"] = "sensitive"
    assert waited(api, "/models/google/nano-banana/predictions", {"prompt": "x"})["status"] == "failed"
    assert waited(api, KONTEXT, {"prompt": "x"})["status"] == "succeeded"


def test_poll_failures_then_the_prediction(api: httpx.Client) -> None:
    created = api.post(KONTEXT, json={"input": {"prompt": "[fake:poll_503:2]"}}).json()
    assert [api.get(created["urls"]["get"]).status_code for _ in range(2)] == [503, 503]
    assert poll(api, created)["status"] == "succeeded"


# -- scenarios: how a prediction ends ------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "marker", "error"),
    [
        (
            KONTEXT,
            "sensitive",
            "The input or output was flagged as sensitive. Please try again with different inputs. (E005)",
        ),
        (SCHNELL, "nsfw", "All generated images contained NSFW content. Try running it again with a different prompt."),
        (
            "/models/black-forest-labs/flux-kontext-dev/predictions",
            "nsfw",
            "Generated image contained NSFW content. Try running it again with a different prompt.",
        ),
        (SCHNELL, "failed", "CUDA out of memory. Tried to allocate 2.00 GiB (E1001)"),
        (SCHNELL, "failed:boom happened", "boom happened"),
    ],
)
def test_failed_predictions(api: httpx.Client, path: str, marker: str, error: str) -> None:
    payload: dict[str, Any] = {"prompt": f"[fake:{marker}]"}
    if "kontext-dev" in path:
        payload["input_image"] = data_uri(32, 32)
    response = api.post(path, json={"input": payload}, headers={"Prefer": "wait=5"})
    assert response.status_code == 201  # a model failure is not an HTTP error
    body = response.json()
    assert body["status"] == "failed" and body["error"] == error and body["output"] is None


def test_a_corrupt_input_image_fails_the_prediction(api: httpx.Client) -> None:
    bad = "data:image/png;base64," + base64.b64encode(b"not a png").decode()
    body = waited(api, KONTEXT, {"prompt": "x", "input_image": bad})
    assert body["status"] == "failed" and body["error"].startswith("cannot identify image file")


def test_never_finishes_until_cancelled(api: httpx.Client, fake: FakeReplicate) -> None:
    created = api.post(KONTEXT, json={"input": {"prompt": "[fake:never]"}}).json()
    processing = poll(api, created, until=frozenset({"processing"}))
    time.sleep(fake.latency * 3)
    assert api.get(processing["urls"]["get"]).json()["status"] == "processing"
    assert api.post(created["urls"]["cancel"]).json()["status"] == "canceled"
    assert api.get(created["urls"]["get"]).json()["status"] == "canceled"


def test_fewer_outputs_and_no_output(api: httpx.Client) -> None:
    fewer = waited(api, SCHNELL, {"prompt": "[fake:fewer_outputs]", "num_outputs": 3})
    assert fewer["status"] == "succeeded" and len(fewer["output"]) == 2
    empty_list = waited(api, SCHNELL, {"prompt": "[fake:no_output]"})
    assert empty_list["status"] == "succeeded" and empty_list["output"] == []
    empty = waited(api, KONTEXT, {"prompt": "[fake:no_output]"})
    assert empty["status"] == "succeeded" and empty["output"] is None


def test_data_url_outputs(api: httpx.Client) -> None:
    body = waited(api, SCHNELL, {"prompt": "[fake:data_url]", "output_format": "jpg"})
    url = body["output"][0]
    assert url.startswith("data:image/jpeg;base64,")
    assert Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).format == "JPEG"


@pytest.mark.parametrize("marker", ["output_404", "truncated", "not_image"])
def test_broken_output_urls(api: httpx.Client, fake: FakeReplicate, marker: str) -> None:
    body = waited(api, KONTEXT, {"prompt": f"[fake:{marker}]"})
    assert body["status"] == "succeeded"
    response = httpx.get(body["output"])
    assert fake.deliveries == [httpx.URL(body["output"]).path]
    if marker == "output_404":
        assert response.status_code == 404
        return
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    with pytest.raises(OSError):
        Image.open(io.BytesIO(response.content)).load()


def test_expired_outputs_are_removed(api: httpx.Client) -> None:
    body = waited(api, KONTEXT, {"prompt": "[fake:expired]"})
    assert body["status"] == "succeeded" and body["output"] is None and body["data_removed"] is True


# -- the official client -------------------------------------------------------------------------


def test_the_official_replicate_client_runs_against_the_fake(fake: FakeReplicate) -> None:
    client = Client(api_token=TOKEN, base_url=fake.root_url)
    client.poll_interval = 0.05
    try:
        _run_official_client(client, fake)
    finally:
        client._client.close()  # the client has no close(); its httpx client is made on first use


def _run_official_client(client: Client, fake: FakeReplicate) -> None:
    outputs = client.run("black-forest-labs/flux-schnell", input={"prompt": "a fox", "num_outputs": 2})
    # The client wraps only https: and data: outputs in FileOutput; the fake's are plain http on loopback.
    assert isinstance(outputs, list) and len(outputs) == 2
    assert fetch_image(outputs[0]).format == "WEBP"
    uploaded = client.files.create(io.BytesIO(render_as(40, 30, 2, "png")), filename="in.png")
    assert uploaded.urls["get"].startswith(fake.base_url)
    prediction = client.predictions.create(
        version=fake.versions()["prunaai/hidream-e1.1"], input={"prompt": "x", "image": uploaded.urls["get"]}
    )
    prediction.wait()
    assert prediction.status == "succeeded"
    assert Image.open(io.BytesIO(httpx.get(str(prediction.output)).content)).size == (40, 30)
    with pytest.raises(ModelError, match="E005"):
        client.run("google/nano-banana", input={"prompt": "[fake:sensitive]"})
    with pytest.raises(ReplicateError) as refused:
        client.run("black-forest-labs/flux-kontext-pro", input={"prompt": "x", "output_format": "webp"})
    assert refused.value.status == 422 and refused.value.title == "Input validation failed"


def test_an_unknown_marker_is_refused_not_taken_as_ok(api: httpx.Client) -> None:
    response = api.post(SCHNELL, json={"input": {"prompt": "[fake:sensitve]"}})
    assert response.status_code == 400 and "unknown scenario 'sensitve'" in response.json()["detail"]
