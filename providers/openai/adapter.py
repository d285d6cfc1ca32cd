"""The ``openai`` provider kind: any OpenAI-compatible images API behind :class:`ImageAdapter`.

One adapter per configured provider (``openai`` itself, or any YAML provider with
``kind: openai``); everything comes from its :class:`OpenAISettings`: ``base_url`` (default
``https://api.openai.com/v1``), ``api_key``, timeouts, ``max_retries`` and ``fetch_hosts``, and
from the app's :class:`AdapterContext` (the shared client, the result caps).

Steps: build the request (:mod:`providers.openai.wire`: JSON for generations, multipart for
edits), send it with ``Authorization: Bearer`` under :data:`providers.openai.retry.OPENAI_RETRY`,
map failures (:mod:`providers.openai.errors`), then turn ``data[]`` into image bytes
(:mod:`providers.openai.results`).

Streaming (:meth:`OpenAIAdapter.run_streaming`, a client's ``stream=true`` with ``partial_images``
on a model whose table lists it): the same request with ``stream: true`` and ``partial_images``,
its events read by :mod:`providers.openai.streaming`. Retries happen only before the stream: a
refused or failed request is retried as above; once a 2xx stream has started, a failure is final
(partial images may have reached the client, and a new request would be billed again).

Credentials: without an API key the call fails with ``ProviderNotConfiguredError`` before any
request, except when ``base_url`` points at a loopback host (``127.0.0.0/8``, ``::1``,
``localhost``): local servers (vLLM, LocalAI, a sidecar gateway) usually need no key, and a
loopback address cannot be a third party's service, so the request goes out without
``Authorization``.
"""

from __future__ import annotations

import dataclasses

import httpx
import orjson

from core.errors import ProviderNotConfiguredError
from providers.base import AdapterContext, ImageAdapter, OnPartial, ProviderResult, UpstreamCall
from providers.openai.errors import error_from_response, error_from_transport
from providers.openai.results import collect_images, parse_body
from providers.openai.retry import OPENAI_RETRY
from providers.openai.settings import OpenAISettings
from providers.openai.streaming import is_event_stream, read_stream
from providers.openai.wire import generation_body, multipart_body
from providers.toolkit.chunked_body import ChunkedBody
from providers.toolkit.failures import with_cause
from providers.toolkit.hosts import is_loopback_url
from providers.toolkit.results import ResultReader
from providers.toolkit.retry import RetryPolicy, send_with_retry


class OpenAIAdapter(ImageAdapter):
    """An OpenAI-compatible ``/images`` API, one per configured provider of the ``openai`` kind.

    ``backoff_base_seconds``/``backoff_cap_seconds`` are plain attributes so tests can shrink them.
    """

    backoff_base_seconds: float = 0.5
    backoff_cap_seconds: float = 8.0

    def __init__(self, settings: OpenAISettings, context: AdapterContext) -> None:
        self._settings = settings
        self._client = context.client
        self.base_url = settings.base_url.rstrip("/")
        self._key = settings.key or ""
        self._keyless_ok = is_loopback_url(self.base_url)
        self.timeout = httpx.Timeout(settings.read_timeout_seconds, connect=settings.connect_timeout_seconds)
        self.results = ResultReader.for_provider(
            context.client, settings, context.limits, own_urls=(self.base_url,), who="the upstream"
        )

    def _headers(self) -> dict[str, str]:
        if not self._key:
            if not self._keyless_ok:
                raise ProviderNotConfiguredError(
                    "the OpenAI-compatible provider has no API key (set OPENAI_API_KEY or its api_key)"
                )
            return {"Accept": "application/json"}
        return {"Authorization": f"Bearer {self._key}", "Accept": "application/json"}

    def _request(self, call: UpstreamCall, headers: dict[str, str]) -> tuple[str, bytes | ChunkedBody, dict[str, str]]:
        """URL, body and headers of ``call``: built once, sent as they are on every attempt."""
        if call.mode == "generate":
            body = orjson.dumps(generation_body(call))
            return f"{self.base_url}/images/generations", body, {**headers, "Content-Type": "application/json"}
        multipart, content_type = multipart_body(call)
        edit_headers = {**headers, "Content-Type": content_type, "Content-Length": str(len(multipart))}
        return f"{self.base_url}/images/edits", multipart, edit_headers

    def _retry(self) -> RetryPolicy:
        return dataclasses.replace(
            OPENAI_RETRY,
            max_attempts=self._settings.max_retries + 1,
            base_seconds=self.backoff_base_seconds,
            cap_seconds=self.backoff_cap_seconds,
        )

    async def run(self, call: UpstreamCall) -> ProviderResult:
        """Send ``call`` and return its images; see the module docstring for steps and failures."""
        headers = self._headers()
        url, content, request_headers = self._request(call, headers)

        async def once() -> httpx.Response:
            return await self._client.post(url, content=content, headers=request_headers, timeout=self.timeout)

        try:
            response = await send_with_retry(once, self._retry())
        except httpx.HTTPError as exc:
            raise error_from_transport(exc) from exc
        if not response.is_success:
            error = error_from_response(response, upstream_model=call.upstream, secret=self._key or None)
            raise with_cause(error, response, self._key or None)
        request_id = response.headers.get("x-request-id")
        body = parse_body(response.content)
        del response  # the images' base64 are views into its content, which they keep; nothing else of it
        images = await collect_images(body, self.results)
        return ProviderResult(images=images, upstream_request_id=request_id)

    async def run_streaming(self, call: UpstreamCall, on_partial: OnPartial) -> ProviderResult:
        """``call`` sent as a stream when it asks for partial images (each told to ``on_partial`` as it
        arrives), else :meth:`run`. An upstream that answers JSON instead of events (it ignores
        ``stream``) gives its images without partials. Same failures as :meth:`run`, plus an
        ``error`` event's (see the module docstring)."""
        if call.partial_images <= 0:
            return await self.run(call)
        secret = self._key or None
        headers = {**self._headers(), "Accept": "text/event-stream, application/json"}
        streamed = call.model_copy(
            update={"payload": {**call.payload, "stream": True, "partial_images": call.partial_images}}
        )
        url, content, request_headers = self._request(streamed, headers)

        async def once() -> httpx.Response:
            request = self._client.build_request(
                "POST", url, content=content, headers=request_headers, timeout=self.timeout
            )
            response = await self._client.send(request, stream=True)
            if not response.is_success:
                try:  # read the error body, for the retry policy and the mapping
                    await response.aread()
                finally:
                    await response.aclose()
            return response

        try:
            response = await send_with_retry(once, self._retry())
        except httpx.HTTPError as exc:
            raise error_from_transport(exc) from exc
        try:
            if not response.is_success:
                error = error_from_response(response, upstream_model=call.upstream, secret=secret)
                raise with_cause(error, response, secret)
            if is_event_stream(response):
                body = await read_stream(response, call, on_partial, secret=secret)
            else:
                body = parse_body(await response.aread())
        except httpx.HTTPError as exc:  # the connection broke or stalled mid-stream: no retry now
            raise error_from_transport(exc) from exc
        finally:
            await response.aclose()
        images = await collect_images(body, self.results)
        return ProviderResult(images=images, upstream_request_id=response.headers.get("x-request-id"))
