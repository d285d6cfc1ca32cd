"""Who sent a request: the bearer key, checked once per request, becomes a typed :class:`Principal`.

:class:`AuthGuard` reads ``Authorization: Bearer <key>``, asks a :class:`KeyResolver` whom it
belongs to, and puts the answer in the request's context; it refuses nothing itself. The routes
that need a caller (the image and model endpoints) depend on :func:`require_principal`, which
answers 401 in the OpenAI shape when there is none, before any body is read. The guards after it
(per-key limits, admission) skip a request without a principal, so an unauthenticated flood
takes no admission slot and spends no key's bucket.

Keys come from ``PIXELGATE_API_KEYS`` or the YAML ``api_keys`` (:class:`EnvKeyResolver`); another
source (managed keys in a database) is another :class:`KeyResolver`, chained with
:class:`FirstMatch`. With no keys configured the API is open (``serve`` then refuses non-loopback
hosts) and each client address is its own principal, so per-key limits become per-address limits.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Protocol

from fastapi import Depends, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from app.context import context_of
from app.principal import Principal
from core.errors import AuthenticationError, GatewayError, PermissionDeniedError


def check_model_allowed(principal: Principal | None, model: str | None) -> None:
    """403 ``model_not_allowed`` when ``principal`` has a model allow-list without ``model``."""
    if principal is None or model is None or principal.may_use(model):
        return
    allowed = ", ".join(sorted(principal.models or ()))
    raise PermissionDeniedError(
        f"This API key may not use the model '{model}'; its models are: {allowed}.",
        param="model",
        code="model_not_allowed",
    )


class KeyResolver(Protocol):
    """Finds the principal a presented bearer secret belongs to."""

    async def resolve(self, presented_secret: str) -> Principal | None:
        """The key's principal, or None when the secret is no valid key. Must not leak timing about
        how much of a key matched (compare in constant time, or look up a digest)."""
        ...


def key_id_for(secret: str) -> str:
    """The non-secret id of a configured key: a digest of it (the key itself is never kept)."""
    return "key:" + hashlib.sha256(secret.encode()).hexdigest()[:32]


class EnvKeyResolver:
    """The keys of ``PIXELGATE_API_KEYS`` / ``api_keys``. The presented secret is compared with every
    configured key in constant time, with no early exit, so timing tells nothing about which
    prefix matched or which key."""

    def __init__(self, keys: Sequence[str]) -> None:
        self._keys = [(key.encode(), Principal(key_id=key_id_for(key))) for key in keys]

    async def resolve(self, presented_secret: str) -> Principal | None:
        candidate = presented_secret.encode()
        found: Principal | None = None
        for key, principal in self._keys:
            if hmac.compare_digest(candidate, key):
                found = principal
        return found


class FirstMatch:
    """Several key sources in order (the configured keys, then managed keys): the first that knows the key."""

    def __init__(self, resolvers: Sequence[KeyResolver]) -> None:
        self._resolvers = tuple(resolvers)

    async def resolve(self, presented_secret: str) -> Principal | None:
        for resolver in self._resolvers:
            principal = await resolver.resolve(presented_secret)
            if principal is not None:
                return principal
        return None


OpenAccess = Callable[[], Awaitable[bool]]
"""Whether the gateway is open right now (no key of any kind configured): every caller is then a
principal of its own, identified by its address."""


class AuthGuard:
    """Resolves each HTTP request's principal once (see the module docstring); answers nothing itself.

    A resolver that refuses a key it knows (revoked, expired) or cannot answer (its database is away)
    raises; the error is kept in the context for the route to raise, so the client learns why.
    """

    def __init__(self, app: ASGIApp, resolver: KeyResolver, *, open_access: OpenAccess) -> None:
        self.app = app
        self.resolver = resolver
        self.open_access = open_access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            context = context_of(scope)
            presented = presented_key(_authorization(scope))
            context.credentials_presented = presented is not None
            try:
                if await self.open_access():
                    client = scope.get("client")
                    context.principal = Principal(key_id="addr:" + (client[0] if client else "unknown"))
                elif presented is not None:
                    context.principal = await self.resolver.resolve(presented)
            except GatewayError as refused:
                context.auth_error = refused
        await self.app(scope, receive, send)


async def require_principal(request: Request) -> Principal:
    """The route dependency for endpoints that need a caller: the principal, or a 401."""
    context = context_of(request.scope)
    if context.principal is not None:
        return context.principal
    if context.auth_error is not None:
        raise context.auth_error
    if not context.credentials_presented:
        raise AuthenticationError(
            "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.",
            code="missing_api_key",
        )
    raise AuthenticationError("Incorrect API key provided.")


PrincipalDep = Annotated[Principal, Depends(require_principal)]


def presented_key(authorization: str) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header value, or None when there is none."""
    scheme, _, presented = authorization.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return None
    return presented.strip()


def _authorization(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"authorization":
            text: str = value.decode("latin-1")
            return text
    return ""
