"""``GET /metrics``: the gateway's Prometheus metrics, in a registry of its own per app.

What is counted where:

- every request, when its response is done (:class:`Metrics` is a
  :class:`~app.observe.RequestObserver` of the usage guard): image requests by model, provider and
  status, their duration, images and cost; error answers by code; image requests in progress;
- every upstream call (:class:`Metrics` is the pipeline's
  :class:`~normalization.metering.CallObserver`): its duration and failure code per provider, the
  calls in flight (fan-out included), and the conversion time after them;
- at scrape time, read from the objects that own the state (:class:`_StateCollector`): the
  admission queue and slots, the usage ledger's pending, written and dropped rows, budget refusals
  and unsettled charges, and each provider's circuit-breaker state from a
  :class:`~normalization.metering.ProviderHealth`.

The registry is not prometheus-client's global default: tests build many apps in one process.
Who may read it: the bearer of ``PIXELGATE_ADMIN_KEY`` when one is set; without one, loopback
clients only.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterator

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import SecretStr

from app.admission import AdmissionGate
from app.auth import presented_key
from app.keys.budget import Budgets
from app.observe import RequestRecord
from app.usage import Ledger
from core.errors import AuthenticationError, GatewayError, PermissionDeniedError
from normalization.metering import BREAKER_STATES, AllClosed, ProviderHealth

UNKNOWN = "unknown"
"""The label of a model or provider a request never got to (refused before it was known)."""
REQUEST_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)
"""Image requests take from milliseconds (the sandbox, a refusal) to minutes (a slow model)."""
CONVERSION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class Metrics:
    """The app's metrics and their registry; see the module docstring."""

    def __init__(self, *, admission: AdmissionGate, ledger: Ledger, budgets: Budgets) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.requests = Counter(
            "pixelgate_requests", "Image requests answered.", ["model", "provider", "status"], registry=registry
        )
        self.request_errors = Counter(
            "pixelgate_request_errors",
            "Error answers by error code (image requests and the rest).",
            ["code"],
            registry=registry,
        )
        self.duration = Histogram(
            "pixelgate_request_duration_seconds",
            "Image requests, arrival to the last byte of the answer.",
            ["model"],
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        self.upstream_duration = Histogram(
            "pixelgate_upstream_duration_seconds",
            "Upstream calls, retries included, by provider.",
            ["provider"],
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        self.upstream_errors = Counter(
            "pixelgate_upstream_errors",
            "Upstream calls that failed after their retries, by provider and error code.",
            ["provider", "code"],
            registry=registry,
        )
        self.upstream_inflight = Gauge(
            "pixelgate_upstream_calls_inflight",
            "Upstream calls running now (fan-out calls counted one by one), by provider.",
            ["provider"],
            registry=registry,
        )
        self.images = Counter(
            "pixelgate_images", "Images answered, by model and provider.", ["model", "provider"], registry=registry
        )
        self.cost = Counter(
            "pixelgate_cost_usd",
            "What the upstream calls cost, in USD, by model and provider.",
            ["model", "provider"],
            registry=registry,
        )
        self.inflight = Gauge(
            "pixelgate_inflight_requests",
            "Image requests in progress (queued, served, or waiting on upstreams).",
            registry=registry,
        )
        self.conversion = Histogram(
            "pixelgate_conversion_seconds",
            "Decoding, resizing and encoding one request's images after the upstream answered.",
            buckets=CONVERSION_BUCKETS,
            registry=registry,
        )
        self._state = _StateCollector(admission, ledger, budgets)
        registry.register(self._state)

    def watch_health(self, health: ProviderHealth) -> None:
        """Report ``health``'s circuit-breaker states (the lifespan calls it once the gateway exists)."""
        self._state.health = health

    # RequestObserver

    def request_started(self, image_request: bool) -> None:
        if image_request:
            self.inflight.inc()

    def request_finished(self, record: RequestRecord) -> None:
        if record.error_code is not None:
            self.request_errors.labels(record.error_code).inc()
        if not record.image_request:
            return
        self.inflight.dec()
        model, provider = record.model or UNKNOWN, record.provider or UNKNOWN
        self.requests.labels(model, provider, str(record.status)).inc()
        self.duration.labels(model).observe(record.total_ms / 1000)
        if record.images:
            self.images.labels(model, provider).inc(record.images)
        if record.cost_usd:
            self.cost.labels(model, record.provider or UNKNOWN).inc(record.cost_usd)

    # CallObserver

    def call_started(self, provider: str) -> None:
        self.upstream_inflight.labels(provider).inc()

    def call_finished(self, provider: str, seconds: float, error: GatewayError | None) -> None:
        self.upstream_inflight.labels(provider).dec()
        self.upstream_duration.labels(provider).observe(seconds)
        if error is not None:
            self.upstream_errors.labels(provider, error.code or str(error.status_code)).inc()

    def converted(self, seconds: float) -> None:
        self.conversion.observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _StateCollector(Collector):
    """Values read at scrape time from the objects that own them."""

    def __init__(self, admission: AdmissionGate, ledger: Ledger, budgets: Budgets) -> None:
        self.admission = admission
        self.ledger = ledger
        self.budgets = budgets
        self.health: ProviderHealth = AllClosed(())

    def collect(self) -> Iterator[Metric]:
        admission, ledger, budgets = self.admission, self.ledger, self.budgets
        gauges = (
            ("pixelgate_queued_requests", "Image requests waiting for an admission slot.", admission.queued),
            ("pixelgate_admission_slots_in_use", "Admission slots taken (the gateway's own work).", admission.inflight),
            (
                "pixelgate_admission_slots",
                "PIXELGATE_MAX_INFLIGHT.",
                admission.limits.max_inflight,
            ),
            (
                "pixelgate_intake_bytes",
                "Bytes of large uploads read and not yet with an upstream (PIXELGATE_MAX_INTAKE_BYTES bounds them).",
                admission.intake_bytes,
            ),
            ("pixelgate_ledger_pending_rows", "Usage ledger rows not written yet.", ledger.pending),
            ("pixelgate_budget_charges_pending", "Budget charges not written yet.", budgets.settling),
        )
        counters = (
            ("pixelgate_ledger_written_rows", "Usage ledger rows written.", ledger.written),
            (
                "pixelgate_ledger_dropped_rows",
                "Usage ledger rows dropped (database too slow).",
                ledger.dropped,
            ),
            (
                "pixelgate_budget_refusals",
                "Requests refused: insufficient_quota.",
                budgets.refused,
            ),
            ("pixelgate_budget_charges_failed", "Budget charges given up after retries.", budgets.settle_failures),
        )
        for name, documentation, value in gauges:
            yield GaugeMetricFamily(name, documentation, value=value)
        for name, documentation, value in counters:
            yield CounterMetricFamily(name, documentation, value=value)
        breaker = GaugeMetricFamily(
            "pixelgate_circuit_breaker_state",
            "Each provider's circuit breaker: 1 for its current state (closed, half_open, open).",
            labels=["provider", "state"],
        )
        for provider, current in sorted(self.health.breaker_states().items()):
            for state in BREAKER_STATES:
                breaker.add_metric([provider, state], 1 if state == current else 0)
        yield breaker


def _loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def metrics_router(metrics: Metrics, admin_key: SecretStr | None) -> APIRouter:
    """``GET /metrics`` for the bearer of ``admin_key``, or for loopback clients when there is none."""
    router = APIRouter()
    key = None if admin_key is None else admin_key.get_secret_value().encode()

    @router.get("/metrics", include_in_schema=False)
    async def scrape(request: Request) -> Response:
        if key is not None:
            presented = presented_key(request.headers.get("authorization", ""))
            if presented is None or not hmac.compare_digest(presented.encode(), key):
                raise AuthenticationError(
                    "/metrics needs the admin key: send 'Authorization: Bearer <PIXELGATE_ADMIN_KEY>'.",
                    code="missing_api_key" if presented is None else "invalid_api_key",
                )
        elif not _loopback(request.client.host if request.client else None):
            raise PermissionDeniedError(
                "/metrics answers loopback clients only while PIXELGATE_ADMIN_KEY is unset; set it to scrape "
                "from elsewhere with 'Authorization: Bearer <PIXELGATE_ADMIN_KEY>'.",
                code="metrics_loopback_only",
            )
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return router
