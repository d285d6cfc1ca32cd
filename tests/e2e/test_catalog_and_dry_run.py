"""Issue 3 through the wire: parameter tables, dry runs of every built-in model, the parameter matrix.

The matrix sends, for every model and every row of its table, a request through the openai SDK with
``?dry_run=true`` and checks that the upstream payload pixelgate would send carries the documented
upstream name and the value typed as the table says (pydantic-ai's model-settings-support pattern).
"""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from normalization.catalog import Behavior, Model, ModelEntry, ParamSpec, ParamType, load_builtin_catalog
from tests.conftest import TEST_KEY
from tests.images import png_bytes
from tests.live import LiveGateway

CATALOG = load_builtin_catalog()
CONTRACT_PARAMS = {
    "model",
    "prompt",
    "image",
    "mask",
    "negative_prompt",
    "seed",
    "n",
    "size",
    "aspect_ratio",
    "resolution",
    "response_format",
    "output_format",
    "output_compression",
    "cfg_scale",
    "enable_safety_checker",
    "image_guidance_scale",
    "num_inference_steps",
    "sync_mode",
    "target_image_description",
}


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TEST_KEY}"}


HIDREAM_E1_1_BEHAVIORS = {
    "model": ("converted", "fal-ai/hidream-e1-1"),
    "prompt": ("passthrough", "prompt"),
    "image": ("renamed", "image_url"),
    "mask": ("unsupported", None),
    "negative_prompt": ("passthrough", "negative_prompt"),
    "seed": ("passthrough", "seed"),
    "n": ("converted", "num_images"),
    "size": ("emulated", None),
    "aspect_ratio": ("emulated", None),
    "resolution": ("emulated", None),
    "response_format": ("emulated", None),
    "output_format": ("passthrough", "output_format"),
    "output_compression": ("emulated", None),
    "cfg_scale": ("renamed", "guidance_scale"),
    "enable_safety_checker": ("passthrough", "enable_safety_checker"),
    "image_guidance_scale": ("passthrough", "image_guidance_scale"),
    "num_inference_steps": ("passthrough", "num_inference_steps"),
    "sync_mode": ("passthrough", "sync_mode"),
    "target_image_description": ("passthrough", "target_image_description"),
}
"""Every request parameter of the contract, with how hidream-e1-1 handles it (fal-ai/hidream-e1-1 schema)."""


def test_hidream_e1_1_table_shows_every_contract_parameter(gateway: LiveGateway) -> None:
    body = httpx.get(f"{gateway.api_url}/models/hidream-e1-1", headers=_auth()).json()
    table = body["parameters"]
    assert set(table) >= CONTRACT_PARAMS == set(HIDREAM_E1_1_BEHAVIORS)
    shown = {name: (table[name]["behavior"], table[name].get("upstream")) for name in CONTRACT_PARAMS}
    assert shown == HIDREAM_E1_1_BEHAVIORS
    for name in CONTRACT_PARAMS:
        assert {"behavior", "type", "description"} <= set(table[name]), name
    assert table["cfg_scale"].items() >= {"behavior": "renamed", "upstream": "guidance_scale", "default": 3.5}.items()
    assert table["image"]["behavior"] == "renamed" and table["image"]["upstream"] == "image_url"
    assert table["n"]["behavior"] == "converted" and table["n"]["upstream"] == "num_images"
    assert table["size"]["behavior"] == "emulated"
    assert table["response_format"]["behavior"] == "emulated"
    assert table["negative_prompt"]["behavior"] == "passthrough"
    assert table["num_inference_steps"].items() >= {"minimum": 1, "maximum": 50, "default": 50}.items()
    for name, row in table.items():
        assert row["behavior"] in {b.value for b in Behavior}, name


def _sample(spec: ParamSpec) -> tuple[object, object]:
    """A value to send as a form string, and the typed value the upstream must receive."""
    if spec.enum:
        value = spec.enum[-1]
        return str(value).lower() if isinstance(value, bool) else str(value), value
    if spec.type is ParamType.INTEGER:
        number = int(spec.maximum if spec.maximum is not None else 7)
        return str(number), number
    if spec.type is ParamType.NUMBER:
        number_f = float(spec.maximum) if spec.maximum is not None else 1.5
        return str(number_f), number_f
    if spec.type is ParamType.BOOLEAN:
        return "false", False
    if spec.type is ParamType.ARRAY:
        return "[]", []
    return "a value", "a value"


def _matrix() -> list[tuple[ModelEntry, str, ParamSpec]]:
    cases = []
    for entry in CATALOG.deployments():
        for name, spec in entry.params.items():
            if spec.behavior in (Behavior.PASSTHROUGH, Behavior.RENAMED):
                cases.append((entry, name, spec))
    return cases


