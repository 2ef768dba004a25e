"""The Redis backend: one set of limits shared by every gateway host pointed at the same Redis.

A whole check (every bucket and slot a request touches) is one Lua script, so it is
atomic on the server and costs one round trip. The script reads the clock with Redis
`TIME`, not the caller's, so hosts whose clocks disagree still share one timeline.
It is sent by SHA (`EVALSHA`) and loaded again when the server answers `NOSCRIPT`
(after a restart or `SCRIPT FLUSH`).

Nothing lives forever: a bucket key expires once it would have refilled (a missing
bucket is a full one, so the expiry is exact), and a slot set expires with its last
member. Slots are sorted sets scored by each member's expiry rather than INCR/DECR
counters: a gateway that crashes holding slots leaks them only until each member's own
expiry (a busy counter's TTL would be renewed for ever), and a release that arrives
twice cannot drive a count below zero.

Errors (connection refused, timeout, a script error) are raised as `BackendError`; the
limiter decides whether that fails closed or open. The client does not retry by
itself: a check whose reply was lost may have been applied, so running it again could
take twice.

Keys of all scopes go to one Redis node; Redis Cluster would need the keys of one check
to share a hash slot, which this layout does not arrange.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from guardian.errors import describe
from guardian.ratelimit.bucket import BackendError, BucketCheck, Check, SlotCheck
from guardian.ratelimit.policy import DEFAULT_REDIS_PREFIX, DEFAULT_REDIS_TIMEOUT

# KEYS: the bucket keys, then the slot keys. ARGV[1]: how many buckets; then (rate, burst)
# per bucket; then (limit, member, ttl) per slot. Returns {1} when everything was taken,
# otherwise {0, index, wait, index, wait, ...} for each failing check (1-based index; wait
# in seconds as a string, "0" for slots). All-or-nothing: a refusal writes nothing but the
# removal of expired slot members. Mirrors guardian/ratelimit/bucket.py and memory.py.
CHECK_SCRIPT = """
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local buckets = tonumber(ARGV[1])
local tokens, failed = {}, {0}
local a = 2
for i = 1, buckets do
  local rate, burst = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  a = a + 2
  local state = redis.call('HMGET', KEYS[i], 'tokens', 'stamp')
  local have = burst
  if state[1] and state[2] then
    have = math.min(burst, tonumber(state[1]) + math.max(0, now - tonumber(state[2])) * rate)
  end
  tokens[i] = have
  if have < 1 then
    failed[#failed + 1] = i
    failed[#failed + 1] = string.format('%.6f', (1 - have) / rate)
  end
end
local slots_from = a
for j = buckets + 1, #KEYS do
  local limit, member = tonumber(ARGV[a]), ARGV[a + 1]
  a = a + 3
  if not redis.call('ZSCORE', KEYS[j], member) then
    redis.call('ZREMRANGEBYSCORE', KEYS[j], '-inf', string.format('%.6f', now))
    if redis.call('ZCARD', KEYS[j]) >= limit then
      failed[#failed + 1] = j
      failed[#failed + 1] = '0'
    end
  end
end
if #failed > 1 then return failed end
a = 2
for i = 1, buckets do
  local rate, burst = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  a = a + 2
  local left = tokens[i] - 1
  redis.call('HSET', KEYS[i], 'tokens', string.format('%.17g', left), 'stamp', string.format('%.6f', now))
  redis.call('PEXPIRE', KEYS[i], math.min(math.ceil((burst - left) / rate * 1000) + 1000, 2592000000))
end
a = slots_from
for j = buckets + 1, #KEYS do
  local member, ttl = ARGV[a + 1], tonumber(ARGV[a + 2])
  a = a + 3
  redis.call('ZADD', KEYS[j], string.format('%.6f', now + ttl), member)
  redis.call('PEXPIRE', KEYS[j], math.ceil(ttl * 1000) + 1000)
end
return {1}
"""

CHECK_SHA = hashlib.sha1(CHECK_SCRIPT.encode()).hexdigest()


class RedisBackend:
    """Token buckets and slot sets in Redis; see the module docstring."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_REDIS_PREFIX,
        timeout: float = DEFAULT_REDIS_TIMEOUT,
    ) -> None:
        self.prefix = prefix
        # No retries: a check whose reply was lost may already have taken its tokens.
        self._client: Redis = Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )

    async def check(self, checks: Sequence[Check]) -> list[tuple[int, float]]:
        """As `MemoryBackend.check`, atomically on the Redis server, in one round trip."""
        buckets = [c for c in checks if isinstance(c, BucketCheck)]
        slots = [c for c in checks if isinstance(c, SlotCheck)]
        order: list[Check] = [*buckets, *slots]  # the script wants buckets first; map its indexes back
        keys = [self.prefix + c.key for c in order]
        args: list[str | int | float] = [len(buckets)]
        for bucket in buckets:
            args += [repr(bucket.limit.rate), repr(bucket.limit.burst)]
        for slot in slots:
            args += [slot.limit, slot.member, repr(slot.ttl)]
        reply = await self._run(keys, args)
        if reply[0] == 1:
            return []
        positions = {id(check): index for index, check in enumerate(checks)}
        return [
            (positions[id(order[int(reply[i]) - 1])], float(reply[i + 1]))
            for i in range(1, len(reply), 2)
        ]

    async def release(self, key: str, member: str) -> None:
        """Free a slot (releasing one that is not held is harmless)."""
        try:
            await self._client.zrem(self.prefix + key, member)
        except (RedisError, OSError) as exc:
            raise BackendError(describe(exc)) from exc

    async def held(self, key: str) -> int:
        """Live members of a slot set, by the server's clock (for tests and diagnostics)."""
        try:
            seconds, micros = await self._client.time()
            now = seconds + micros / 1e6
            count: int = await self._client.zcount(self.prefix + key, f"({now:.6f}", "+inf")
        except (RedisError, OSError) as exc:
            raise BackendError(describe(exc)) from exc
        return count

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _run(self, keys: list[str], args: list[str | int | float]) -> list[Any]:
        client = self._client
        try:
            try:
                reply = await client.evalsha(CHECK_SHA, len(keys), *keys, *args)
            except NoScriptError:
                await client.script_load(CHECK_SCRIPT)
                reply = await client.evalsha(CHECK_SHA, len(keys), *keys, *args)
        except (RedisError, OSError) as exc:
            raise BackendError(describe(exc)) from exc
        if not isinstance(reply, list) or not reply:
            raise BackendError(f"unexpected reply from the rate-limit script: {reply!r}")
        return reply
