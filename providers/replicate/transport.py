"""One Replicate HTTP exchange: authenticated, timed, retried by its policy, and mapped to ``core.errors``.

Every request carries ``Authorization: Bearer <token>``, so every URL it goes to must be on the
configured API root's origin: the prediction URLs Replicate returns (``urls.get``, ``urls.cancel``)
are followed only when they are (:meth:`ReplicateHttp.same_origin`), never to another host.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from pydantic import JsonValue

from providers.replicate.errors import Phase, error_from_response, error_from_transport
from providers.toolkit.retry import RetryPolicy, send_with_retry

FileField = tuple[str, bytes, str]
"""A multipart file part: file name, content, content type."""


@dataclass(frozen=True)
class ReplicateHttp:
    """The app's shared client plus one Replicate account's token, API root and timeouts."""

    client: httpx.AsyncClient
    token: str
    base_url: str
    timeout: httpx.Timeout

    @property
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}

    def same_origin(self, url: str) -> bool:
        """Whether ``url`` is on the API root's scheme, host and port (and so may get the token)."""
        try:
            target, base = httpx.URL(url), httpx.URL(self.base_url)
        except httpx.InvalidURL:
            return False
        return (target.scheme, target.host, target.port) == (base.scheme, base.host, base.port)

    async def send(
        self,
        method: str,
        url: str,
        *,
        phase: Phase,
        retry: RetryPolicy,
        upstream: str = "",
        json: JsonValue = None,
        files: dict[str, FileField] | None = None,
        data: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> httpx.Response:
        """The 2xx response of ``method url`` after ``retry``; raises the mapped gateway error otherwise."""
        request_headers = {**self.auth_headers, **(headers or {})}

        async def once() -> httpx.Response:
            return await self.client.request(
                method,
                url,
                headers=request_headers,
                json=json,
                files=files,
                data=data,
                timeout=timeout or self.timeout,
            )

        try:
            response = await send_with_retry(once, retry)
        except httpx.HTTPError as exc:
            raise error_from_transport(exc, phase=phase) from exc
        if not response.is_success:
            raise error_from_response(response, phase=phase, upstream=upstream, secret=self.token)
        return response
