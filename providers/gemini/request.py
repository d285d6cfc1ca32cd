"""One :class:`UpstreamCall` as a ``generateContent`` body (the Gemini reference, section 3).

The engine hands the adapter a flat ``call.payload``, as for every kind; this module puts each field
where Gemini wants it. The payload fields it reads:

==================================================  ============================================
payload field (camelCase or snake_case)             placed at
==================================================  ============================================
``prompt``                                          the text part, after the images
``aspectRatio``, ``imageSize``, ``personGeneration``  ``generationConfig.imageConfig``
``responseModalities``, ``seed``, ``temperature``,  ``generationConfig``
``topP``, ``topK``, ``candidateCount``,
``maxOutputTokens``, ``stopSequences``,
``presencePenalty``, ``frequencyPenalty``,
``thinkingConfig``, ``mediaResolution``,
``responseMimeType``
``safetySettings``, ``tools``, ``toolConfig``,      the top level of the request
``systemInstruction``, ``cachedContent``
any other field                                     ``generationConfig`` (Google refuses a name it
                                                    does not know with a 400 naming it, which
                                                    reaches the client as a 400 on that field)
==================================================  ============================================

A field keeps the spelling it has (Google's JSON parser takes both ``aspectRatio`` and
``aspect_ratio``); its camelCase form decides where it goes. The input images become ``inlineData``
parts (base64) in their order, whatever ``call.image_field`` says; a mask is not sent (Gemini has no
mask input: the catalog declares none, so the engine never plans one). ``responseModalities``
defaults to ``["IMAGE"]``: the image models then leave out the text part they would otherwise add.
"""

from __future__ import annotations

import pybase64
from pydantic import JsonValue

from providers.base import JsonObject, UpstreamCall

PROMPT_FIELD = "prompt"
IMAGE_CONFIG_FIELDS = frozenset({"aspectRatio", "imageSize", "personGeneration"})
GENERATION_CONFIG_FIELDS = frozenset(
    {
        "responseModalities",
        "seed",
        "temperature",
        "topP",
        "topK",
        "candidateCount",
        "maxOutputTokens",
        "stopSequences",
        "presencePenalty",
        "frequencyPenalty",
        "thinkingConfig",
        "mediaResolution",
        "responseMimeType",
    }
)
REQUEST_FIELDS = frozenset({"safetySettings", "tools", "toolConfig", "systemInstruction", "cachedContent"})
DEFAULT_MODALITIES: list[JsonValue] = ["IMAGE"]


def camel(name: str) -> str:
    """``aspect_ratio`` -> ``aspectRatio``; a camelCase name is returned unchanged."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def request_body(call: UpstreamCall) -> JsonObject:
    """The ``generateContent`` body for ``call`` (see the module docstring for where each field goes)."""
    parts: list[JsonValue] = [
        {"inlineData": {"mimeType": image.media_type, "data": pybase64.b64encode(image.data).decode("ascii")}}
        for image in call.images
    ]
    body: JsonObject = {}
    generation: JsonObject = {}
    image_config: JsonObject = {}
    prompt: str | None = None
    for name, value in call.payload.items():
        key = camel(name)
        if key == PROMPT_FIELD:
            prompt = None if value is None else str(value)
        elif key in IMAGE_CONFIG_FIELDS:
            image_config[name] = value
        elif key in REQUEST_FIELDS:
            body[name] = value
        else:
            generation[name] = value
    if prompt:
        parts.append({"text": prompt})
    if not any(camel(name) == "responseModalities" for name in generation):
        generation["responseModalities"] = list(DEFAULT_MODALITIES)
    if image_config:
        generation["imageConfig"] = image_config
    return {"contents": [{"role": "user", "parts": parts}], "generationConfig": generation, **body}
