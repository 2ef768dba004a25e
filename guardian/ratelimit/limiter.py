"""Rate limits and quotas: the inspector that applies them to client requests.

Why an inspector: a refused request is a decision like any other (audited, counted,
answered in place with a JSON-RPC error), so it goes through the pipeline. Its finding
(kind `rate_limited`) carries its own error code, so the client gets `RATE_LIMITED`
(-32015) with `error.data.guardian.retry_after` (seconds, a float) instead of the generic
`BLOCKED`, and knows to wait rather than give up.

What is limited, for every client→server request (`exempt_methods` aside):

- token buckets (`rate` per second, `burst` saved up) per identity, per tenant, per
  upstream, and per tool for `tools/call` (globs, first match wins; each tool its own
  bucket, per identity, tenant or globally). One check takes from all of them or from
  none, so a refusal by one limit does not spend the others.
- concurrency: requests in flight per identity (a slot held from the request until its
  answer, its cancellation, the end of its session, or `in_flight_ttl`), and open
  sessions per identity and per tenant (held from `open_session` to `close_session`,
  or until `session_ttl` passes without a request).

Without an identity (no authentication configured) every session counts as the one
identity `anonymous` for the token buckets (the 2026 era has no sessions to tell clients
apart by, and a new session is free to make); the concurrency limits need a real
identity and skip anonymous traffic, which `server.max_sessions` and
`server.max_concurrent_requests` already bound per gateway. Without a tenant, the
per-tenant limits do not apply.

Backends: `memory` (one process; the hooks are then synchronous, so refused requests
never reach the expensive async inspectors) or `redis` (several gateway hosts share the
limits; async hooks). When Redis cannot be reached the check fails closed (refused with
`RATE_LIMITED`, `retry_after` 1 s) or open (allowed, recorded as a warning) per
`fail_closed`, with one log line when it starts failing, one every 30 s while it
does, and one when it recovers.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import math
import os
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Self

from mcp_types import RequestId

from guardian import errors
from guardian.decision import Action, Finding
from guardian.events import Direction, Event, SessionInfo
from guardian.inspector import Hook
from guardian.inspectors.tool_access import compile_globs
from guardian.ratelimit.bucket import BackendError, BucketCheck, Check, SharedBackend, SlotCheck, refusal
from guardian.ratelimit.memory import DEFAULT_MAX_KEYS, MemoryBackend
from guardian.ratelimit.policy import DEFAULT_REDIS_PREFIX, DEFAULT_REDIS_TIMEOUT, Options, RateLimitPolicy, ToolRate

logger = logging.getLogger("guardian.ratelimit")

REDIS_URL_ENV = "REDIS_URL"
IN_FLIGHT_RETRY = 1.0
"""Seconds a client refused for too many requests in flight is told to wait: one finishes soon."""
SESSION_RETRY = 10.0
"""Seconds a client refused a session is told to wait: sessions end at their own pace."""
UNAVAILABLE_RETRY = 1.0
"""Seconds a client refused because the shared store is unreachable (fail closed) is told to wait."""
_LOG_EVERY = 30.0
_TRACKED_SESSIONS = 10_000
"""Sessions with requests in flight tracked before a sweep of expired entries."""


@dataclass(slots=True)
class _Failures:
    """Backend failure bookkeeping, for log lines that neither flood nor go quiet."""

    since: float | None = None
    count: int = 0
    last_log: float = field(default=-math.inf)


class RateLimitInspector:
    """Applies a `RateLimitPolicy` with a memory or Redis backend.

    Options (`from_options`, config block `security.inspectors.rate_limit`; defaults are
    the `standard` profile's):

    - `backend`: `memory` (default) or `redis`.
    - `redis_url`: e.g. `redis://host:6379/0`; default: the `REDIS_URL` environment
      variable. Required with `backend: redis`.
    - `redis_prefix`: key prefix in Redis (default `guardian:rl:`).
    - `redis_timeout`: seconds to connect or answer before Redis counts as failed (0.5).
    - `per_identity`: `{rate, burst}` (tokens per second; most saved up, default = one
      second's worth, at least 1) or null for none. Default `{rate: 20, burst: 100}`.
    - `per_tenant`, `per_upstream`: the same, default null (no limit).
    - `per_tool`: `{glob: {rate, burst, per}}`, `per` one of `identity` (default),
      `tenant`, `global`; first matching glob wins; default `{}`.
    - `max_sessions_per_identity` (32), `max_sessions_per_tenant` (null),
      `max_in_flight_per_identity` (64): positive integers or null for none.
    - `in_flight_ttl` (150 s), `session_ttl` (1800 s): how long an unreleased slot lives.
    - `exempt_methods`: globs of request methods never limited (default `["ping"]`).
    - `action`: `block` (default) or `warn` (record only).
    - `max_keys`: buckets kept by the memory backend (100000).
    - `fail_closed`: when Redis fails, refuse (true, default) or allow (false). This is
      the gateway's generic per-inspector key, which the gateway strips from the options
      it passes; it must hand the resolved value back in (see the integration notes).

    Slots need the gateway's help to be released on time: `open_session` /
    `close_session` around each relayed session, and `abandoned(event)` for a request
    that another inspector blocked (its answer will never come). Without them a slot
    is freed by its own expiry (`session_ttl`, `in_flight_ttl`).
    """

    name = "rate_limit"
    request: Hook | None
    response: Hook | None
    notification: Hook | None

    def __init__(
        self,
        policy: RateLimitPolicy | None = None,
        backend: MemoryBackend | SharedBackend | None = None,
        *,
        fail_closed: bool = True,
    ) -> None:
        self.policy = policy = policy or RateLimitPolicy()
        self.backend = backend = backend if backend is not None else MemoryBackend()
        self.fail_closed = fail_closed
        self._instance = uuid.uuid4().hex[:12]
        """Tells this gateway's session and request ids apart from other hosts' in shared slot sets."""
        self._exempt = compile_globs(policy.exempt_methods)
        self._tools = [(re.compile(fnmatch.translate(t.pattern)), t) for t in policy.per_tool]
        self._held: dict[str, dict[RequestId, tuple[str, str, float]]] = {}
        """session id -> request id -> (slot key, member, local expiry) of requests in flight."""
        self._sessions: dict[str, tuple[SlotCheck, ...]] = {}
        """Open sessions -> their session slots (refreshed by each of their requests)."""
        self._failures = _Failures()
        # Hooks are chosen once: the pipeline runs sync hooks inline (memory is plain dict
        # work) and awaits coroutine hooks (Redis is I/O). No release hooks without slots.
        tracks = policy.max_in_flight_per_identity is not None
        if isinstance(backend, MemoryBackend):
            self.request = self._request_memory
            self.response = self._response_memory if tracks else None
            self.notification = self._notification_memory if tracks else None
        else:
            self.request = self._request_redis
            self.response = self._response_redis if tracks else None
            self.notification = self._notification_redis if tracks else None

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Self:
        """Build from a config block; unknown keys or bad values raise `ConfigError`."""
        parsed = Options(options)
        policy = parsed.policy()
        backend_name = parsed.choice("backend", ("memory", "redis"), "memory")
        prefix = parsed.text("redis_prefix", DEFAULT_REDIS_PREFIX)
        timeout = parsed.positive("redis_timeout", DEFAULT_REDIS_TIMEOUT)
        max_keys = parsed.count("max_keys", DEFAULT_MAX_KEYS)
        fail_closed = parsed.flag("fail_closed", True)
        url = parsed.text("redis_url", os.environ.get(REDIS_URL_ENV, ""))
        if backend_name == "redis" and not url:
            parsed.problem("redis_url", f"needed with backend 'redis' (or set {REDIS_URL_ENV})")
        parsed.finish()
        backend: MemoryBackend | SharedBackend
        if backend_name == "redis":
            from guardian.ratelimit.redis import RedisBackend  # only then: the client costs ~80 ms to import

            backend = RedisBackend(url, prefix=prefix, timeout=timeout)
        else:
            backend = MemoryBackend(max_keys=max_keys if max_keys is not None else DEFAULT_MAX_KEYS)
        return cls(policy, backend, fail_closed=fail_closed)

    # --- sessions (called by the gateway around each relayed session) --------------------------

    async def open_session(self, session: SessionInfo) -> Finding | None:
        """Take the session's slots; a refusal comes back as the finding to answer it with.

        Answer the client with `Decision(Action.BLOCK, [finding], event_id=...).block_error(id)`
        and end the session. Always pair a None with `close_session`.
        """
        checks = self._session_checks(session)
        if not checks:
            return None
        try:
            failed = await self._check(checks)
        except BackendError as exc:
            found = self._unavailable(exc)
            return found[0] if found[0].action is Action.BLOCK else None
        if failed:
            return self._refused(checks, failed)
        self._sessions[session.session_id] = tuple(checks)
        return None

    async def close_session(self, session: SessionInfo) -> None:
        """Free the session's slot and those of its requests still in flight."""
        slots = [(c.key, c.member) for c in self._sessions.pop(session.session_id, ())]
        slots += [(key, member) for key, member, _ in self._held.pop(session.session_id, {}).values()]
        for key, member in slots:
            await self._release(key, member)

    async def abandoned(self, event: Event) -> None:
        """A client request this limiter let through will not be forwarded (blocked by another
        inspector, or refused by the relay): free its in-flight slot now, not at its expiry."""
        if event.direction is Direction.CLIENT_TO_SERVER and event.id is not None:
            slot = self._forget(event.session.session_id, event.id)
            if slot is not None:
                await self._release(*slot)

    async def aclose(self) -> None:
        """Close the Redis connections (nothing to do for the memory backend)."""
        if not isinstance(self.backend, MemoryBackend):
            await self.backend.aclose()

    # --- hooks -----------------------------------------------------------------------------------

    def _request_memory(self, event: Event) -> list[Finding]:
        checks = self._plan(event)
        if not checks:
            return []
        assert isinstance(self.backend, MemoryBackend)
        return self._settle(event, checks, self.backend.check(checks))

    async def _request_redis(self, event: Event) -> list[Finding]:
        checks = self._plan(event)
        if not checks:
            return []
        try:
            failed = await self._check(checks)
        except BackendError as exc:
            return self._unavailable(exc)
        return self._settle(event, checks, failed)

    def _response_memory(self, event: Event) -> list[Finding]:
        slot = self._answered(event)
        if slot is not None:
            assert isinstance(self.backend, MemoryBackend)
            self.backend.release(*slot)
        return []

    async def _response_redis(self, event: Event) -> list[Finding]:
        slot = self._answered(event)
        if slot is not None:
            await self._release(*slot)
        return []

    def _notification_memory(self, event: Event) -> list[Finding]:
        slot = self._cancelled(event)
        if slot is not None:
            assert isinstance(self.backend, MemoryBackend)
            self.backend.release(*slot)
        return []

    async def _notification_redis(self, event: Event) -> list[Finding]:
        slot = self._cancelled(event)
        if slot is not None:
            await self._release(*slot)
        return []

    # --- planning --------------------------------------------------------------------------------

    def _plan(self, event: Event) -> list[Check]:
        """The buckets and slots one request must pass; empty when nothing limits it."""
        method = event.method
        if event.direction is not Direction.CLIENT_TO_SERVER or method is None:
            return []
        if self._exempt is not None and self._exempt.fullmatch(method):
            return []
        policy = self.policy
        session = event.session
        who = _key("id", session.identity) if session.identity is not None else _ANONYMOUS
        checks: list[Check] = []
        if policy.per_identity is not None:
            checks.append(BucketCheck(who, policy.per_identity, "per_identity"))
        if policy.per_tenant is not None and session.tenant is not None:
            checks.append(BucketCheck(_key("tenant", session.tenant), policy.per_tenant, "per_tenant"))
        if policy.per_upstream is not None:
            checks.append(BucketCheck(_key("up", session.upstream), policy.per_upstream, "per_upstream"))
        target = event.target if self._tools and method == "tools/call" else None
        if target is not None:
            tool = self._tool_check(session, target, who)
            if tool is not None:
                checks.append(tool)
        checks.extend(self._sessions.get(session.session_id, ()))
        limit = policy.max_in_flight_per_identity
        if limit is not None and session.identity is not None and event.id is not None:
            member = f"{self._instance}:{session.session_id}:{event.id!r}"
            checks.append(SlotCheck(_key("inflight", session.identity), limit, member, policy.in_flight_ttl,
                                    "max_in_flight_per_identity", IN_FLIGHT_RETRY))
        return checks

    def _tool_check(self, session: SessionInfo, tool: str, who: str) -> BucketCheck | None:
        rule = self._tool_rule(tool) if len(tool) <= 256 else self._match_tool(tool)
        if rule is None:
            return None
        if rule.per == "identity":
            scope = who
        elif rule.per == "tenant":
            if session.tenant is None:
                return None
            scope = session.tenant
        else:
            scope = ""
        # Tool names come from the client, so they are hashed, never kept whole (see `_key`).
        return BucketCheck(_digest("tool", session.upstream, tool, rule.per, scope), rule.rate, "per_tool")

    @lru_cache(maxsize=4096)  # noqa: B019 - one inspector per gateway; names are short (checked above)
    def _tool_rule(self, tool: str) -> ToolRate | None:
        return self._match_tool(tool)

    def _match_tool(self, tool: str) -> ToolRate | None:
        return next((rule for pattern, rule in self._tools if pattern.fullmatch(tool)), None)

    def _session_checks(self, session: SessionInfo) -> list[SlotCheck]:
        policy = self.policy
        member = f"{self._instance}:{session.session_id}"
        checks: list[SlotCheck] = []
        if policy.max_sessions_per_identity is not None and session.identity is not None:
            checks.append(SlotCheck(_key("sessions:id", session.identity), policy.max_sessions_per_identity, member,
                                    policy.session_ttl, "max_sessions_per_identity", SESSION_RETRY))
        if policy.max_sessions_per_tenant is not None and session.tenant is not None:
            checks.append(SlotCheck(_key("sessions:tenant", session.tenant), policy.max_sessions_per_tenant, member,
                                    policy.session_ttl, "max_sessions_per_tenant", SESSION_RETRY))
        return checks

    # --- outcomes --------------------------------------------------------------------------------

    def _settle(self, event: Event, checks: Sequence[Check], failed: Sequence[tuple[int, float]]) -> list[Finding]:
        if failed:
            return [self._refused(checks, failed)]
        for check in checks:
            if isinstance(check, SlotCheck) and check.scope == "max_in_flight_per_identity":
                held = self._held.setdefault(event.session.session_id, {})
                held[event.id] = (check.key, check.member, time.monotonic() + check.ttl)
                if len(self._held) > _TRACKED_SESSIONS:
                    self._sweep()
        return []

    def _refused(self, checks: Sequence[Check], failed: Sequence[tuple[int, float]]) -> Finding:
        found = refusal(checks, failed)
        assert found is not None
        retry_after = math.ceil(found.retry_after * 1000) / 1000
        return Finding(
            self.name,
            "rate_limited",
            f"rate limit exceeded ({found.scope}); retry after {retry_after:g}s",
            action=self.policy.action,
            error_code=errors.RATE_LIMITED,
            error_data={"retry_after": retry_after, "limit": found.scope},
        )

    def _answered(self, event: Event) -> tuple[str, str] | None:
        """The slot of the client request this server answer (result or error) completes."""
        if event.direction is not Direction.SERVER_TO_CLIENT or event.request is None:
            return None
        return self._forget(event.session.session_id, event.request.id)

    def _cancelled(self, event: Event) -> tuple[str, str] | None:
        """The slot of a request the client cancelled: no answer is owed for it any more."""
        if event.direction is not Direction.CLIENT_TO_SERVER or event.method != "notifications/cancelled":
            return None
        request_id = event.params.get("requestId")
        return self._forget(event.session.session_id, request_id) if isinstance(request_id, int | str) else None

    def _forget(self, session_id: str, request_id: RequestId) -> tuple[str, str] | None:
        held = self._held.get(session_id)
        entry = held.pop(request_id, None) if held else None
        if held is not None and not held:
            del self._held[session_id]
        return (entry[0], entry[1]) if entry is not None else None

    def _sweep(self) -> None:
        """Drop local records of slots the backend has expired (answers that never came)."""
        now = time.monotonic()
        for session_id in list(self._held):
            held = self._held[session_id]
            for request_id in [r for r, (_, _, expiry) in held.items() if expiry <= now]:
                del held[request_id]
            if not held:
                del self._held[session_id]

    # --- backend access --------------------------------------------------------------------------

    async def _check(self, checks: Sequence[Check]) -> list[tuple[int, float]]:
        backend = self.backend
        if isinstance(backend, MemoryBackend):
            return backend.check(checks)
        failed = await backend.check(checks)
        self._recovered()
        return failed

    async def _release(self, key: str, member: str) -> None:
        backend = self.backend
        if isinstance(backend, MemoryBackend):
            backend.release(key, member)
            return
        try:
            await backend.release(key, member)
        except BackendError as exc:
            # Never holds up an answer: the slot frees itself at its expiry.
            self._log_failure(exc, "a slot was not released (it expires by itself)")
        else:
            self._recovered()

    def _unavailable(self, exc: BackendError) -> list[Finding]:
        closed = self.fail_closed
        self._log_failure(exc, "requests are refused (fail closed)" if closed else "requests pass unchecked")
        if not closed:
            return [Finding(self.name, "backend_unavailable", "rate limit store unavailable; not enforced",
                            action=Action.WARN)]
        return [Finding(
            self.name,
            "backend_unavailable",
            f"rate limit store unavailable; retry after {UNAVAILABLE_RETRY:g}s",
            error_code=errors.RATE_LIMITED,
            error_data={"retry_after": UNAVAILABLE_RETRY, "limit": "backend"},
        )]

    def _log_failure(self, exc: BackendError, consequence: str) -> None:
        failures = self._failures
        now = time.monotonic()
        failures.count += 1
        if failures.since is None:
            failures.since = now
        if now - failures.last_log >= _LOG_EVERY:
            failures.last_log = now
            logger.error("rate limit store (redis) failing for %.0fs (%d errors): %s; %s",
                         now - failures.since, failures.count, exc, consequence)

    def _recovered(self) -> None:
        failures = self._failures
        if failures.since is not None:
            logger.warning("rate limit store (redis) answering again after %.0fs (%d errors)",
                           time.monotonic() - failures.since, failures.count)
            self._failures = _Failures()


# --- keys ---------------------------------------------------------------------------------------


def _digest(scope: str, *parts: str) -> str:
    """`scope:hash`: identities, tenants and tool names stay out of Redis and bounded in size."""
    joined = "\x1f".join(parts).encode("utf-8", "surrogatepass")
    return f"{scope}:{hashlib.blake2b(joined, digest_size=12).hexdigest()}"


@lru_cache(maxsize=8192)
def _key(scope: str, value: str) -> str:
    """`_digest` for values that repeat on every request of a session (identity, tenant, upstream)."""
    return _digest(scope, value)


_ANONYMOUS = "id:anonymous"
"""The identity bucket of unauthenticated traffic (no hash has this form, so no identity collides)."""
