"""Who sent a request, once its API key is resolved (:mod:`app.auth`): what the guards and routes key by."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. ``key_id`` is stable and not secret: limits, idempotency keys and
    (later) the usage ledger are keyed by it; it may appear in logs. The other fields are a managed
    key's own limits; None means the gateway's defaults apply."""

    key_id: str
    name: str | None = None
    models: frozenset[str] | None = None
    """The model ids this key may use; None: every model."""
    rpm: int | None = None
    """This key's requests per minute (its bucket's capacity too); None: ``PIXELGATE_RATE_LIMIT_RPM``."""
    budget_usd: Decimal | None = None

    def may_use(self, model: str) -> bool:
        return self.models is None or model in self.models
