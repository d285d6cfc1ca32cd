"""What the fake Gemini checks and answers: models, request validation, output sizes, Google's error shape.

From the Gemini reference (sections 1-4, 7, 11). Messages quoted there are used verbatim; where the
reference has no text (a bad ``aspectRatio`` or ``imageSize``, too many input images, a missing
key) the message here is this fake's own and says so in a comment.
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass

from pydantic import JsonValue
from starlette.responses import JSONResponse

JsonObject = dict[str, JsonValue]

_BASE_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
# gemini-2.5-flash-image's sizes from Google's table (the reference, section 3); used as every model's
# 1K size. 2K and 4K double and quadruple it: nominal only, the real Pro outputs are often larger
# (the reference gives 2752x1536 for 16:9 at 2K), so adapters must read sizes from the image.
_PIXELS_1K = {
    "1:1": (1024, 1024),
    "2:3": (832, 1248),
    "3:2": (1248, 832),
    "3:4": (864, 1184),
    "4:3": (1184, 864),
    "4:5": (896, 1152),
    "5:4": (1152, 896),
    "9:16": (768, 1344),
    "16:9": (1344, 768),
    "21:9": (1536, 672),
}
_TIER_SCALE = {"512": 0.5, "1K": 1.0, "2K": 2.0, "4K": 4.0}
INPUT_MIME_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"})


@dataclass(frozen=True)
class GeminiModel:
    id: str
    ratios: tuple[str, ...]
    sizes: tuple[str, ...]
    honours_size: bool
    """False for 2.5 Flash Image: ``imageSize`` is accepted but the output stays about 1 MP."""
    max_images: int
    """Input images per request: 3 for 2.5 Flash Image (Vertex's page), 14 for the others."""
    image_tokens: dict[str, int]
    """``candidatesTokenCount`` of one output image per size (1290; Pro 1120 or 2000 at 4K)."""


def _models() -> dict[str, GeminiModel]:
    flash = {"1K": 1290, "2K": 1290, "4K": 1290}
    pro = {"1K": 1120, "2K": 1120, "4K": 2000}
    wide = (*_BASE_RATIOS, "1:4", "4:1", "1:8", "8:1")
    models = {}
    for name in ("gemini-2.5-flash-image", "gemini-2.5-flash-image-preview"):
        models[name] = GeminiModel(name, _BASE_RATIOS, ("1K", "2K", "4K"), False, 3, flash)
    for name in ("gemini-3-pro-image-preview", "gemini-3-pro-image", "nano-banana-pro-preview"):
        models[name] = GeminiModel(name, _BASE_RATIOS, ("1K", "2K", "4K"), True, 14, pro)
    # 3.1 Flash Image's token counts are not in the reference (unconfirmed): Pro's are used.
    for name in ("gemini-3.1-flash-image-preview", "gemini-3.1-flash-image"):
        models[name] = GeminiModel(name, wide, ("512", "1K", "2K", "4K"), True, 14, {**pro, "512": 1120})
    return models


MODELS = _models()


def output_size(model: GeminiModel, ratio: str, size: str) -> tuple[int, int]:
    scale = _TIER_SCALE.get(size, 1.0) if model.honours_size else 1.0
    if ratio in _PIXELS_1K:
        width, height = _PIXELS_1K[ratio]
    else:  # 1:4, 4:1, 1:8, 8:1: about one megapixel at the ratio
        w, h = (int(part) for part in ratio.split(":"))
        width, height = round(1024 * math.sqrt(w / h) / 16) * 16, round(1024 * math.sqrt(h / w) / 16) * 16
    return round(width * scale), round(height * scale)


def nearest_ratio(model: GeminiModel, size: tuple[int, int]) -> str:
    """The supported ratio closest to an input image's (Gemini matches the input's ratio by default)."""
    target = math.log(size[0] / size[1])
    return min(model.ratios, key=lambda r: abs(math.log(int(r.split(":")[0]) / int(r.split(":")[1])) - target))


# -- errors -----------------------------------------------------------------------------------------


def google_error(code: int, status: str, message: str, details: list[JsonValue] | None = None) -> JSONResponse:
    """Google's ``{"error": {"code", "message", "status", "details"?}}``."""
    error: JsonObject = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return JSONResponse({"error": error}, status_code=code)


class RequestError(Exception):
    """A request this fake refuses; :meth:`response` renders it."""

    def __init__(self, code: int, status: str, message: str) -> None:
        super().__init__(message)
        self.code, self.status, self.message = code, status, message

    def response(self) -> JSONResponse:
        return google_error(self.code, self.status, self.message)


def invalid(message: str) -> RequestError:
    return RequestError(400, "INVALID_ARGUMENT", message)


def api_key_invalid() -> JSONResponse:
    return google_error(
        400,
        "INVALID_ARGUMENT",
        "API key not valid. Please pass a valid API key.",
        [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            },
            {
                "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                "locale": "en-US",
                "message": "API key not valid. Please pass a valid API key.",
            },
        ],
    )


