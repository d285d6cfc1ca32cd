"""Limits and idempotency state in Redis, for several pixelgate processes behind one address.

Chosen by ``PIXELGATE_STATE_URL=redis://host:port/db``; every key starts with
``PIXELGATE_STATE_PREFIX``. What is shared then: the token buckets, the in-flight counts, the
stored Idempotency-Key answers and the leases of running Idempotency-Key requests (a duplicate that
reaches another process while the first still runs waits for its answer).

- Buckets: one hash per identity, updated by a Lua script on Redis' own clock (processes' clocks
  do not matter); it expires once it would be full again.
- In-flight counts: one sorted set per identity, a member per request scored by its start; a
  member older than ``slot_max_age_seconds`` (a process that died mid-request) no longer counts.
- Answers: one hash per scoped key (fingerprint, status, headers, body) expiring at the answer's
  expiry. Redis' ``maxmemory`` bounds the total; an answer over ``max_answer_bytes`` is not kept.
- Leases: one string per scoped key, ``<fingerprint> <token>``, set only if absent and expiring
  unless its holder renews it; renewed and deleted only by the holder of the token (Lua scripts).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.idempotency_state import Claim, StoredResponse
from app.ratelimit import BucketState
from core.errors import ServiceUnavailableError

_TAKE = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or capacity
local ts = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / rate * 1000) + 1000)
return {allowed, tostring(tokens)}
"""

_ENTER = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])))
return 1
"""


_CLAIM = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, ARGV[1]}
end
return {0, redis.call('GET', KEYS[1])}
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@contextmanager
def _unavailable_is_503() -> Iterator[None]:
    try:
        yield
    except RedisError as exc:
        raise ServiceUnavailableError(
            "the gateway's shared state store is unavailable; retry shortly",
            code="state_unavailable",
            headers={"retry-after": "1"},
        ) from exc


class RedisLimitStore:
    """:class:`app.ratelimit.LimitStore` in Redis."""

    def __init__(self, redis: Redis, *, prefix: str, slot_max_age_seconds: float) -> None:
        self._redis = redis
        self._prefix = prefix
        self._max_age = slot_max_age_seconds
        self._take = redis.register_script(_TAKE)
        self._enter = redis.register_script(_ENTER)

    async def take(self, identity: str, *, capacity: int, per_second: float) -> BucketState:
        with _unavailable_is_503():
            reply = await self._take(keys=[f"{self._prefix}bucket:{identity}"], args=[capacity, per_second])
        allowed, raw_tokens = cast("list[bytes | int]", reply)
        tokens = float(raw_tokens)
        return BucketState(
            allowed=allowed == 1,
            limit=capacity,
            remaining=int(tokens),
            reset_seconds=(capacity - tokens) / per_second,
            retry_after_seconds=0.0 if allowed == 1 else (1.0 - tokens) / per_second,
        )

    async def enter(self, identity: str, *, limit: int) -> str | None:
        slot = secrets.token_hex(8)
        with _unavailable_is_503():
            entered = await self._enter(keys=[self._inflight_key(identity)], args=[limit, self._max_age, slot])
        return slot if entered == 1 else None

    async def leave(self, identity: str, slot: str) -> None:
        try:
            await self._redis.zrem(self._inflight_key(identity), slot)
        except RedisError:
            return  # the slot stops counting once it is slot_max_age_seconds old

    def _inflight_key(self, identity: str) -> str:
        return f"{self._prefix}inflight:{identity}"


class RedisIdempotencyStore:
    """:class:`app.idempotency_state.IdempotencyStore` in Redis."""

    def __init__(self, redis: Redis, *, prefix: str, max_answer_bytes: int) -> None:
        self._redis = redis
        self._prefix = prefix
        self.max_answer_bytes = max_answer_bytes

    async def get(self, key: str) -> StoredResponse | None:
        with _unavailable_is_503():
            raw = cast("dict[bytes, bytes]", await self._redis.hgetall(self._key(key)))
        if not raw:
            return None
        headers = orjson.loads(raw[b"headers"])
        return StoredResponse(
            fingerprint=raw[b"fingerprint"].decode(),
            status_code=int(raw[b"status"]),
            headers=tuple((str(name), str(value)) for name, value in headers),
            body=raw[b"body"],
            expires_at=float(raw[b"expires_at"]),
        )

    async def put(self, key: str, response: StoredResponse) -> None:
        if response.size > self.max_answer_bytes:
            return
        name = self._key(key)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(name)
            pipe.hset(
                name,
                mapping={
                    "fingerprint": response.fingerprint,
                    "status": response.status_code,
                    "headers": orjson.dumps(response.headers),
                    "body": response.body,
                    "expires_at": repr(response.expires_at),
                },
            )
            pipe.pexpireat(name, int(response.expires_at * 1000))
            with _unavailable_is_503():
                await pipe.execute()

    def _key(self, key: str) -> str:
        return f"{self._prefix}idem:{key}"


class RedisLeases:
    """:class:`app.idempotency_state.Leases` in Redis: which replica runs a scoped key's request."""

    def __init__(self, redis: Redis, *, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._claim = redis.register_script(_CLAIM)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    async def claim(self, key: str, fingerprint: str, ttl_seconds: float) -> Claim:
        value = f"{fingerprint} {secrets.token_hex(8)}"
        with _unavailable_is_503():
            reply = await self._claim(keys=[self._key(key)], args=[value, _ms(ttl_seconds)])
        granted, current = cast("list[int | bytes]", reply)
        if granted == 1:
            return Claim(token=value)
        return Claim(token=None, holder=_fingerprint(current))

    async def renew(self, key: str, token: str, ttl_seconds: float) -> bool:
        with _unavailable_is_503():
            renewed = await self._renew(keys=[self._key(key)], args=[token, _ms(ttl_seconds)])
        return bool(renewed == 1)

    async def release(self, key: str, token: str) -> None:
        try:
            await self._release(keys=[self._key(key)], args=[token])
        except RedisError:
            return  # the lease expires by itself; a duplicate then runs afresh

    async def holder(self, key: str) -> str | None:
        with _unavailable_is_503():
            current = await self._redis.get(self._key(key))
        return None if current is None else _fingerprint(current)

    def _key(self, key: str) -> str:
        return f"{self._prefix}idem-lease:{key}"


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _fingerprint(value: object) -> str:
    text = value.decode() if isinstance(value, bytes) else str(value)
    return text.partition(" ")[0]
