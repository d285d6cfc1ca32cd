"""OpenAPI descriptions of the bodies the image routes read by hand (multipart and JSON).

The routes parse their bodies themselves (streaming, within limits), so FastAPI cannot infer them;
these ``openapi_extra`` fragments say what the routes accept and answer, so that ``/openapi.json``
is honest and schema-driven tools (schemathesis, client generators) exercise the real inputs.
They describe; they do not validate: the routes stay the only judge of a body.
"""

from __future__ import annotations

from typing import Any

from core.images import FORMAT_NAMES

_NULLABLE_STRING: dict[str, Any] = {"type": ["string", "null"]}
_NULLABLE_INTEGER: dict[str, Any] = {"type": ["integer", "null"]}

_COMMON_FIELDS: dict[str, Any] = {
    "model": {"type": "string", "description": "a model id from GET /v1/models", "examples": ["sandbox-generate"]},
    "prompt": {"type": "string", "maxLength": 32000},
    "n": {"type": ["integer", "null"], "minimum": 1, "maximum": 10},
    "size": {**_NULLABLE_STRING, "description": "WxH, W:H or auto", "examples": ["256x256", "16:9", "auto"]},
    "aspect_ratio": {**_NULLABLE_STRING, "examples": ["16:9"]},
    "resolution": {**_NULLABLE_STRING, "examples": ["1K", "0.25"]},
    "response_format": {"enum": ["url", "b64_json", None]},
    "output_format": {"enum": [*FORMAT_NAMES, None]},
    "output_compression": {"type": ["integer", "null"], "minimum": 0, "maximum": 100},
    "seed": _NULLABLE_INTEGER,
    "negative_prompt": _NULLABLE_STRING,
    "cfg_scale": {"type": ["number", "null"]},
}
"""Fields both routes take; any other field passes through to the model (see GET /v1/models/{id})."""

_ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": _NULLABLE_STRING,
                "code": _NULLABLE_STRING,
            },
        }
    },
}

_IMAGES_RESPONSE: dict[str, Any] = {
    "type": "object",
    "required": ["created", "data", "output_format", "size"],
    "properties": {
        "created": {"type": "integer"},
        "data": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "url": {"type": "string"},
                    "b64_json": {"type": "string"},
                    "revised_prompt": {"type": "string"},
                    "seed": {"type": "integer"},
                },
            },
        },
        "output_format": {"type": "string"},
        "size": {"type": "string"},
        "metadata": {"type": "object"},
    },
}


def _responses() -> dict[str, Any]:
    error = {"content": {"application/json": {"schema": _ERROR}}}
    return {
        "200": {"description": "the images", "content": {"application/json": {"schema": _IMAGES_RESPONSE}}},
        "400": {"description": "bad input", **error},
        "401": {"description": "missing or wrong API key", **error},
        "404": {"description": "unknown model", **error},
        "413": {"description": "upload too large", **error},
        "429": {"description": "rate limited", **error},
        "502": {"description": "the upstream failed", **error},
        "503": {"description": "provider not configured or gateway unavailable", **error},
        "504": {"description": "the upstream timed out", **error},
    }


GENERATION: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["model", "prompt"],
                    "properties": _COMMON_FIELDS,
                    "additionalProperties": True,
                }
            }
        },
    },
    "responses": _responses(),
}
"""``POST /v1/images/generations``: a JSON object."""

_FORM_FIELDS: dict[str, Any] = {
    name: {"type": "string"} for name in _COMMON_FIELDS if name not in ("model", "prompt")
} | {"model": _COMMON_FIELDS["model"] | {"examples": ["sandbox-edit"]}, "prompt": _COMMON_FIELDS["prompt"]}

EDIT: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["model", "prompt", "image"],
                    "properties": {
                        **_FORM_FIELDS,
                        "image": {
                            "description": "PNG, JPEG or WebP (sniffed from the bytes); repeat the part, "
                            "or use image[] / image[0], image[1]... for several",
                            "oneOf": [
                                {"type": "string", "format": "binary"},
                                {"type": "array", "items": {"type": "string", "format": "binary"}, "maxItems": 16},
                            ],
                        },
                        "mask": {"type": "string", "format": "binary"},
                    },
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["model", "prompt", "images"],
                    "properties": {
                        **_COMMON_FIELDS,
                        "model": _COMMON_FIELDS["model"] | {"examples": ["sandbox-edit"]},
                        "images": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": 16,
                            "items": {
                                "type": "object",
                                "required": ["image_url"],
                                "properties": {"image_url": {"type": "string", "description": "https:// or data:"}},
                            },
                        },
                        "mask": {"type": "object", "properties": {"image_url": {"type": "string"}}},
                    },
                    "additionalProperties": True,
                }
            },
        },
    },
    "responses": _responses(),
}
"""``POST /v1/images/edits``: multipart as the OpenAI SDKs send it, or JSON with image URLs."""
