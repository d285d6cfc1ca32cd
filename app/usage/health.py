"""Each provider's recent record from the usage ledger: how often it was tried and how often it failed.

A ledger row lists the deployments tried (``provider:upstream``, in order) and the provider that served.
:func:`attempts` turns one row into one outcome per provider tried; :func:`provider_activity` sums them
over the most recent rows. Only failures that say something about the provider count as its errors:
one it was passed over for (a later deployment was tried), or a final answer of 5xx, 408 or 429. A
client's fault that the provider reported (a 400: a value it refused, a content-policy refusal) is a
request it answered, not an error of its own. The ledger keeps only a request's final error code: a
provider passed over for the next deployment has ``failed_over`` as its last error code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select

from app.db import Database, unavailable_as_503
from app.db.schema import usage_ledger

PROVIDER_FAULT_STATUSES = frozenset({408, 429})
"""Besides every 5xx: answers that blame the upstream (timed out, rate limited)."""


@dataclass(frozen=True)
class Attempt:
    provider: str
    failed: bool
    final: bool
    """The last provider tried for the request: the request's error code is this provider's."""


def attempts(deployments: Sequence[str], served_by: str | None, status: int) -> list[Attempt]:
    """One outcome per provider the request tried (each once, in order)."""
    tried = list(dict.fromkeys(deployment.partition(":")[0] for deployment in deployments))
    outcomes = []
    for index, provider in enumerate(tried):
        final = index == len(tried) - 1
        if status < 400:
            failed = provider != served_by
        else:
            failed = not final or status >= 500 or status in PROVIDER_FAULT_STATUSES
        outcomes.append(Attempt(provider=provider, failed=failed, final=final))
    return outcomes


@dataclass
class ProviderActivity:
    """One provider's tries within the rows read; times are Unix seconds."""

    requests: int = 0
    errors: int = 0
    last_request_at: float | None = None
    last_error_at: float | None = None
    last_error_code: str | None = None

    @property
    def error_rate(self) -> float | None:
        return round(self.errors / self.requests, 4) if self.requests else None


async def provider_activity(database: Database, *, since_ms: int, max_rows: int) -> dict[str, ProviderActivity]:
    """Each provider's activity over the ledger rows created from ``since_ms`` on, at most the
    ``max_rows`` most recent of them (a bound on the work, whatever the traffic)."""
    ledger = usage_ledger.c
    query = (
        select(ledger.deployments, ledger.provider, ledger.status, ledger.error_code, ledger.created_ms)
        .where(ledger.created_ms >= since_ms)
        .order_by(ledger.id.desc())
        .limit(max_rows)
    )
    with unavailable_as_503():
        async with database.engine.connect() as connection:
            rows = (await connection.execute(query)).all()
    activity: dict[str, ProviderActivity] = {}
    for row in rows:  # newest first: the first error seen is the last one made
        created = row.created_ms / 1000
        for attempt in attempts(row.deployments or (), row.provider, row.status):
            record = activity.setdefault(attempt.provider, ProviderActivity())
            record.requests += 1
            record.last_request_at = max(record.last_request_at or created, created)
            if attempt.failed:
                record.errors += 1
                if record.last_error_at is None or created > record.last_error_at:
                    record.last_error_at = created
                    record.last_error_code = row.error_code if attempt.final else "failed_over"
    return activity
