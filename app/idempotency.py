"""``Idempotency-Key``: a retried image request is answered once, without a second upstream call.

The SDKs retry on timeouts and 5xx, and an image costs money. With the header, a request is
identified by (who sent it, the key) and fingerprinted by what it asks for: the endpoint, the
``dry_run`` and strict switches and the *parsed* body (form fields and the digests of the image
parts, or the JSON object with sorted keys), never the raw bytes, since a retried multipart upload
gets a new boundary. Then:

- same key, same fingerprint, answer stored: the stored answer, with ``idempotent-replayed: true``;
- same key, same fingerprint, first request still running: wait for it and share its answer;
- same key, another fingerprint (stored or running): 409 ``idempotency_key_reused``, sent with
  ``x-should-retry: false`` because the SDKs would otherwise retry a 409.

What is stored: the answers a retry would get again, i.e. 2xx and 4xx except 408/409/429. Not
stored: 5xx, 429, 408 and a request that ended without an answer (cancelled), so a retry runs
afresh. The work of a request with a key is not tied to its connection: when the client gives up
(a read timeout, then its retry), the work runs on, within the request deadline, and the retry
picks up its answer instead of paying for a second image. Answers with hosted links are kept no
longer than the links live.

"Who sent it" is the request's principal (``key_id``: a digest of the API key, or the client's
address when no keys are configured).
Stored answers live behind :class:`~app.idempotency_state.IdempotencyStore` (in this process,
bounded in entries and bytes, oldest evicted first; or Redis, shared by replicas).

Several replicas: a running request holds a *lease* on its scoped key
(:class:`~app.idempotency_state.Leases`; in Redis, a key with the fingerprint and a random token,
renewed every third of :data:`LEASE_SECONDS` while the work runs). A duplicate reaching another
replica finds the lease and polls for the stored answer instead of running a second upstream job (a
lease with another fingerprint is the same 409). When the lease ends without a stored answer (a 5xx,
or a replica that died: its lease is not renewed and expires), the waiting duplicate takes the lease
and runs afresh, as a retry would. Waiting is bounded by the request deadline plus one lease; past
it, 503 ``idempotency_key_in_progress`` (retryable). Within one process, duplicates share one task
(and its answer, even one that is not stored).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson
from fastapi import Request
from fastapi.responses import Response
from pydantic import JsonValue

from app.context import RequestContext
from app.forms import ParsedForm
from app.handlers import ChunksResponse, error_response
from app.idempotency_state import IdempotencyStore, Leases, LocalLeases, StoredResponse
from core.errors import ConflictError, GatewayError, InvalidRequestError, ServiceUnavailableError
from core.held_bytes import ByteChunks

log = logging.getLogger("pixelgate")

LEASE_SECONDS = 10.0
"""How long a lease outlives its last renewal: how long a duplicate waits for a replica that died."""
POLL_FIRST_SECONDS = 0.05
POLL_MAX_SECONDS = 0.5

HEADER = "idempotency-key"
MAX_KEY_LENGTH = 255
_NOT_STORED = frozenset({408, 409, 429})
# Framing and per-request headers are the new response's own; every other header (retry-after,
# x-should-retry, x-pixelgate-warnings...) belongs to the answer and is sent again with it.
_DROPPED_HEADERS = frozenset({"content-length", "connection", "transfer-encoding", "date", "server", "x-request-id"})


@dataclass(frozen=True)
class _Outcome:
    response: StoredResponse
    ran_here: bool  # False: another replica's (or an earlier) answer, a replay even for the first waiter


@dataclass
class _Running:
    fingerprint: str
    task: asyncio.Task[_Outcome]


Work = Callable[[], Awaitable[Response]]
Material = Callable[[], bytes]
"""What the request asks for, computed only when it carries an Idempotency-Key (hashing every upload
on every request would cost milliseconds per MiB for nothing)."""
Release = Callable[[], None]
"""Drops what a request parsed for its work (the images of an edit), when it will not run it."""


def form_material(form: ParsedForm) -> bytes:
    """What a multipart edit asks for: its fields, then a digest per image part and the mask."""
    digests = [_digest(pieces) for _, pieces in form.images]
    mask = _digest(form.mask[1]) if form.mask else None
    return orjson.dumps({"fields": form.fields, "images": digests, "mask": mask}, option=orjson.OPT_SORT_KEYS)


def _digest(pieces: ByteChunks) -> str:
    digest = hashlib.sha256()
    for piece in pieces:
        digest.update(piece)
    return digest.hexdigest()


def json_material(body: dict[str, JsonValue]) -> bytes:
    """What a JSON (or urlencoded) request asks for: its object with sorted keys."""
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def _retrieve(task: asyncio.Task[_Outcome]) -> None:
    """Mark a failure as seen: when every waiter has left, nobody else reads it."""
    if not task.cancelled():
        task.exception()


class Idempotency:
    """Runs image requests at most once per (sender, ``Idempotency-Key``); see the module docstring."""

    def __init__(
        self,
        store: IdempotencyStore,
        *,
        ttl_seconds: float,
        link_ttl_seconds: float,
        leases: Leases | None = None,
        wait_seconds: float = 300.0 + LEASE_SECONDS,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        """``wait_seconds`` bounds a duplicate's wait for another replica (the request deadline plus a lease)."""
        self._store = store
        self._leases: Leases = leases or LocalLeases()
        self._ttl = ttl_seconds
        self._link_ttl = link_ttl_seconds
        self._wait = wait_seconds
        self._lease = lease_seconds
        self._running: dict[str, _Running] = {}

    async def serve(
        self, request: Request, context: RequestContext, material: Material, work: Work, release: Release
    ) -> Response:
        """``work()``'s answer, or the stored/shared answer of an earlier request with the same key.

        ``release`` drops what the request parsed for ``work`` (its images): called when a duplicate
        starts waiting for another request's answer, as its ``work`` will not run. Only for requests
        with a principal (the image routes require one)."""
        key = request.headers.get(HEADER)
        if key is None:
            return await work()
        if not key or len(key) > MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
            raise InvalidRequestError(
                f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters",
                param=HEADER,
                code="invalid_idempotency_key",
            )
        if context.principal is None:
            raise RuntimeError("idempotency needs an authenticated request")
        scoped = context.principal.key_id + "\n" + key
        # Off the event loop: the material hashes every uploaded image (up to hundreds of MiB).
        fingerprint = self._fingerprint(request, await asyncio.to_thread(material))
        stored = await self._store.get(scoped)
        if stored is not None:
            self._check(stored.fingerprint, fingerprint)
            return stored.render(replayed=True)
        running = self._running.get(scoped)
        first = running is None
        if running is None:
            task = asyncio.create_task(self._settle(scoped, fingerprint, work, context))
            task.add_done_callback(_retrieve)
            if context.limits is not None:
                context.limits.hold_until(task)
            running = self._running[scoped] = _Running(fingerprint, task)
        self._check(running.fingerprint, fingerprint)
        # Waiting does not tie the work to this connection: a client that leaves stops waiting only.
        # A duplicate holds no admission slot while it waits: the first request needs one to finish.
        # Nor its share of the intake budget: it sends nothing, and a client's retries of slow jobs
        # (the SDKs resend with the same key when a proxy cut the first try) must not stall uploads.
        if not first:
            # Nor its parsed body: a duplicate of an edit would otherwise hold its images for the
            # whole of the first request's job, uncounted once its intake share is back.
            release()
            context.inputs_sent()
        async with contextlib.nullcontext() if first else context.without_slot():
            await asyncio.wait({running.task})
        if running.task.cancelled():
            raise ServiceUnavailableError(
                "the gateway is shutting down; retry the request", headers={"retry-after": "1"}
            )
        outcome = running.task.result()
        return outcome.response.render(replayed=not (first and outcome.ran_here))

    async def aclose(self) -> None:
        """Cancel work still running for requests whose clients have gone (shutdown)."""
        tasks = [running.task for running in self._running.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _settle(self, scoped: str, fingerprint: str, work: Work, context: RequestContext) -> _Outcome:
        """This process's one task for a scoped key: lead (hold the lease, run ``work``) or follow the
        replica that holds it, and lead after all if that replica ends without an answer to keep."""
        try:
            deadline = time.monotonic() + self._wait
            while True:
                claim = await self._leases.claim(scoped, fingerprint, self._lease)
                if claim.token is not None:
                    return await self._lead(scoped, fingerprint, work, claim.token)
                self._check(claim.holder or fingerprint, fingerprint)
                # Waiting on another replica: no admission slot nor intake budget held meanwhile.
                context.inputs_sent()
                async with context.without_slot():
                    stored = await self._follow(scoped, fingerprint, deadline)
                if stored is not None:
                    self._check(stored.fingerprint, fingerprint)
                    return _Outcome(stored, ran_here=False)
        finally:
            self._running.pop(scoped, None)

    async def _follow(self, scoped: str, fingerprint: str, deadline: float) -> StoredResponse | None:
        """The stored answer once the lease holder keeps one; None when the lease ends without one."""
        interval = POLL_FIRST_SECONDS
        while True:
            stored = await self._store.get(scoped)
            if stored is not None:
                return stored
            holder = await self._leases.holder(scoped)
            if holder is None:
                # The holder stores its answer before it releases: look once more, it may have just done both.
                return await self._store.get(scoped)
            self._check(holder, fingerprint)
            if time.monotonic() >= deadline:
                raise ServiceUnavailableError(
                    "a request with this Idempotency-Key is still running on another replica; retry shortly",
                    code="idempotency_key_in_progress",
                    headers={"retry-after": "1"},
                )
            await asyncio.sleep(interval)
            interval = min(interval * 2, POLL_MAX_SECONDS)

    async def _lead(self, scoped: str, fingerprint: str, work: Work, token: str) -> _Outcome:
        try:
            stored = await self._store.get(scoped)  # answered between the first look and the claim
            if stored is not None:
                self._check(stored.fingerprint, fingerprint)
                return _Outcome(stored, ran_here=False)
            renewing = asyncio.create_task(self._keep(scoped, token))
            try:
                try:
                    response = await work()
                except GatewayError as exc:
                    response = error_response(exc)
            finally:
                renewing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewing
            stored = self._snapshot(fingerprint, response)
            if stored.status_code < 500 and stored.status_code not in _NOT_STORED:
                try:
                    await self._store.put(scoped, stored)
                except GatewayError as exc:
                    # The work is done (and paid for): its answer goes out; only a later replay is lost.
                    log.warning("idempotency: could not keep the answer for a key: %s", exc.message)
            return _Outcome(stored, ran_here=True)
        finally:
            # After the answer is stored: a duplicate that sees the lease gone finds the answer.
            await self._leases.release(scoped, token)

    async def _keep(self, scoped: str, token: str) -> None:
        """Renew the lease while the work runs; a lost lease is logged (another replica may run it too)."""
        while True:
            await asyncio.sleep(self._lease / 3)
            try:
                kept = await self._leases.renew(scoped, token, self._lease)
            except GatewayError as exc:
                log.warning("idempotency: could not renew a lease: %s", exc.message)
                continue
            if not kept:
                log.warning("idempotency: a lease expired while its request ran; a duplicate may run again")
                return

    def _snapshot(self, fingerprint: str, response: Response) -> StoredResponse:
        body = b"".join(response.chunks) if isinstance(response, ChunksResponse) else bytes(response.body)
        ttl = self._ttl
        if b'"url":"' in body:  # hosted links: a replay must not hand out expired links
            ttl = min(ttl, self._link_ttl)
        headers = tuple((name, value) for name, value in response.headers.items() if name not in _DROPPED_HEADERS)
        return StoredResponse(fingerprint, response.status_code, headers, body, time.time() + ttl)

    @staticmethod
    def _fingerprint(request: Request, material: bytes) -> str:
        digest = hashlib.sha256()
        query = sorted(request.query_params.multi_items())
        strict = request.headers.get("x-pixelgate-strict", "")
        digest.update(orjson.dumps([request.method, request.url.path, query, strict]))
        digest.update(material)
        return digest.hexdigest()

    @staticmethod
    def _check(first: str, this: str) -> None:
        if first != this:
            raise ConflictError(
                "This Idempotency-Key was already used with a different request; use a new key for a new request.",
                param=HEADER,
                code="idempotency_key_reused",
            )
