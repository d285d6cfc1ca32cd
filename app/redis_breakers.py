"""The circuit breakers in Redis: one provider's cooling period seen by every replica.

One hash per provider (``<prefix>breaker:<provider>``): ``failures`` (consecutive), ``open_until``
and ``trial_until`` (milliseconds on Redis' own clock, so replicas' clocks do not matter). Each
operation is one Lua script, so two replicas cannot both take the half-open trial. The hash expires
a while after its last change: a provider nobody calls does not stay open forever.

Redis being down must not take routing down: ``admit`` then answers ``go`` and ``record`` forgets the
outcome (logged once per failure), as a gateway without a breaker would behave.
"""

from __future__ import annotations

import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from normalization.metering import BreakerState
from normalization.routing.breaker import Admission, BreakerPolicy

log = logging.getLogger("pixelgate")

_ADMIT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'open_until', 'trial_until')
local open_until = tonumber(state[1])
if not open_until then
  return 'go'
end
if now < open_until or now < (tonumber(state[2]) or 0) then
  return 'skip'
end
redis.call('HSET', KEYS[1], 'trial_until', tostring(now + tonumber(ARGV[1])))
return 'trial'
"""

_RECORD = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
if ARGV[1] == '0' then
  redis.call('DEL', KEYS[1])
  return 'closed'
end
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local was_open = redis.call('HEXISTS', KEYS[1], 'open_until') == 1
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]))
if was_open or failures >= tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'open_until', tostring(now + tonumber(ARGV[3])), 'trial_until', '0', 'failures', '0')
  return 'open'
end
return 'closed'
"""

_STATE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until'))
if not open_until then
  return {'closed', 0}
end
if now < open_until then
  return {'open', open_until - now}
end
return {'half_open', 0}
"""

_ABANDON = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'trial_until', '0')
end
return 1
"""

FORGET_AFTER_MS = 3_600_000
"""A provider's breaker hash outlives its last change by at least its cooling period, and by this."""


class RedisBreakers:
    """:class:`normalization.routing.breaker.BreakerStore` in Redis, shared by replicas."""

    def __init__(self, redis: Redis, *, prefix: str, policy: BreakerPolicy) -> None:
        self.policy = policy
        self._redis = redis
        self._prefix = prefix
        self._admit = redis.register_script(_ADMIT)
        self._record = redis.register_script(_RECORD)
        self._state = redis.register_script(_STATE)
        self._abandon = redis.register_script(_ABANDON)

    async def admit(self, provider: str) -> Admission:
        try:
            answer = await self._admit(keys=[self._key(provider)], args=[_ms(self.policy.trial_seconds)])
        except RedisError as exc:
            log.warning("circuit breaker of %s unavailable (%s): the provider is called", provider, type(exc).__name__)
            return "go"
        return "skip" if _text(answer) == "skip" else "trial" if _text(answer) == "trial" else "go"

    async def record(self, provider: str, *, failed: bool) -> BreakerState:
        policy = self.policy
        keep = max(FORGET_AFTER_MS, _ms(policy.cooldown_seconds) * 2)
        args = ["1" if failed else "0", policy.failures, _ms(policy.cooldown_seconds), keep]
        try:
            answer = await self._record(keys=[self._key(provider)], args=args)
        except RedisError as exc:
            log.warning("circuit breaker of %s unavailable (%s): outcome not counted", provider, type(exc).__name__)
            return "closed"
        return "open" if _text(answer) == "open" else "closed"

    async def state(self, provider: str) -> tuple[BreakerState, float]:
        try:
            name, left_ms = await self._state(keys=[self._key(provider)])
        except RedisError:
            return "closed", 0.0
        state = _text(name)
        if state == "open":
            return "open", int(left_ms) / 1000
        return ("half_open", 0.0) if state == "half_open" else ("closed", 0.0)

    async def abandon(self, provider: str) -> None:
        try:
            await self._abandon(keys=[self._key(provider)])
        except RedisError:
            return None
        return None

    def _key(self, provider: str) -> str:
        return f"{self._prefix}breaker:{provider}"


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
