"""Configuration mistakes as one line each: where the key is, what is wrong, the closest valid name.

pydantic reports every problem of a settings source with its location (``("models", 0, "modse")``);
:func:`one_line` turns the first into ``unknown key 'modse' in models[0] (did you mean 'modes'?)``,
finding the valid names by walking the settings model's field types along the location. Parts whose
model is only known at run time (a provider entry, validated by its kind's settings model) raise
:func:`unknown_key` errors that carry their hint already.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

UNKNOWN_KEY = "unknown_key"
SETTING = "setting"

Location = tuple[int | str, ...]


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate most like ``name`` (difflib's ratio of at least 0.6), or None."""
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or an empty string."""
    match = closest(name, candidates)
    return f" (did you mean '{match}'?)" if match else ""


def where(loc: Sequence[int | str]) -> str:
    """``models[0].params.cfg_scale``: a location as the YAML file spells it."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def unknown_key(loc: Location, key: str, valid: Iterable[str]) -> InitErrorDetails:
    """An error for ``key`` at ``loc`` (``loc`` ends with ``key``) naming the closest of ``valid``."""
    error = PydanticCustomError(UNKNOWN_KEY, "unknown key '{key}'", {"key": key, "hint": did_you_mean(key, valid)})
    return InitErrorDetails(type=error, loc=loc, input=key)


def problem(loc: Location, message: str) -> InitErrorDetails:
    """An error at ``loc`` whose whole text is ``message``."""
    return InitErrorDetails(type=PydanticCustomError(SETTING, "{message}", {"message": message}), loc=loc, input=None)


def refuse(title: str, errors: list[InitErrorDetails]) -> ValidationError:
    """The ``ValidationError`` carrying ``errors`` (raise it from a validator: pydantic keeps the locations)."""
    return ValidationError.from_exception_data(title, errors)


def relocated(exc: ValidationError, prefix: Location, model: type[BaseModel]) -> list[InitErrorDetails]:
    """``exc``'s errors (``model`` failed on one entry) moved under ``prefix``, unknown keys with hints."""
    moved: list[InitErrorDetails] = []
    for error in exc.errors():
        loc = (*prefix, *error["loc"])
        if error["type"] == "extra_forbidden":
            key = str(error["loc"][-1])
            moved.append(unknown_key(loc, key, keys_at(model, error["loc"][:-1]) or ()))
        else:
            moved.append(problem(loc, _message(error)))
    return moved


def _unwrapped(annotation: object) -> object:
    """``X`` for ``X | None``, ``Optional[X]`` and ``Annotated[X, ...]``; the annotation otherwise."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _unwrapped(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        return _unwrapped(members[0]) if len(members) == 1 else annotation
    return annotation


def keys_at(model: type[BaseModel], loc: Sequence[int | str]) -> list[str] | None:
    """The valid keys of the mapping at ``loc`` under ``model``, or None when that is not a model."""
    current: object = model
    for part in loc:
        current = _unwrapped(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            flat = getattr(current, "flat_form", None)
            if field is None and isinstance(flat, type) and issubclass(flat, BaseModel):
                field = flat.model_fields.get(str(part))  # a model written in its flat form (a catalog row)
            if field is None:
                return None
            current = field.annotation
            continue
        origin, args = get_origin(current), get_args(current)
        if origin in (list, tuple, Sequence) and args and isinstance(part, int):
            current = args[0]
        elif origin in (dict, Mapping) and len(args) == 2:
            current = args[1]
        else:
            return None
    current = _unwrapped(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        flat = getattr(current, "flat_form", None)
        extra = list(flat.model_fields) if isinstance(flat, type) and issubclass(flat, BaseModel) else []
        return list(dict.fromkeys([*current.model_fields, *extra]))
    return None


def _message(error: ErrorDetails) -> str:
    return error["msg"].removeprefix("Value error, ")


def _is_unknown_key(error: ErrorDetails) -> bool:
    return error["type"] in ("extra_forbidden", UNKNOWN_KEY)


def describe(error: ErrorDetails, root: type[BaseModel], env_prefix: str | None = None) -> str:
    """One error as a sentence naming where it is (and the closest valid key, for an unknown one).

    With ``env_prefix``, a top-level setting is also named by its environment variable.
    """
    loc = error["loc"]
    if _is_unknown_key(error):
        key = str(loc[-1])
        place = where(loc[:-1]) or "the configuration"
        if error["type"] == UNKNOWN_KEY:
            hint = str((error.get("ctx") or {}).get("hint", ""))
        else:
            hint = did_you_mean(key, keys_at(root, loc[:-1]) or ())
        return f"unknown key '{key}' in {place}{hint}"
    if not loc:
        return _message(error)
    place = where(loc)
    if env_prefix is not None and len(loc) == 1 and str(loc[0]) in root.model_fields:
        place += f" ({env_prefix}{str(loc[0]).upper()})"
    return f"{place}: {_message(error)}"


def one_line(exc: ValidationError, root: type[BaseModel], env_prefix: str | None = None) -> str:
    """``invalid configuration: <the first error>`` (and how many more there are) on one line.

    An unknown key is told first: a misspelt key usually also leaves a required one missing, and
    the misspelling is what the user must fix.
    """
    errors = sorted(exc.errors(), key=lambda error: not _is_unknown_key(error))
    line = describe(errors[0], root, env_prefix)
    if len(errors) > 1:
        line += f" (and {len(errors) - 1} more)"
    return f"invalid configuration: {' '.join(line.split())}"
