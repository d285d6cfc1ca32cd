"""A fake Gemini API: a real HTTP server on loopback answering ``generateContent`` for the image models.

What it does NOT model: ``streamGenerateContent`` (SSE), the Files API (a ``fileData`` part is
answered with the 403 of a missing file), Imagen's ``:predict``, Vertex AI's URLs and OAuth, the
``countTokens``/``models`` listing routes, multi-turn editing with ``thoughtSignature`` (accepted, not
checked), safety settings and ``tools`` (accepted, ignored), rate limiting by count (429 only from a
scenario), exact Pro/3.1 output sizes (nominal: see :mod:`tests.fakes.gemini_rules`), and SynthID.

Run it standalone for offline development::

    python -m tests.fakes.fake_gemini --port 8092            # --key K to require that API key

In tests, ``with FakeGemini(api_key="AIza-test") as fake:`` gives ``fake.base_url`` (the API root,
``http://127.0.0.1:PORT/v1beta``, what ``PIXELGATE_GEMINI_BASE_URL`` takes) and records every request
in ``fake.requests`` (model, body, how the key came, scenario, status).

Protocol (the Gemini reference, sections 2-4, 7 and 11): ``POST /v1beta/models/{model}:generateContent``
(also under ``/v1``, google-genai 3's default) with the key in ``x-goog-api-key`` or ``?key=``
(missing: 403 ``PERMISSION_DENIED``; wrong: 400 ``API_KEY_INVALID``; unknown model: 404
``NOT_FOUND``). The body is checked as Google's JSON parser does (camelCase and snake_case field
names; an unknown name, e.g. ``aspectRatio`` directly under ``generationConfig``, is a 400), then:
``contents[].parts[]`` with ``text`` and ``inlineData`` images (``inline_data`` also; base64,
PNG/JPEG/WebP/HEIC/HEIF, at most 3 for 2.5 Flash Image and 14 for the others),
``generationConfig.responseModalities`` (``["IMAGE"]`` drops the text part), ``candidateCount``
(above 1 is a 400), ``imageConfig.aspectRatio`` and ``imageSize`` against the model's documented
values. The answer is ``candidates[0].content.parts`` (a text part, then the image as
``inlineData``, PNG in base64), ``finishReason: STOP``, ``usageMetadata`` with the image token
counts, ``modelVersion``, ``responseId``. The image has the aspect ratio asked for, else the first
input image's nearest ratio, else 1:1, at the 1K size (2K/4K double and quadruple it on the models
that honour ``imageSize``).

Scenarios (see :mod:`tests.fakes.loopback`: a ``[fake:NAME]`` or ``[fake:NAME:ARG]`` marker in any
string of the body, e.g. the prompt, else ``fake.next_scenarios``, ``fake.model_scenarios[model]``,
``fake.scenario``). All HTTP 200: ``safety`` (``finishReason: IMAGE_SAFETY`` with a text refusal and
no image), ``safety_empty`` (``IMAGE_SAFETY`` without content), ``finish:REASON`` (any
``finishReason``, e.g. ``NO_IMAGE``, ``PROHIBITED_CONTENT``, ``IMAGE_RECITATION``, with a text part
and no image), ``blocked`` / ``blocked:REASON`` (``promptFeedback.blockReason``, default
``PROHIBITED_CONTENT``, no candidates), ``text_only`` (``STOP`` with text only), ``thought`` (a
``thought: true`` draft image before the final one), ``jpeg`` (the image as ``image/jpeg``),
``truncated`` (a cut image), ``not_image`` (HTML bytes labelled ``image/png``), ``malformed`` (a body
cut mid-JSON), ``slow`` (the answer after ARG seconds, default 2). Errors: ``429`` (``RetryInfo``
``retryDelay`` ARG, default ``2s``), ``500`` (``INTERNAL``), ``503`` (``UNAVAILABLE``), ``504``
(``DEADLINE_EXCEEDED``) and ``reset`` (connection dropped) fail once per identical request, every
time as ``NAME_always``; ``429_daily`` (a per-day quota, no ``RetryInfo``) and ``403``
(``PERMISSION_DENIED``) every time.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import time
from dataclasses import dataclass, field

from pydantic import JsonValue
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.fal_images import MEDIA_TYPES, ImageFormat, image_size, render_as
from tests.fakes.gemini_rules import (
    MODELS,
    SERVER_ERRORS,
    GeminiModel,
    Prompt,
    RequestError,
    api_key_invalid,
    google_error,
    key_missing,
    nearest_ratio,
    output_size,
    parse_request,
    quota_exhausted,
)
from tests.fakes.loopback import LoopbackFake, OnceGate, Pick, ResetResponse, pick

JsonObject = dict[str, JsonValue]
TRANSIENT = frozenset({"429", "500", "503", "504", "reset"})
KNOWN = TRANSIENT | {
    "ok", "429_daily", "403", "safety", "safety_empty", "finish", "blocked", "text_only", "thought", "jpeg",
    "truncated", "not_image", "malformed", "slow",
}  # fmt: skip
REFUSAL = "I can't create that image. It may go against my safety guidelines. Is there something else I can make?"
HTML = b"<html><body><h1>Not an image</h1></body></html>"


@dataclass
class GeminiRequest:
    """One request as received, and what the fake answered."""

    model: str
    api_version: str
    """``v1beta`` (what the reference and pixelgate use) or ``v1`` (google-genai 3's default)."""
    body: JsonValue
    key_source: str
    """``header``, ``query`` or ``none``."""
    scenario: str = "ok"
    status_code: int = 0
    at: float = field(default_factory=time.monotonic)


class FakeGemini(LoopbackFake):
    """The fake server and its knobs; see the module docstring. Start with ``with`` or :meth:`start`."""

    name = "fake Gemini"

    def __init__(self, *, api_key: str | None = None, latency: float = 0.0, host: str = "127.0.0.1", port: int = 0):
        super().__init__(host, port)
        self.api_key = api_key
        """The key to require; None accepts any key (a missing key is still a 403)."""
        self.latency = latency
        self.max_output_side: int | None = None
        """Scale images down to this longest side (keeping the ratio), to keep tests fast."""
        self.scenario = "ok"
        self.next_scenarios: list[str] = []
        self.model_scenarios: dict[str, str] = {}
        self.requests: list[GeminiRequest] = []
        self._once = OnceGate()
        self.app = Starlette(routes=[Route("/{path:path}", self._route, methods=["GET", "POST", "PUT", "DELETE"])])

    @property
    def base_url(self) -> str:
        """The API root, ``http://127.0.0.1:PORT/v1beta``."""
        return f"{self.root_url}/v1beta"

    def reset(self) -> None:
        """Forget recorded requests and scripted scenarios (for a server shared by several tests)."""
        self.scenario = "ok"
        self.max_output_side = None
        self.next_scenarios.clear()
        self.model_scenarios.clear()
        self.requests.clear()
        self._once.clear()

    async def _route(self, request: Request) -> Response:
        version, _, rest = request.url.path.removeprefix("/").partition("/models/")
        model_id, _, method = rest.partition(":")
        if request.method != "POST" or version not in ("v1beta", "v1") or method != "generateContent":
            return google_error(404, "NOT_FOUND", "Method not found.")
        header_key, query_key = request.headers.get("x-goog-api-key"), request.query_params.get("key")
        raw = await request.body()
        try:
            body: JsonValue = json.loads(raw) if raw else {}
        except ValueError as exc:
            body = None
            parse_error: str | None = f"Invalid JSON payload received. {exc}"
        else:
            parse_error = None
        record = GeminiRequest(model_id, version, body, "header" if header_key else "query" if query_key else "none")
        self.requests.append(record)
        response = await self._answer(record, header_key or query_key, raw, parse_error)
        record.status_code = response.status_code
        return response

    async def _answer(self, record: GeminiRequest, key: str | None, raw: bytes, parse_error: str | None) -> Response:
        if not key:
            return key_missing()
        if self.api_key is not None and key != self.api_key:
            return api_key_invalid()
        model = MODELS.get(record.model)
        if model is None:
            return google_error(
                404,
                "NOT_FOUND",
                f"models/{record.model} is not found for API version v1beta, or is not supported for "
                "generateContent. Call ListModels to see the list of available models and their supported methods.",
            )
        if parse_error is not None:
            return google_error(400, "INVALID_ARGUMENT", parse_error)
        chosen = pick(record.body, self.next_scenarios, self.model_scenarios.get(model.id, self.scenario))
        record.scenario = chosen.name
        if chosen.name not in KNOWN:  # a typo in a test's marker should not pass as "ok"
            return google_error(400, "INVALID_ARGUMENT", f"fake Gemini: unknown scenario {chosen.name!r}")
        if (failure := self._failure(model, chosen, raw)) is not None:
            return failure
        try:
            prompt = parse_request(model, record.body)
        except RequestError as refused:
            return refused.response()
        if any(image_size(data) is None for data in prompt.images):
            return google_error(
                400,
                "INVALID_ARGUMENT",
                "Unable to process input image. Please retry or report in "
                "https://developers.generativeai.google/guide/troubleshooting",
            )
        delay = chosen.arg_float(2.0) if chosen.name == "slow" else self.latency
        answer = asyncio.get_running_loop().run_in_executor(None, self._body, model, prompt, chosen)
        if delay:
            await asyncio.sleep(delay)
        body = await answer
        if chosen.name == "malformed":
            return Response(body[: len(body) // 2], media_type="application/json")
        return Response(body, media_type="application/json; charset=UTF-8")

    def _failure(self, model: GeminiModel, chosen: Pick, raw: bytes) -> Response | None:
        name = chosen.name
        if name == "429_daily":
            return quota_exhausted(model.id, None, daily=True)
        if name == "403":
            return google_error(403, "PERMISSION_DENIED", "The caller does not have permission")
        if name not in TRANSIENT or not self._once.fails(chosen, f"{model.id}\n{raw.decode('utf-8', 'replace')}"):
            return None
        if name == "429":
            return quota_exhausted(model.id, chosen.arg or "2s", daily=False)
        if name == "reset":
            return ResetResponse()
        code, status, message = SERVER_ERRORS[name]
        return google_error(code, status, message)

    # -- the answer ---------------------------------------------------------------------------------

    def _body(self, model: GeminiModel, prompt: Prompt, chosen: Pick) -> bytes:
        """The JSON answer (rendered in a worker thread: a large image takes a while)."""
        usage = _usage(model, prompt)
        meta: JsonObject = {"usageMetadata": usage, "modelVersion": model.id, "responseId": _response_id()}
        name = chosen.name
        if name == "blocked":
            feedback: JsonObject = {"blockReason": chosen.arg or "PROHIBITED_CONTENT"}
            return _dump({"promptFeedback": feedback, **meta})
        text_part: JsonObject = {"text": "Here is the image you asked for."}
        if name in ("safety", "finish", "safety_empty", "text_only"):
            reason = {"text_only": "STOP", "finish": chosen.arg or "IMAGE_SAFETY"}.get(name, "IMAGE_SAFETY")
            candidate: JsonObject = {"finishReason": reason, "index": 0}
            if name != "safety_empty":
                refusal = "I can only describe it: a calm scene." if name == "text_only" else REFUSAL
                candidate["content"] = {"role": "model", "parts": [{"text": refusal}]}
            usage["candidatesTokenCount"] = 24
            usage["candidatesTokensDetails"] = [{"modality": "TEXT", "tokenCount": 24}]
            return _dump({"candidates": [candidate], **meta})
        parts: list[JsonValue] = [text_part] if "TEXT" in prompt.modalities else []
        if name == "thought":
            parts.insert(0, {"text": "Planning the composition.", "thought": True})
            parts.insert(1, {"inlineData": self._image(model, prompt, "png", draft=True), "thought": True})
        image = self._image(model, prompt, "jpeg" if name == "jpeg" else "png", draft=False, scenario=name)
        final: JsonObject = {"inlineData": image}
        if name == "thought":
            final["thoughtSignature"] = base64.b64encode(os.urandom(24)).decode("ascii")
            usage["thoughtsTokenCount"] = 64
        parts.append(final)
        candidate = {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
        return _dump({"candidates": [candidate], **meta})

    def _image(
        self, model: GeminiModel, prompt: Prompt, fmt: ImageFormat, *, draft: bool, scenario: str = "ok"
    ) -> JsonObject:
        ratio = prompt.aspect_ratio
        if ratio is None:
            first = image_size(prompt.images[0]) if prompt.images else None
            ratio = nearest_ratio(model, first) if first else "1:1"
        width, height = output_size(model, ratio, prompt.image_size)
        if draft:
            width, height = max(16, width // 4), max(16, height // 4)
        if self.max_output_side and max(width, height) > self.max_output_side:
            scale = self.max_output_side / max(width, height)
            width, height = max(1, round(width * scale)), max(1, round(height * scale))
        data = render_as(width, height, random.randrange(2**31), fmt)
        if scenario == "truncated":
            data = data[: len(data) // 2]
        elif scenario == "not_image":
            data = HTML
        return {"mimeType": MEDIA_TYPES[fmt], "data": base64.b64encode(data).decode("ascii")}


def _usage(model: GeminiModel, prompt: Prompt) -> JsonObject:
    text_tokens = max(1, len(prompt.text) // 4)
    image_tokens = 258 * len(prompt.images)
    out_tokens = model.image_tokens.get(prompt.image_size if model.honours_size else "1K", 1290)
    prompt_details: list[JsonValue] = [{"modality": "TEXT", "tokenCount": text_tokens}]
    if image_tokens:
        prompt_details.append({"modality": "IMAGE", "tokenCount": image_tokens})
    return {
        "promptTokenCount": text_tokens + image_tokens,
        "candidatesTokenCount": out_tokens,
        "totalTokenCount": text_tokens + image_tokens + out_tokens,
        "promptTokensDetails": prompt_details,
        "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": out_tokens}],
    }


def _response_id() -> str:
    return base64.urlsafe_b64encode(os.urandom(17)).decode("ascii")[:23]


def _dump(body: JsonObject) -> bytes:
    return json.dumps(body).encode("utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the fake Gemini API (generateContent for image models).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8092)
    parser.add_argument("--latency", type=float, default=0.5, help="seconds before each answer")
    parser.add_argument("--key", default=None, help="require this API key (default: any key)")
    args = parser.parse_args()
    fake = FakeGemini(api_key=args.key, latency=args.latency, host=args.host, port=args.port)
    print(f"fake Gemini on {fake.base_url} (Ctrl-C to stop)")
    fake.serve_forever()


if __name__ == "__main__":
    main()
