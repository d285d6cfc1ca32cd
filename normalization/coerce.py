"""Typing and range-checking one parameter value against its row in a model's table.

Multipart forms deliver every scalar as a string; JSON delivers typed values. Both become the
row's type here (``"7"`` for an integer row arrives upstream as ``7``). A value that does not fit
the row's type, enum or range is a 400 naming the parameter as the client spelled it; nothing is
ever clamped.
"""

from __future__ import annotations

import math

import orjson
from pydantic import JsonValue

from core.errors import InvalidRequestError
from normalization.catalog import ParamSpec, ParamType

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def coerce_value(value: JsonValue, spec: ParamSpec, param: str) -> JsonValue:
    """``value`` typed and validated by ``spec``; raises :class:`InvalidRequestError` with ``param``."""
    typed = _typed(value, spec.type, param)
    _check_enum(typed, spec, param)
    _check_range(typed, spec, param)
    return typed


def _typed(value: JsonValue, kind: ParamType, param: str) -> JsonValue:
    if kind is ParamType.INTEGER:
        return _as_int(value, param)
    if kind is ParamType.NUMBER:
        return _as_number(value, param)
    if kind is ParamType.BOOLEAN:
        return _as_bool(value, param)
    if kind is ParamType.STRING:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            # fal types some enums as strings ("safety_tolerance": "2"); a JSON client sends 2.
            return str(value)
        raise _bad(param, f"expected a string, got {_kind_of(value)}")
    if kind is ParamType.ARRAY:
        parsed = _maybe_json(value, param)
        if not isinstance(parsed, list):
            raise _bad(param, f"expected an array, got {_kind_of(parsed)}")
        return parsed
    parsed = _maybe_json(value, param)
    if not isinstance(parsed, dict):
        raise _bad(param, f"expected an object, got {_kind_of(parsed)}")
    return parsed


def _as_int(value: JsonValue, param: str) -> int:
    if isinstance(value, bool):
        raise _bad(param, "expected an integer, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            try:
                as_float = float(text)
            except ValueError:
                as_float = math.nan
            if as_float.is_integer():
                return int(as_float)
    raise _bad(param, f"expected an integer, got {value!r}")


def _as_number(value: JsonValue, param: str) -> float | int:
    if isinstance(value, bool):
        raise _bad(param, "expected a number, got a boolean")
    if isinstance(value, int | float):
        number: float | int = value
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError as exc:
            raise _bad(param, f"expected a number, got {value!r}") from exc
    else:
        raise _bad(param, f"expected a number, got {_kind_of(value)}")
    if isinstance(number, float) and not math.isfinite(number):
        raise _bad(param, "expected a finite number")
    return number


def _as_bool(value: JsonValue, param: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    raise _bad(param, f"expected a boolean (true or false), got {value!r}")


def _maybe_json(value: JsonValue, param: str) -> JsonValue:
    if isinstance(value, str):
        try:
            parsed: JsonValue = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise _bad(param, "expected JSON") from exc
        return parsed
    return value


def _check_enum(value: JsonValue, spec: ParamSpec, param: str) -> None:
    if spec.enum is None or value in spec.enum:
        return
    allowed = ", ".join(repr(item) for item in spec.enum)
    raise InvalidRequestError(
        f"Invalid value for '{param}': {value!r}. Supported values are: {allowed}.",
        param=param,
        code="invalid_value",
    )


def _check_range(value: JsonValue, spec: ParamSpec, param: str) -> None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        if spec.minimum is not None and value < spec.minimum:
            raise _range(param, spec)
        if spec.maximum is not None and value > spec.maximum:
            raise _range(param, spec)
    if isinstance(value, str | list):
        if spec.min_length is not None and len(value) < spec.min_length:
            raise _bad(param, f"must have at least {spec.min_length} characters or items")
        if spec.max_length is not None and len(value) > spec.max_length:
            raise _bad(param, f"must have at most {spec.max_length} characters or items")


def _bound(value: float | None, missing: str) -> str:
    """A bound as a person writes it: 4294967295, not 4.29497e+09; 0.5 as 0.5."""
    if value is None:
        return missing
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _range(param: str, spec: ParamSpec) -> InvalidRequestError:
    low, high = _bound(spec.minimum, "-inf"), _bound(spec.maximum, "inf")
    return InvalidRequestError(
        f"Invalid value for '{param}': must be between {low} and {high} for this model.",
        param=param,
        code="value_out_of_range",
    )


def _bad(param: str, detail: str) -> InvalidRequestError:
    return InvalidRequestError(f"Invalid value for '{param}': {detail}.", param=param, code="invalid_type")


def _kind_of(value: JsonValue) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array"}.get(
        type(value), "an object"
    )
