"""The request guards, installed in one place and in one order.

Each HTTP request passes the guards in the order of :func:`request_guards`, outermost first. The
order is the design; each position has its reason:

0. Before any of them, in the HTTP protocol (:mod:`app.http_protocol`): the limits on the request
   head (its line, each header, the whole head, the header count: 431) and the head deadline. They
   run before a request exists, on bytes, so a huge or endless head never reaches the app.
1. ``request_context`` (:class:`~app.context.RequestContextGuard`): outermost, so that every answer,
   including the guards' own 503s and 429s, carries ``x-request-id``, and so that the
   :class:`~app.context.RequestContext` the others fill exists before any of them runs; it sees the
   final status and the total time.
2. ``usage`` (:class:`~app.usage.recording.UsageGuard`): right inside it and outside every other
   guard, so that what the guards refuse (401, 429, 503) is in the usage ledger, the metrics and
   the request log too; it reads the context when the response is done.
3. ``shutdown`` (:class:`~app.shutdown.ShutdownGuard`): outside admission and the limits, so a
   request the server cancels at the end of the drain gets its 503 ``shutting_down`` even while it
   still waits in the admission queue.
4. ``auth`` (:class:`~app.auth.AuthGuard`): resolves the caller once, before anything is spent on
   the request: the guards inside act only for requests with a principal, so a request without a
   valid key takes no token, no per-key slot and no admission slot (the route then answers 401
   at once, even when every slot is taken).
5. ``limits`` (:class:`~app.ratelimit.LimitsGuard`): after auth (buckets belong to principals) and
   before admission, so a key over its rate or its concurrency cap is refused at once instead of
   waiting in the shared queue, and one key cannot fill that queue.
6. ``admission`` (:class:`~app.admission_guard.AdmissionGuard`): takes a slot before the body is read,
   so queued uploads stay in the socket buffers.
7. ``body_deadlines`` (:class:`~app.body_timeout.BodyDeadlineGuard`): innermost, around the reads
   of the body, which start only once the request holds its slot: a queued request is not timed
   out for the upload it was not allowed to send.

Two guards are not in this stack because they cannot be: ``Idempotency-Key`` handling
(:mod:`app.idempotency`) fingerprints the *parsed* body, so it runs in the image routes after the
body is read; and the redaction of signed-link signatures in the access log
(:mod:`app.access_log`) filters log records, so the app's lifespan installs it on uvicorn's logger.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from app.admission import AdmissionGate
from app.admission_guard import AdmissionGuard
from app.api.images import EDITS_PATH, GENERATIONS_PATH
from app.auth import AuthGuard, KeyResolver, OpenAccess
from app.body_timeout import BodyDeadlineGuard
from app.context import RequestContextGuard
from app.observe import RequestObserver
from app.ratelimit import LimitConfig, LimitsGuard, LimitStore
from app.shutdown import InFlight, ShutdownGuard
from app.usage.ledger import Ledger
from app.usage.recording import UsageGuard

IMAGE_PATHS = frozenset({EDITS_PATH, GENERATIONS_PATH})
"""The endpoints that cost upstream work: the per-key limits and admission apply to these only."""


@dataclass(frozen=True)
class Guard:
    """One layer of the stack: its name and how it wraps the app inside it."""

    name: str
    wrap: Callable[[ASGIApp], ASGIApp]


@dataclass(frozen=True)
class BodyDeadlines:
    idle_seconds: float
    total_seconds: float


def request_guards(
    *,
    inflight: InFlight,
    keys: KeyResolver,
    open_access: OpenAccess,
    limits: LimitConfig,
    limit_store: LimitStore,
    admission: AdmissionGate,
    ledger: Ledger,
    body: BodyDeadlines,
    observers: Sequence[RequestObserver] = (),
) -> tuple[Guard, ...]:
    """The guards, outermost first; the module docstring gives the reason for each position.

    ``observers`` are told about every request (the metrics, the request log)."""
    return (
        Guard("request_context", RequestContextGuard),
        Guard("usage", lambda app: UsageGuard(app, ledger, paths=IMAGE_PATHS, observers=observers)),
        Guard("shutdown", lambda app: ShutdownGuard(app, inflight)),
        Guard("auth", lambda app: AuthGuard(app, keys, open_access=open_access)),
        Guard("limits", lambda app: LimitsGuard(app, limit_store, limits, paths=IMAGE_PATHS)),
        Guard("admission", lambda app: AdmissionGuard(app, admission, paths=IMAGE_PATHS)),
        Guard(
            "body_deadlines",
            lambda app: BodyDeadlineGuard(app, idle_seconds=body.idle_seconds, total_seconds=body.total_seconds),
        ),
    )


class GuardStack:
    """ASGI middleware running ``guards`` around ``app``, the first outermost.

    Installed with ``app.add_middleware(GuardStack, guards=...)``: inside the framework's error
    middleware, outside its routing and exception handlers. Errors a guard decides itself it
    renders itself (:func:`app.handlers.error_response`).
    """

    def __init__(self, app: ASGIApp, guards: Sequence[Guard]) -> None:
        self.names = tuple(guard.name for guard in guards)
        for guard in reversed(guards):
            app = guard.wrap(app)
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)