def key_missing() -> JSONResponse:
    # Status and text of a missing key are unconfirmed (commonly 403 PERMISSION_DENIED).
    return google_error(
        403,
        "PERMISSION_DENIED",
        "Method doesn't allow unregistered callers (callers without established identity). "
        "Please use API Key or other form of API consumer identity to call this API.",
    )


def quota_exhausted(model: str, retry_delay: str | None, daily: bool) -> JSONResponse:
    period = "PerDay" if daily else "PerMinute"
    details: list[JsonValue] = [
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [
                {
                    "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                    "quotaId": f"GenerateRequests{period}PerProjectPerModel-FreeTier",
                    "quotaDimensions": {"model": model, "location": "global"},
                }
            ],
        },
        {
            "@type": "type.googleapis.com/google.rpc.Help",
            "links": [
                {
                    "description": "Learn more about Gemini API quotas",
                    "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                }
            ],
        },
    ]
    message = (
        "You exceeded your current quota, please check your plan and billing details. For more information on "
        "this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits."
    )
    if retry_delay is not None:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay})
        message += f" Please retry in {retry_delay.removesuffix('s')}s."
    return google_error(429, "RESOURCE_EXHAUSTED", message, details)


SERVER_ERRORS = {
    "500": (
        500,
        "INTERNAL",
        "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
    ),
    "503": (503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
    "504": (504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
}


# -- request validation -----------------------------------------------------------------------------


def _names(*camel: str) -> frozenset[str]:
    """Each proto field by its JSON name and its proto name: Google's JSON parser takes both."""
    snake = ("".join(f"_{c.lower()}" if c.isupper() else c for c in name) for name in camel)
    return frozenset((*camel, *snake))


_KNOWN = {
    "": _names(
        "contents", "generationConfig", "safetySettings", "tools", "toolConfig", "systemInstruction", "cachedContent"
    ),
    "content": _names("role", "parts"),
    "part": _names(
        "text", "inlineData", "fileData", "thought", "thoughtSignature", "functionCall", "functionResponse",
        "executableCode", "codeExecutionResult", "videoMetadata", "mediaResolution",
    ),
    "blob": _names("mimeType", "data"),
    "file_data": _names("mimeType", "fileUri"),
    "generation_config": _names(
        "stopSequences", "responseMimeType", "responseSchema", "responseJsonSchema", "responseModalities",
        "candidateCount", "maxOutputTokens", "temperature", "topP", "topK", "seed", "presencePenalty",
        "frequencyPenalty", "responseLogprobs", "logprobs", "enableEnhancedCivicAnswers", "speechConfig",
        "thinkingConfig", "imageConfig", "mediaResolution",
    ),
    # Vertex-only imageConfig fields (outputMimeType, ...) are unknown names on the Gemini API here.
    "generation_config.image_config": _names("aspectRatio", "imageSize", "personGeneration"),
}  # fmt: skip


def _field(obj: JsonObject, camel: str) -> JsonValue:
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in camel)
    return obj.get(camel, obj.get(snake))


def _known(obj: JsonValue, kind: str, where: str) -> JsonObject:
    if not isinstance(obj, dict):
        at = f" at '{where}'" if where else ""
        raise invalid(f"Invalid JSON payload received. Expected an object{at}.")
    for name in obj:
        if name not in _KNOWN[kind]:
            at = f" at '{where}'" if where else ""
            raise invalid(f'Invalid JSON payload received. Unknown name "{name}"{at}: Cannot find field.')
    return obj


@dataclass(frozen=True)
class Prompt:
    """What a valid request asks for."""

    text: str
    images: list[bytes]
    modalities: tuple[str, ...]
    aspect_ratio: str | None
    image_size: str


def parse_request(model: GeminiModel, body: JsonValue) -> Prompt:
    """Validate a ``generateContent`` body as the Gemini API does; raises :class:`RequestError`."""
    top = _known(body, "", "")
    contents = top.get("contents")
    if not isinstance(contents, list) or not contents:
        raise invalid("* GenerateContentRequest.contents: contents is not specified\n")
    texts: list[str] = []
    images: list[bytes] = []
    for i, content in enumerate(contents):
        parts = _field(_known(content, "content", f"contents[{i}]"), "parts")
        if not isinstance(parts, list) or not parts:
            raise invalid(f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.\n")
        for j, raw_part in enumerate(parts):
            part = _known(raw_part, "part", f"contents[{i}].parts[{j}]")
            if isinstance(text := part.get("text"), str):
                texts.append(text)
            if (blob := _field(part, "inlineData")) is not None:
                images.append(_inline_image(_known(blob, "blob", f"contents[{i}].parts[{j}].inline_data"), i, j))
            if (file_data := _field(part, "fileData")) is not None:
                uri = _field(_known(file_data, "file_data", f"contents[{i}].parts[{j}].file_data"), "fileUri")
                raise RequestError(
                    403,
                    "PERMISSION_DENIED",
                    f"You do not have permission to access the File {uri} or it may not exist.",
                )
    if len(images) > model.max_images:
        # The limit is documented; this message is the fake's own (unconfirmed).
        raise invalid(f"Too many input images: {len(images)}. The maximum is {model.max_images}.")
    config = _known(_field(top, "generationConfig") or {}, "generation_config", "generation_config")
    count = _field(config, "candidateCount")
    if isinstance(count, int) and count > 1:
        raise invalid(f"Multiple candidates is not enabled for models/{model.id}")
    modalities = _modalities(_field(config, "responseModalities"))
    where = "generation_config.image_config"
    image_config = _known(_field(config, "imageConfig") or {}, where, where)
    ratio, size = _field(image_config, "aspectRatio"), _field(image_config, "imageSize")
    # Both values are documented per model; the texts of these two 400s are the fake's own (unconfirmed).
    if ratio is not None and (not isinstance(ratio, str) or ratio not in model.ratios):
        raise invalid(f"Unsupported aspect ratio: {ratio}. Supported values are {', '.join(model.ratios)}.")
    if size is not None and (not isinstance(size, str) or size not in model.sizes):
        raise invalid(f"Unsupported image size: {size}. Supported values are {', '.join(model.sizes)}.")
    return Prompt("\n".join(texts), images, modalities, ratio, size or "1K")


def _inline_image(blob: JsonObject, i: int, j: int) -> bytes:
    mime, data = _field(blob, "mimeType"), blob.get("data")
    where = f"contents[{i}].parts[{j}].inline_data"
    if not isinstance(data, str):
        raise invalid(f"* GenerateContentRequest.{where}.data: data is not specified\n")
    try:
        # Proto JSON takes standard and URL-safe base64, padded or not.
        text = data.replace("-", "+").replace("_", "/")
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise invalid(
            f"Invalid value at '{where}.data' (TYPE_BYTES), Base64 decoding failed for \"{data[:40]}\""
        ) from None
    if mime not in INPUT_MIME_TYPES:
        raise invalid(f"Unsupported MIME type: {mime}")
    return raw


def _modalities(value: JsonValue) -> tuple[str, ...]:
    if value is None:
        return ("TEXT", "IMAGE")
    if not isinstance(value, list):
        raise invalid("Invalid JSON payload received. Expected an array at 'generation_config.response_modalities'.")
    for k, item in enumerate(value):
        if item not in ("TEXT", "IMAGE", "AUDIO", "VIDEO", "MODALITY_UNSPECIFIED"):
            raise invalid(
                f"Invalid value at 'generation_config.response_modalities[{k}]' "
                f'(type.googleapis.com/google.ai.generativelanguage.v1beta.GenerationConfig.Modality), "{item}"'
            )
        if item in ("AUDIO", "VIDEO"):
            raise invalid("The requested combination of response modalities is not supported by the model.")
    # ["TEXT"] alone is ignored by the image models (observed by a third party): text and image come back.
    return ("IMAGE",) if value == ["IMAGE"] else ("TEXT", "IMAGE")
