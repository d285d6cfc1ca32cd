"""What reaches the upstream, two more ways: bad values never do, and a dry run shows exactly what does.

Through the openai SDK and a live pixelgate on the fake fal, openai, Replicate and Gemini upstreams
(``tests/e2e/wire_harness.py``; a routed model's deployment is forced with ``<provider>/<id>``):

- a value outside a row's type, range or enum is a 400 naming the parameter as the client spelled
  it, for every typed row of every built-in model and the standard parameters, and nothing is sent;
- ``?dry_run=true`` calls no upstream, and the request(s) it shows are exactly what the fake then
  receives for the same request (fan-out beyond the native ``n`` included).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest
from pydantic import JsonValue

from normalization.catalog import Mode, ModelEntry, load_builtin_catalog
from tests.e2e.wire_harness import (
    PROMPT,
    SOURCE,
    Harness,
    Row,
    deployment_name,
    find_deployment,
    same_image,
    start_harness,
    unlisted_field,
)

CATALOG = load_builtin_catalog()


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with start_harness(tmp_path_factory.mktemp("wire-data")) as running:
        yield running


def entry_of(model: str) -> ModelEntry:
    found = CATALOG.get(model)
    assert found is not None
    return found.primary


def pixel_values(entry: ModelEntry) -> list[str]:
    return [v for v in entry.size.values if v != "auto"]


# --- bad values ----------------------------------------------------------------------------------


def _bad_value(row: Row) -> JsonValue | None:
    """A value ``row`` must refuse, or None when the row accepts any value of its type."""
    kind, values = row.get("type"), row.get("values")
    maximum, minimum = row.get("maximum"), row.get("minimum")
    if isinstance(values, list):
        return "not-one-of-them"
    if kind in ("integer", "number"):
        if isinstance(maximum, int | float):
            return maximum + 1
        if isinstance(minimum, int | float):
            return minimum - 1
        return "many"
    if kind == "boolean":
        return "maybe"
    if kind == "array":
        return "[not json"
    return None


def _bad_cases() -> list[tuple[ModelEntry, str, JsonValue]]:
    cases: list[tuple[ModelEntry, str, JsonValue]] = []
    for entry in CATALOG.deployments():
        for name, spec in entry.params.items():
            if spec.behavior in ("passthrough", "renamed"):
                row: Row = {
                    "type": spec.type.value,
                    "values": list(spec.enum) if spec.enum else None,
                    "maximum": spec.maximum,
                    "minimum": spec.minimum,
                }
                bad = _bad_value(row)
                if bad is not None:
                    cases.append((entry, name, bad))
    return cases


def _no_upstream_request(h: Harness) -> bool:
    return not (h.fal.attempts or h.upstream.app.requests or h.replicate.attempts or h.gemini.requests)


def _refused(h: Harness, entry: ModelEntry, extra: dict[str, JsonValue]) -> dict[str, JsonValue]:
    h.fal.reset()
    h.upstream.app.reset()
    mode: Mode = entry.modes[0]
    with pytest.raises(openai.BadRequestError) as caught:
        h.probe(entry, mode, extra)
    assert _no_upstream_request(h)
    body = caught.value.body
    assert isinstance(body, dict)
    assert set(body) == {"message", "type", "param", "code"} and body["type"] == "invalid_request_error"
    return body


@pytest.mark.parametrize(
    ("entry", "param", "value"),
    _bad_cases(),
    ids=lambda v: deployment_name(v) if isinstance(v, ModelEntry) else str(v),
)
def test_bad_value_is_a_400_naming_the_clients_parameter(
    harness: Harness, entry: ModelEntry, param: str, value: JsonValue
) -> None:
    assert _refused(harness, entry, {param: value})["param"] == param


@pytest.mark.parametrize("model", ["hidream-e1-1", "hidream-i1-full", "gpt-image-1"])
@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("n", 11),
        ("n", 0),
        ("size", "big"),
        ("aspect_ratio", "wide"),
        ("resolution", "9 parsecs"),
        ("response_format", "xml"),
        ("output_format", "bmp"),
        ("output_compression", 101),
        ("seed", "lucky"),
    ],
)
def test_bad_standard_value_is_a_400_naming_it(harness: Harness, model: str, param: str, value: JsonValue) -> None:
    assert _refused(harness, entry_of(model), {param: value})["param"] == param


def test_the_upstream_spelling_is_checked_and_named_as_sent(harness: Harness) -> None:
    body = _refused(harness, entry_of("hidream-e1-1"), {"guidance_scale": 21})
    assert body["param"] == "guidance_scale"


# --- the dry run is what the upstream receives ------------------------------------------------------


def _upstream_modes() -> list[tuple[str, Mode]]:
    return [(deployment_name(e), mode) for e in CATALOG.deployments() if e.provider != "sandbox" for mode in e.modes]


@pytest.mark.parametrize(("deployment", "mode"), _upstream_modes(), ids=lambda v: str(v))
def test_dry_run_shows_exactly_what_the_upstream_then_receives(harness: Harness, deployment: str, mode: Mode) -> None:
    provider, model, upstream = deployment.split("/", 2)
    entry = find_deployment(provider, model, upstream)
    native = entry.count.max
    n = native + 1 if native < 10 else 2  # beyond the native maximum where the API's 10 allows
    unlisted, probe = unlisted_field(entry)
    extra: dict[str, JsonValue] = {"n": n, unlisted: probe}
    seed = entry.params.get("seed")
    one_per_call = False
    if seed is not None and seed.behavior == "passthrough":
        extra["seed"] = 100
        one_per_call = not entry.count.seeds_per_image  # so that every image's seed is exact
    if mode == "generate":
        extra["size"] = pixel_values(entry)[0] if entry.size.kind == "pixel_enum" else "96x64"
    harness.fal.reset()
    harness.upstream.app.reset()
    harness.replicate.reset()
    harness.gemini.reset()
    planned = harness.send(entry, mode, extra, images=1, mask=False, prompt=PROMPT, dry_run=True).body
    assert _no_upstream_request(harness)
    emulation = planned["emulation"]
    assert isinstance(emulation, dict) and emulation["n"] == n
    calls = planned["upstream_requests"]
    assert isinstance(calls, list) and len(calls) == (n if one_per_call else -(-n // native))

    sent = harness.probe(entry, mode, extra, strict_input=False)
    assert len(sent.images()) == n
    image_field = entry.images.field if entry.images and mode == "edit" else None
    shown, received = [], []
    for call, wire in zip(calls, sent.wires, strict=True):
        assert isinstance(call, dict) and call["upstream"] == wire.target == entry.upstream
        body = call["body"]
        assert isinstance(body, dict)
        if image_field is not None:
            [ref] = wire.image_refs(image_field)
            digest = body.pop(image_field)
            [shown_ref] = digest if isinstance(digest, list) else [digest]
            assert same_image(ref, SOURCE) and same_image(str(shown_ref), SOURCE)
        shown.append(json.dumps({k: wire.spelled(v) for k, v in body.items()}, sort_keys=True))
        received.append(json.dumps({k: v for k, v in wire.fields.items() if k != image_field}, sort_keys=True))
    # The calls run concurrently, so they reach the upstream in any order.
    assert sorted(shown) == sorted(received)
