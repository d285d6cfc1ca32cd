"""Counting each upstream call as it happens: what it cost, how long it took, how it failed.

:class:`MeteredAdapter` wraps the adapter a plan's calls go through. For every call it adds the
call's actual cost (:func:`normalization.pricing.call_actual`) to the request's :class:`Spend` as
soon as the call returns images, so a fan-out that fails after some of its calls completed still
counts what those calls cost (the provider billed them); it tells a :class:`CallObserver` (the
app's metrics) when a call starts and ends; and it logs a failed call with its cause.

The pipeline builds one per request; nothing here keeps state across requests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Iterable, Mapping
from decimal import Decimal
from typing import Literal, Protocol

from core.errors import GatewayError
from core.model_shape import PriceSpec
from normalization.pricing import ZERO, call_actual
from providers.base import ImageAdapter, OnPartial, ProviderResult, UpstreamCall, UpstreamTracker

log = logging.getLogger("pixelgate.upstream")


class Spend:
    """What a request's upstream calls cost so far, in USD (completed calls only)."""

    def __init__(self) -> None:
        self.total: Decimal = ZERO
        self.calls = 0

    def add(self, amount: Decimal) -> None:
        self.total += amount
        self.calls += 1


class CallObserver(Protocol):
    """Told about every upstream call and the conversions after them (the app's metrics implement it)."""

    def call_started(self, provider: str) -> None: ...

    def call_finished(self, provider: str, seconds: float, error: GatewayError | None) -> None: ...

    def converted(self, seconds: float) -> None:
        """The emulation stage's decode, resize and encode of one request's images took ``seconds``."""
        ...


BreakerState = Literal["closed", "half_open", "open"]
BREAKER_STATES: tuple[BreakerState, ...] = ("closed", "half_open", "open")


class ProviderHealth(Protocol):
    """Each provider's circuit-breaker state, read when the metrics are scraped (a breaker that skips a
    failing provider for a cooling period implements it)."""

    def breaker_states(self) -> Mapping[str, BreakerState]: ...


class AllClosed:
    """:class:`ProviderHealth` without a breaker: every provider is always ``closed``."""

    def __init__(self, providers: Iterable[str]) -> None:
        self._states: dict[str, BreakerState] = dict.fromkeys(providers, "closed")

    def breaker_states(self) -> Mapping[str, BreakerState]:
        return self._states


class NoObserver:
    """A :class:`CallObserver` that ignores everything."""

    def call_started(self, provider: str) -> None:
        return None

    def call_finished(self, provider: str, seconds: float, error: GatewayError | None) -> None:
        return None

    def converted(self, seconds: float) -> None:
        return None


class MeteredAdapter(ImageAdapter):
    """``inner`` with each call's cost added to ``spend`` and each call reported to ``observer``."""

    def __init__(self, inner: ImageAdapter, *, price: PriceSpec | None, spend: Spend, observer: CallObserver) -> None:
        self._inner = inner
        self.reports_acceptance = inner.reports_acceptance
        self._price = price
        self._spend = spend
        self._observer = observer

    async def run(self, call: UpstreamCall) -> ProviderResult:
        return await self._metered(call, self._inner.run(call))

    async def run_tracked(self, call: UpstreamCall, tracker: UpstreamTracker) -> ProviderResult:
        # The inner adapter's own resumable run (an async job): metering must not hide it.
        return await self._metered(call, self._inner.run_tracked(call, tracker))

    async def run_streaming(self, call: UpstreamCall, on_partial: OnPartial) -> ProviderResult:
        # The inner adapter's streamed run (its partial images): metering must not hide it either.
        return await self._metered(call, self._inner.run_streaming(call, on_partial))

    async def _metered(self, call: UpstreamCall, work: Awaitable[ProviderResult]) -> ProviderResult:
        self._observer.call_started(call.provider)
        started = time.monotonic()
        error: GatewayError | None = None
        try:
            result = await work
        except GatewayError as exc:
            error = exc
            _log_failure(call, exc)
            raise
        finally:
            self._observer.call_finished(call.provider, time.monotonic() - started, error)
        self._spend.add(call_actual(self._price, call, result))
        return result


def _log_failure(call: UpstreamCall, exc: GatewayError) -> None:
    """One line per failed call: what the client is told, and the upstream's own cause when the
    adapter attached one (as an exception note: its status and message, scrubbed of the credential)."""
    cause = " | ".join(getattr(exc, "__notes__", ()))
    level = logging.WARNING if exc.status_code >= 500 else logging.INFO
    fields = {
        "provider": call.provider,
        "upstream": call.upstream,
        "call": call.index,
        "status": exc.status_code,
        "error_code": exc.code,
        "error": exc.message,
        "cause": cause or None,
    }
    log.log(level, "upstream call failed: %s %s", call.provider, call.upstream, extra={"fields": fields})