def _name(entry: ModelEntry) -> str:
    return f"{entry.provider}/{entry.id}/{entry.upstream}"


def _model(entry: ModelEntry | Model) -> str:
    """``model`` for the request: a routed model's deployment is forced with ``<provider>/<id>``."""
    routed = CATALOG.get(entry.id)
    if isinstance(entry, Model) or routed is None or len(routed.deployments) == 1:
        return entry.id
    return f"{entry.provider}/{entry.id}"


def _dry_run(client: openai.OpenAI, entry: ModelEntry | Model, extra: dict[str, object]) -> dict[str, Any]:
    query = {"dry_run": "true"}
    if "edit" in entry.modes:
        result = client.images.edit(
            model=_model(entry),
            image=("a.png", png_bytes(64, 48), "image/png"),
            prompt="make it blue",
            extra_body=extra,
            extra_query=query,
        )
    else:
        result = client.images.generate(model=_model(entry), prompt="a lighthouse", extra_body=extra, extra_query=query)
    body = result.model_extra or {}
    assert body.get("dry_run") is True
    return body


@pytest.mark.parametrize(
    ("entry", "name", "spec"), _matrix(), ids=lambda v: _name(v) if isinstance(v, ModelEntry) else None
)
def test_parameter_matrix(client: openai.OpenAI, entry: ModelEntry, name: str, spec: ParamSpec) -> None:
    sent, expected = _sample(spec)
    body = _dry_run(client, entry, {name: sent})
    upstream_body = body["upstream_requests"][0]["body"]
    upstream_name = spec.upstream or name
    assert upstream_body[upstream_name] == expected
    assert type(upstream_body[upstream_name]) is type(expected)
    handled = body["parameters"][name]
    assert handled["upstream"] == upstream_name
    assert handled["behavior"] == ("passthrough" if upstream_name == name else "renamed")


@pytest.mark.parametrize("entry", CATALOG.deployments(), ids=_name)
def test_dry_run_shows_the_upstream_payload_for_every_builtin_model(client: openai.OpenAI, entry: ModelEntry) -> None:
    body = _dry_run(client, entry, {"seed": 5})
    request = body["upstream_requests"][0]
    assert request["upstream"] == entry.upstream
    payload = request["body"]
    assert payload[entry.prompt_field or "prompt"] in ("make it blue", "a lighthouse")
    if entry.images:
        placed = payload[entry.images.field]
        refs = placed if entry.images.kind == "list" else [placed]
        assert len(refs) == 1 and str(refs[0]).startswith("<image/png 64x48")
    assert body["provider"] == entry.provider


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("cfg_scale", "21"),
        ("num_inference_steps", "0"),
        ("image_guidance_scale", "abc"),
        ("enable_safety_checker", "maybe"),
    ],
)
def test_out_of_range_values_are_400_naming_the_client_param(client: openai.OpenAI, param: str, value: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        _dry_run(client, CATALOG.get("hidream-e1-1"), {param: value})  # type: ignore[arg-type]
    assert isinstance(info.value.body, dict) and info.value.body["param"] == param


def test_fal_model_without_fal_key_is_503_provider_not_configured(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        client.images.edit(model="hidream-e1-1", image=("a.png", png_bytes(), "image/png"), prompt="x")
    assert info.value.status_code == 503
    assert isinstance(info.value.body, dict) and info.value.body["code"] == "provider_not_configured"


def test_size_maps_to_native_image_size_on_hidream_i1(client: openai.OpenAI) -> None:
    body = _dry_run(client, CATALOG.get("hidream-i1-full"), {"size": "1280x720"})  # type: ignore[arg-type]
    assert body["upstream_requests"][0]["body"]["image_size"] == {"width": 1280, "height": 720}
    assert body["parameters"]["size"]["behavior"] == "converted"


def test_unsupported_standard_param_warns_and_strict_refuses(gateway: LiveGateway, client: openai.OpenAI) -> None:
    data = {"model": "hidream-e1-1", "prompt": "x", "quality": "high"}
    files = {"image": ("a.png", png_bytes(16, 16), "image/png")}
    lenient = httpx.post(f"{gateway.api_url}/images/edits?dry_run=true", data=data, files=files, headers=_auth())
    assert lenient.status_code == 200
    assert "quality" in lenient.headers["x-pixelgate-warnings"]
    strict = httpx.post(
        f"{gateway.api_url}/images/edits?dry_run=true",
        data=data,
        files=files,
        headers={**_auth(), "x-pixelgate-strict": "true"},
    )
    assert strict.status_code == 400 and strict.json()["error"]["param"] == "quality"
