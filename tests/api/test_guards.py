"""The request guards in process: their order, the principal they resolve, the context they share.

Driven as plain ASGI callables with a recording inner app; the live-server tests of each guard's
behaviour are in tests/e2e (test_admission, test_rate_limits, test_request_guards...).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.admission import AdmissionGate, AdmissionLimits
from app.auth import EnvKeyResolver, FirstMatch, OpenAccess, key_id_for, require_principal
from app.context import NO_SLOT, RequestContext, RequestContextGuard, context_of
from app.db import Database
from app.guards import IMAGE_PATHS, BodyDeadlines, Guard, GuardStack, request_guards
from app.main import create_app
from app.principal import Principal
from app.ratelimit import MemoryLimitStore, limit_config
from app.shutdown import InFlight
from app.usage import Ledger, LedgerConfig
from core.errors import AuthenticationError
from tests.conftest import make_settings

ORDER = ["request_context", "usage", "shutdown", "auth", "limits", "admission", "body_deadlines"]


def _open(value: bool) -> OpenAccess:
    async def open_access() -> bool:
        return value

    return open_access


def _ledger() -> Ledger:
    """A ledger that is never started: rows stay in its buffer (no database is opened)."""
    return Ledger(
        Database.from_setting(None, Path("unused")), LedgerConfig(flush_rows=10, flush_seconds=1, max_pending=100)
    )


def _guards(*, keys: list[str], rpm: int = 0, open_access: bool = False) -> tuple[Guard, ...]:
    return request_guards(
        inflight=InFlight(),
        keys=EnvKeyResolver(keys),
        open_access=_open(open_access),
        ledger=_ledger(),
        limits=limit_config(requests_per_minute=rpm, burst=None, max_concurrent=0),
        limit_store=MemoryLimitStore(),
        admission=AdmissionGate(
            AdmissionLimits(max_inflight=1, max_queued=0, queue_timeout_seconds=1, retry_after_seconds=1)
        ),
        body=BodyDeadlines(idle_seconds=5, total_seconds=5),
    )


def test_the_guards_are_in_their_documented_order() -> None:
    assert [guard.name for guard in _guards(keys=["k"])] == ORDER


def test_the_app_installs_the_guards_once_in_that_order(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    assert len(app.user_middleware) == 1
    installed = app.user_middleware[0]
    assert installed.cls is GuardStack  # type: ignore[comparison-overlap]
    guards = installed.kwargs["guards"]
    assert isinstance(guards, tuple)
    assert [guard.name for guard in guards] == ORDER


async def test_the_stack_runs_the_first_guard_outermost() -> None:
    calls: list[str] = []

    def recording(name: str) -> Guard:
        def wrap(inner: ASGIApp) -> ASGIApp:
            async def layer(scope: Scope, receive: Receive, send: Send) -> None:
                calls.append(f"{name} in")
                await inner(scope, receive, send)
                calls.append(f"{name} out")

            return layer

        return Guard(name, wrap)

    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        calls.append("app")

    stack = GuardStack(endpoint, [recording("a"), recording("b"), recording("c")])
    assert stack.names == ("a", "b", "c")
    await stack({"type": "http"}, _no_body, _discard)
    assert calls == ["a in", "b in", "c in", "app", "c out", "b out", "a out"]


# --- a request through the real guards ------------------------------------------------------------


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _discard(message: Message) -> None:
    return None


def _scope(path: str, authorization: str | None = None, client: str = "127.0.0.9") -> Scope:
    headers = [(b"authorization", authorization.encode())] if authorization else []
    return {"type": "http", "method": "POST", "path": path, "headers": headers, "client": (client, 5000)}


Seen = list[RequestContext]


def _recording_app(seen: Seen) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(context_of(scope))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    return app


async def _through(guards: tuple[Guard, ...], scope: Scope) -> tuple[Seen, list[Message]]:
    seen: Seen = []
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await GuardStack(_recording_app(seen), guards)(scope, _no_body, send)
    return seen, sent


def _header(messages: list[Message], name: bytes) -> bytes | None:
    start = next(message for message in messages if message["type"] == "http.response.start")
    return next((value for key, value in start["headers"] if key == name), None)


async def test_a_valid_key_becomes_a_principal_with_a_slot_and_a_limits_ticket() -> None:
    guards = _guards(keys=["sk-one", "sk-two"], rpm=60)
    seen, sent = await _through(guards, _scope("/v1/images/generations", "Bearer sk-two"))
    context = seen[0]
    assert context.principal == Principal(key_id=key_id_for("sk-two"))
    assert context.slot is not NO_SLOT and context.limits is not None
    assert context.outcome.status == 200 and context.timings.total is not None
    assert _header(sent, b"x-request-id") == context.request_id.encode()
    assert _header(sent, b"x-ratelimit-remaining-requests") == b"59"


@pytest.mark.parametrize(("authorization", "presented"), [("Bearer sk-wrong", True), (None, False), ("Basic x", False)])
async def test_without_a_valid_key_nothing_is_spent(authorization: str | None, presented: bool) -> None:
    guards = _guards(keys=["sk-one"], rpm=60)
    seen, sent = await _through(guards, _scope("/v1/images/generations", authorization))
    context = seen[0]
    assert context.principal is None and context.credentials_presented is presented
    assert context.slot is NO_SLOT and context.limits is None
    assert _header(sent, b"x-ratelimit-remaining-requests") is None


async def test_other_paths_get_a_principal_but_no_slot_or_limits() -> None:
    seen, _ = await _through(_guards(keys=["sk-one"], rpm=60), _scope("/v1/models", "Bearer sk-one"))
    assert seen[0].principal is not None
    assert seen[0].slot is NO_SLOT and seen[0].limits is None
    assert "/v1/models" not in IMAGE_PATHS


async def test_without_configured_keys_each_address_is_a_principal() -> None:
    guards = _guards(keys=[], open_access=True)
    first, _ = await _through(guards, _scope("/v1/images/edits", "Bearer anything", client="10.0.0.1"))
    second, _ = await _through(guards, _scope("/v1/images/edits", None, client="10.0.0.2"))
    assert [seen.principal for seen in (*first, *second)] == [
        Principal(key_id="addr:10.0.0.1"),
        Principal(key_id="addr:10.0.0.2"),
    ]


async def test_a_principals_own_rpm_replaces_the_default() -> None:
    class Limited:
        async def resolve(self, presented_secret: str) -> Principal | None:
            return Principal(key_id="key_managed", rpm=2) if presented_secret == "sk-managed" else None

    guards = request_guards(
        inflight=InFlight(),
        keys=FirstMatch([EnvKeyResolver(["sk-env"]), Limited()]),
        open_access=_open(False),
        ledger=_ledger(),
        limits=limit_config(requests_per_minute=600, burst=None, max_concurrent=0),
        limit_store=MemoryLimitStore(),
        admission=AdmissionGate(
            AdmissionLimits(max_inflight=4, max_queued=0, queue_timeout_seconds=1, retry_after_seconds=1)
        ),
        body=BodyDeadlines(idle_seconds=5, total_seconds=5),
    )
    statuses = []
    for _ in range(3):
        _, sent = await _through(guards, _scope("/v1/images/generations", "Bearer sk-managed"))
        statuses.append(next(m["status"] for m in sent if m["type"] == "http.response.start"))
    assert statuses == [200, 200, 429]
    _, sent = await _through(guards, _scope("/v1/images/generations", "Bearer sk-env"))
    assert _header(sent, b"x-ratelimit-limit-requests") == b"600"


# --- the principal ----------------------------------------------------------------------------------


async def test_env_keys_resolve_to_stable_ids_that_do_not_contain_the_key() -> None:
    resolver = EnvKeyResolver(["sk-team-a", "sk-team-b"])
    a, b = await resolver.resolve("sk-team-a"), await resolver.resolve("sk-team-b")
    assert a is not None and b is not None and a.key_id != b.key_id
    assert a == await EnvKeyResolver(["sk-team-a"]).resolve("sk-team-a")  # stable across restarts
    assert "sk-team-a" not in a.key_id and a.key_id.startswith("key:")
    for wrong in ("sk-team", "sk-team-a ", "SK-TEAM-A", "sk-team-ab", ""):
        assert await resolver.resolve(wrong) is None


async def test_first_match_asks_each_source_in_order() -> None:
    asked: list[str] = []

    class Source:
        def __init__(self, name: str, knows: str) -> None:
            self.name, self.knows = name, knows

        async def resolve(self, presented_secret: str) -> Principal | None:
            asked.append(self.name)
            if presented_secret != self.knows:
                return None
            return Principal(key_id=self.name, budget_usd=Decimal("5"))

    chain = FirstMatch([Source("env", "k1"), Source("db", "k2")])
    assert (await chain.resolve("k1")) == Principal(key_id="env", budget_usd=Decimal("5"))
    assert asked == ["env"]
    assert (await chain.resolve("k2")) == Principal(key_id="db", budget_usd=Decimal("5"))
    assert await chain.resolve("k3") is None
    assert asked == ["env", "env", "db", "env", "db"]


class _Request:
    def __init__(self, scope: Scope) -> None:
        self.scope = scope


@pytest.mark.parametrize(("authorization", "code"), [(None, "missing_api_key"), ("Bearer nope", "invalid_api_key")])
async def test_the_route_dependency_words_the_401(authorization: str | None, code: str) -> None:
    seen, _ = await _through(_guards(keys=["sk-one"]), _scope("/v1/models", authorization))
    scope: Scope = {"type": "http"}
    scope.update({"pixelgate.context": seen[0]})
    with pytest.raises(AuthenticationError) as caught:
        await require_principal(_Request(scope))  # type: ignore[arg-type]
    assert caught.value.code == code


def test_context_of_a_scope_without_the_context_guard_is_a_wiring_error() -> None:
    with pytest.raises(RuntimeError, match="outermost"):
        context_of({"type": "http"})


async def test_the_context_guard_keeps_a_sane_client_request_id_only() -> None:
    ids: list[bytes | None] = []
    for incoming in (b"client-id_1.2:3", b"bad id", b"x" * 129):
        sent: list[Message] = []

        async def send(message: Message, sent: list[Message] = sent) -> None:
            sent.append(message)

        scope = {"type": "http", "path": "/", "headers": [(b"x-request-id", incoming)]}
        await RequestContextGuard(_recording_app([]))(scope, _no_body, send)
        ids.append(_header(sent, b"x-request-id"))
    assert ids[0] == b"client-id_1.2:3"
    assert ids[1] != b"bad id" and ids[2] != b"x" * 129
    assert all(value is not None and value.startswith(b"req_") for value in ids[1:])


async def test_upstream_time_is_counted_and_the_slot_handed_on() -> None:
    gate = AdmissionGate(AdmissionLimits(max_inflight=1, max_queued=0, queue_timeout_seconds=1, retry_after_seconds=1))
    guards = request_guards(
        inflight=InFlight(),
        keys=EnvKeyResolver(["k"]),
        open_access=_open(False),
        ledger=_ledger(),
        limits=limit_config(requests_per_minute=0, burst=None, max_concurrent=0),
        limit_store=MemoryLimitStore(),
        admission=gate,
        body=BodyDeadlines(idle_seconds=5, total_seconds=5),
    )
    during: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        context = context_of(scope)
        async with context.upstream():
            during.append(gate.inflight)
            await asyncio.sleep(0.05)
        during.append(gate.inflight)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        assert context.timings.upstream > 0

    await GuardStack(app, guards)(_scope("/v1/images/edits", "Bearer k"), _no_body, _discard)
    assert during == [0, 1]  # handed on while upstream, taken back after
    assert gate.inflight == 0


async def test_a_bug_is_a_500_in_the_openai_shape_with_the_request_id(caplog: pytest.LogCaptureFixture) -> None:
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise KeyError("internal detail")

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await GuardStack(broken, _guards(keys=["k"]))(_scope("/v1/images/edits", "Bearer k"), _no_body, send)
    assert sent[0]["status"] == 500
    assert _header(sent, b"x-request-id") is not None and _header(sent, b"x-should-retry") == b"false"
    assert b"internal detail" not in sent[1]["body"]
    assert orjson.loads(sent[1]["body"])["error"]["type"] == "server_error"
    assert "unhandled error" in caplog.text
