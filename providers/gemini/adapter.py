"""The Gemini adapter: one :class:`UpstreamCall` as one ``generateContent`` call, to image bytes.

Steps: build the body (:mod:`.request`: the prompt and the input images as ``inlineData`` parts,
``generationConfig`` with ``responseModalities`` and ``imageConfig``), ``POST
{base_url}/models/{upstream}:generateContent`` with ``x-goog-api-key`` under
:data:`~providers.gemini.retry.GEMINI_RETRY`, map a failed answer (:mod:`.errors`), then read the
images or the refusal out of the answer (:mod:`.results`). One call makes one image: the image
models refuse ``candidateCount`` above 1, so the catalog declares no native ``n`` and the pipeline
fans ``n`` out into parallel calls.

There is no job to cancel: a cancelled call closes its HTTP request, and Google stops there.
Without an API key the call fails with ``ProviderNotConfiguredError`` before any request.
"""

from __future__ import annotations

import dataclasses
import urllib.parse

import httpx
import orjson

from core.errors import ProviderNotConfiguredError
from providers.base import AdapterContext, ImageAdapter, ProviderResult, UpstreamCall
from providers.gemini.errors import error_from_response, error_from_transport
from providers.gemini.request import request_body
from providers.gemini.results import collect_images, parse_answer
from providers.gemini.retry import GEMINI_RETRY
from providers.gemini.settings import GeminiSettings
from providers.toolkit.results import ResultReader
from providers.toolkit.retry import send_with_retry


class GeminiAdapter(ImageAdapter):
    """Google's Gemini API behind :class:`ImageAdapter`, one per configured Gemini provider.

    ``backoff_base_seconds``/``backoff_cap_seconds`` are plain attributes so tests can shrink them.
    """

    backoff_base_seconds: float = 1.0
    backoff_cap_seconds: float = 8.0

    def __init__(self, settings: GeminiSettings, context: AdapterContext) -> None:
        self._settings = settings
        self._client = context.client
        self.base_url = settings.base_url.rstrip("/")
        self.timeout = httpx.Timeout(settings.read_timeout_seconds, connect=settings.connect_timeout_seconds)
        self.results = ResultReader.for_provider(
            context.client, settings, context.limits, own_urls=(self.base_url,), who="Gemini"
        )

    def url(self, upstream: str) -> str:
        """The ``generateContent`` URL of model ``upstream`` (a ``models/`` prefix is accepted too)."""
        model = urllib.parse.quote(upstream.removeprefix("models/"), safe="-._~")
        return f"{self.base_url}/models/{model}:generateContent"

    async def run(self, call: UpstreamCall) -> ProviderResult:
        """Send ``call`` and return its image; see the module docstring for steps and failures."""
        key = self._settings.key
        if key is None:
            raise ProviderNotConfiguredError("the gemini provider has no API key (set GEMINI_API_KEY)")
        retry = dataclasses.replace(
            GEMINI_RETRY,
            max_attempts=self._settings.max_retries + 1,
            base_seconds=self.backoff_base_seconds,
            cap_seconds=self.backoff_cap_seconds,
        )
        url = self.url(call.upstream)
        content = orjson.dumps(request_body(call))
        headers = {"x-goog-api-key": key, "Content-Type": "application/json", "Accept": "application/json"}

        async def once() -> httpx.Response:
            return await self._client.post(url, content=content, headers=headers, timeout=self.timeout)

        try:
            response = await send_with_retry(once, retry)
        except httpx.HTTPError as exc:
            raise error_from_transport(exc) from exc
        if not response.is_success:
            raise error_from_response(response, upstream=call.upstream, secret=key)
        answer = parse_answer(response.content)
        del response  # an answer holds megabytes of base64; the images are decoded from `answer`
        images = collect_images(self.results, answer, expected=call.expected_images, secret=key)
        return ProviderResult(images=images, upstream_request_id=answer.response_id)
