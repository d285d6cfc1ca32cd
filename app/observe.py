"""What every finished HTTP request looked like, for whoever watches them: the metrics, the request log.

:class:`~app.usage.recording.UsageGuard` (a request guard, outside every other) builds one
:class:`RequestRecord` per HTTP request once its response is done, from the request's
:class:`~app.context.RequestContext` and the response's status and error code, writes the usage
ledger row of an image request, and hands the record to each :class:`RequestObserver`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One finished HTTP request. Never a secret: ``key_id`` is the key's id, ``path`` has no query."""

    request_id: str
    method: str
    path: str
    status: int
    total_ms: int
    image_request: bool
    """An edit or a generation (the ledger's requests; the rest are models, links, probes, admin)."""
    key_id: str | None = None
    model: str | None = None
    provider: str | None = None
    """The provider that served (None when none did)."""
    deployments: tuple[str, ...] = ()
    error_code: str | None = None
    images: int = 0
    megapixels: float = 0.0
    cost_usd: float = 0.0
    queue_ms: int = 0
    upstream_ms: int = 0
    replay: bool = False
    created: float = 0.0
    """Unix seconds when the request arrived."""


class RequestObserver(Protocol):
    """Told when an HTTP request starts and when its response is done."""

    def request_started(self, image_request: bool) -> None: ...

    def request_finished(self, record: RequestRecord) -> None: ...
