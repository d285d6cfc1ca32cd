"""One fal HTTP exchange: authenticated, timed, retried, and mapped to ``core.errors``.

Queue and storage calls all go through :meth:`FalHttp.send`, so the retry policy, the
connect/read timeouts and the error mapping are the same for every request to fal.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from pydantic import JsonValue

from providers.fal.errors import Phase, error_from_response, error_from_transport
from providers.toolkit.chunked_body import ChunkedBody
from providers.toolkit.failures import with_cause
from providers.toolkit.retry import RetryPolicy, send_with_retry


@dataclass
class FalHttp:
    """The app's shared client plus one fal account's key, timeouts and retry policy."""

    client: httpx.AsyncClient
    api_key: str
    timeout: httpx.Timeout
    retry: RetryPolicy

    @property
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Key {self.api_key}", "Accept": "application/json"}

    async def send(
        self,
        method: str,
        url: str,
        *,
        phase: Phase,
        endpoint_id: str = "",
        json: JsonValue = None,
        content: bytes | ChunkedBody | None = None,
        content_type: str | None = None,
        authenticated: bool = True,
    ) -> httpx.Response:
        """The 2xx response of ``method url`` after retries; raises the mapped gateway error otherwise.

        ``authenticated=False`` leaves the key out (for presigned upload URLs on other hosts).
        """
        headers = dict(self.auth_headers) if authenticated else {}
        if content_type is not None:
            headers["Content-Type"] = content_type
        if isinstance(content, ChunkedBody):
            headers["Content-Length"] = str(len(content))  # else httpx would send it chunked

        async def once() -> httpx.Response:
            return await self.client.request(
                method, url, headers=headers, json=json, content=content, timeout=self.timeout
            )

        try:
            response = await send_with_retry(once, self.retry)
        except httpx.HTTPError as exc:
            raise error_from_transport(exc, phase=phase) from exc
        if not response.is_success:
            error = error_from_response(response, phase=phase, endpoint_id=endpoint_id, secret=self.api_key)
            raise with_cause(error, response, self.api_key)
        return response
