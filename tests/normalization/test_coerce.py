"""coerce_value, in process: form strings and JSON values typed, checked against a row, never clamped."""

from __future__ import annotations

import math

import pytest
from pydantic import JsonValue

from core.errors import InvalidRequestError
from normalization.catalog import ParamSpec, ParamType
from normalization.coerce import coerce_value


def row(kind: ParamType, **values: JsonValue) -> ParamSpec:
    return ParamSpec.model_validate({"type": kind, **values})


def refused(value: JsonValue, spec: ParamSpec) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as caught:
        coerce_value(value, spec, "steps")
    assert caught.value.param == "steps"
    return caught.value


@pytest.mark.parametrize(("value", "expected"), [(7, 7), ("7", 7), (" 7 ", 7), (7.0, 7), ("7.0", 7), ("1e2", 100)])
def test_integers_from_forms_and_json(value: JsonValue, expected: int) -> None:
    typed = coerce_value(value, row(ParamType.INTEGER), "steps")
    assert typed == expected and type(typed) is int


@pytest.mark.parametrize("value", [True, "7.5", 7.5, "seven", "", None, [7]])
def test_what_is_not_an_integer_is_a_400(value: JsonValue) -> None:
    assert refused(value, row(ParamType.INTEGER)).code == "invalid_type"


@pytest.mark.parametrize(("value", "expected"), [(2, 2), (2.5, 2.5), ("2.5", 2.5), (" 3 ", 3.0)])
def test_numbers(value: JsonValue, expected: float) -> None:
    assert coerce_value(value, row(ParamType.NUMBER), "steps") == expected


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", False, "x", {"a": 1}])
def test_non_finite_or_non_numbers_are_refused(value: JsonValue) -> None:
    refused(value, row(ParamType.NUMBER))


def test_a_non_finite_float_is_refused_too() -> None:
    refused(math.inf, row(ParamType.NUMBER))


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), ("true", True), ("ON", True), ("1", True), (False, False), ("no", False), (" off ", False)],
)
def test_booleans(value: JsonValue, expected: bool) -> None:
    assert coerce_value(value, row(ParamType.BOOLEAN), "steps") is expected


@pytest.mark.parametrize("value", [1, 0, "maybe", None])
def test_what_is_not_a_boolean_is_refused(value: JsonValue) -> None:
    refused(value, row(ParamType.BOOLEAN))


def test_a_json_number_for_a_string_row_becomes_its_text() -> None:
    # fal types some enums as strings ("safety_tolerance": "2"); a JSON client sends 2.
    assert coerce_value(2, row(ParamType.STRING, enum=["1", "2"]), "steps") == "2"
    refused(True, row(ParamType.STRING))


def test_arrays_and_objects_parse_from_form_text() -> None:
    assert coerce_value('[1, "a"]', row(ParamType.ARRAY), "steps") == [1, "a"]
    assert coerce_value({"a": 1}, row(ParamType.OBJECT), "steps") == {"a": 1}
    assert coerce_value('{"a": 1}', row(ParamType.OBJECT), "steps") == {"a": 1}
    refused("[1,", row(ParamType.ARRAY))
    refused("[1]", row(ParamType.OBJECT))


def test_enum_values_are_listed_in_the_error() -> None:
    error = refused("huge", row(ParamType.STRING, enum=["low", "high"]))
    assert error.code == "invalid_value" and "'low', 'high'" in error.message


@pytest.mark.parametrize("value", [0, 51, "51"])
def test_out_of_range_is_a_400_never_clamped(value: JsonValue) -> None:
    error = refused(value, row(ParamType.INTEGER, minimum=1, maximum=50))
    assert error.code == "value_out_of_range"
    assert "between 1 and 50" in error.message


@pytest.mark.parametrize(
    ("minimum", "maximum", "shown"),
    [
        (0, 4294967295, "between 0 and 4294967295"),
        (0.5, 20, "between 0.5 and 20"),
        (-1.25, 1e6, "between -1.25 and 1000000"),
    ],
)
def test_bounds_are_written_as_a_person_writes_them(minimum: float, maximum: float, shown: str) -> None:
    # A seed's 2**32 - 1 once read "between 0 and 4.29497e+09".
    error = refused(maximum + 1, row(ParamType.NUMBER, minimum=minimum, maximum=maximum))
    assert shown in error.message


def test_bounds_are_inclusive() -> None:
    spec = row(ParamType.INTEGER, minimum=1, maximum=50)
    assert [coerce_value(v, spec, "steps") for v in (1, 50)] == [1, 50]


def test_lengths_bound_strings_and_arrays() -> None:
    spec = row(ParamType.STRING, min_length=2, max_length=3)
    assert coerce_value("abc", spec, "steps") == "abc"
    refused("a", spec)
    refused("abcd", spec)
    refused("[1, 2, 3, 4]", row(ParamType.ARRAY, max_length=3))
