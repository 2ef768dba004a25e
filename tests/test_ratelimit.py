"""Rate limits and quotas: bucket arithmetic, the memory backend, the limiter, and Redis.

Time in the arithmetic and memory tests is an injected clock advanced by hand, so every
expected number is exact and nothing depends on how fast the machine is. The Redis tests
run a real `redis-server` (started here on a free loopback port, nothing persisted) and
read its clock; they fail, not skip, when `redis-server` is missing. Sharing is proven
across OS processes: two real gateway processes spend one tool budget, and a killed
process's session slot blocks another until the slot's own expiry frees it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import redis as redis_sync
from mcp import StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp_types import JSONRPCMessage, JSONRPCRequest, jsonrpc_message_adapter

from guardian import errors
from guardian.decision import Action, Decision, Finding
from guardian.errors import ConfigError
from guardian.events import Direction, Event, SessionInfo
from guardian.inspectors import ToolAccessInspector
from guardian.pipeline import Pipeline
from guardian.ratelimit import MemoryBackend, Rate, RateLimitInspector, RateLimitPolicy, ToolRate
from guardian.ratelimit.bucket import Bucket, BucketCheck, SlotCheck, refill, refusal, wait_for
from guardian.ratelimit.redis import RedisBackend
from tests.support.gateway import demo_server_stdio_argv, gateway_env
from tests.support.peers import REPO_ROOT, free_port, open_client, text_of

pytestmark = pytest.mark.anyio

GUARD = 30.0
"""Upper bound on any wait in these tests, so a regression fails instead of hanging."""


class Clock:
    """A clock that moves only when told to."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# --- messages -------------------------------------------------------------------------------------


def parse(envelope: dict[str, Any]) -> JSONRPCMessage:
    return jsonrpc_message_adapter.validate_json(json.dumps(envelope), by_name=False)


def request(method: str = "tools/call", id: int = 1, **params: Any) -> JSONRPCRequest:
    message = parse({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
    assert isinstance(message, JSONRPCRequest)
    return message


def call(tool: str = "echo", id: int = 1) -> JSONRPCRequest:
    return request("tools/call", id, name=tool, arguments={})


def session(identity: str | None = "alice", tenant: str | None = None, sid: str = "s1",
            upstream: str = "up") -> SessionInfo:
    return SessionInfo(session_id=sid, transport="test", upstream=upstream, identity=identity, tenant=tenant)


def client_event(info: SessionInfo, message: JSONRPCMessage) -> Event:
    return Event(info, Direction.CLIENT_TO_SERVER, message)


def answer(info: SessionInfo, to: JSONRPCRequest) -> Event:
    result = parse({"jsonrpc": "2.0", "id": to.id, "result": {"content": []}})
    return Event(info, Direction.SERVER_TO_CLIENT, result, request=to)


def limiter(**policy: Any) -> tuple[Pipeline, RateLimitInspector, Clock]:
    """A pipeline holding only a memory-backed limiter with `policy` (everything else off), and its clock."""
    fields: dict[str, Any] = {"per_identity": None, "max_sessions_per_identity": None,
                              "max_in_flight_per_identity": None, **policy}
    clock = Clock()
    inspector = RateLimitInspector(RateLimitPolicy(**fields), MemoryBackend(clock=clock))
    pipeline = Pipeline()
    pipeline.add(inspector)
    return pipeline, inspector, clock


def wire_error(decision: Decision, request_id: int = 1) -> dict[str, Any]:
    """The error a client would receive for this decision, as JSON."""
    dumped: dict[str, Any] = decision.block_error(request_id).model_dump(by_alias=True, exclude_none=True)
    error: dict[str, Any] = dumped["error"]
    return error


def guardian_data(decision: Decision) -> dict[str, Any]:
    data: dict[str, Any] = wire_error(decision)["data"]["guardian"]
    return data


# --- bucket arithmetic ----------------------------------------------------------------------------


def test_refill_adds_rate_per_second_up_to_burst() -> None:
    limit = Rate(rate=4.0, burst=10.0)
    assert refill(None, limit, 5.0) == 10.0  # a bucket never seen is full
    assert refill(Bucket(tokens=0.0, stamp=100.0), limit, 100.25) == 1.0
    assert refill(Bucket(tokens=2.5, stamp=100.0), limit, 101.0) == 6.5
    assert refill(Bucket(tokens=9.0, stamp=100.0), limit, 200.0) == 10.0  # capped at burst
    assert refill(Bucket(tokens=3.0, stamp=100.0), limit, 90.0) == 3.0  # a clock going back adds nothing
    assert limit.full_after == 2.5


def test_wait_for_is_the_time_to_one_token() -> None:
    limit = Rate(rate=4.0, burst=10.0)
    assert wait_for(1.0, limit) == 0.0
    assert wait_for(0.0, limit) == 0.25
    assert wait_for(0.5, limit) == 0.125
    assert wait_for(-1.0, limit) == 0.5


def test_refusal_reports_the_longest_wait() -> None:
    checks: list[BucketCheck | SlotCheck] = [
        BucketCheck("a", Rate(1.0, 1.0), "per_identity"),
        SlotCheck("b", 1, "m", 10.0, "max_in_flight_per_identity", retry_after=1.5),
        BucketCheck("c", Rate(1.0, 1.0), "per_tool"),
    ]
    assert refusal(checks, []) is None
    first = refusal(checks, [(0, 0.5), (1, 0.0)])
    assert first is not None and (first.scope, first.retry_after) == ("max_in_flight_per_identity", 1.5)
    second = refusal(checks, [(0, 0.5), (1, 0.0), (2, 3.0)])
    assert second is not None and (second.scope, second.retry_after) == ("per_tool", 3.0)


# --- memory backend -------------------------------------------------------------------------------


def test_memory_bucket_spends_the_burst_then_refills_at_the_rate() -> None:
    clock = Clock()
    backend = MemoryBackend(clock=clock)
    check = [BucketCheck("k", Rate(rate=2.0, burst=3.0), "per_identity")]
    assert [backend.check(check) for _ in range(3)] == [[], [], []]
    assert backend.check(check) == [(0, 0.5)]
    clock.advance(0.25)
    assert backend.check(check) == [(0, 0.25)]  # a refusal takes nothing, so the wait only shrinks
    clock.advance(0.25)
    assert backend.check(check) == []
    assert backend.check(check) == [(0, 0.5)]
    clock.advance(10.0)
    assert backend.tokens("k", burst=3.0, rate=2.0) == 3.0


def test_memory_check_is_all_or_nothing() -> None:
    backend = MemoryBackend(clock=Clock())
    drained = BucketCheck("drained", Rate(1.0, 1.0), "per_tool")
    fresh = BucketCheck("fresh", Rate(1.0, 5.0), "per_identity")
    assert backend.check([drained]) == []
    assert backend.check([fresh, drained]) == [(1, 1.0)]
    assert backend.tokens("fresh", burst=5.0, rate=1.0) == 5.0  # not spent by the refused request


def test_memory_slots_hold_refresh_release_and_expire() -> None:
    clock = Clock()
    backend = MemoryBackend(clock=clock)

    def slot(member: str) -> list[BucketCheck | SlotCheck]:
        return [SlotCheck("set", 2, member, ttl=10.0, scope="max_in_flight_per_identity", retry_after=1.0)]

    assert backend.check(slot("a")) == []
    assert backend.check(slot("b")) == []
    assert backend.check(slot("c")) == [(0, 0.0)]
    assert backend.check(slot("a")) == []  # already held: refreshed, not counted twice
    assert backend.held("set") == 2
    backend.release("set", "a")
    backend.release("set", "a")  # twice is harmless
    assert backend.check(slot("c")) == []
    clock.advance(5.0)
    assert backend.check(slot("c")) == []  # refreshed: c now lives until +15, b until +10
    clock.advance(5.0)
    assert backend.held("set") == 1  # b expired, never released (a crashed holder)
    assert backend.check(slot("d")) == []
    assert backend.check(slot("e")) == [(0, 0.0)]


def test_memory_keeps_at_most_max_keys_buckets_and_evicts_the_least_recent() -> None:
    backend = MemoryBackend(max_keys=3, clock=Clock())
    limit = Rate(rate=0.001, burst=1.0)
    for name in ("k0", "k1", "k2", "k3", "k4"):
        assert backend.check([BucketCheck(name, limit, "per_tool")]) == []
    assert len(backend) == 3
    assert backend.check([BucketCheck("k4", limit, "per_tool")]) != []  # recent: still drained
    assert backend.check([BucketCheck("k0", limit, "per_tool")]) == []  # evicted: back full


# --- the limiter in a pipeline (memory backend) ---------------------------------------------------


async def test_each_identity_has_its_own_bucket_and_a_refusal_is_rate_limited() -> None:
    pipeline, inspector, clock = limiter(per_identity=Rate(rate=1.0, burst=2.0))
    alice, bob = session("alice"), session("bob", sid="s2")
    for _ in range(2):
        assert (await pipeline.run(client_event(alice, call()))).action is Action.ALLOW
    refused = await pipeline.run(client_event(alice, call()))
    assert refused.action is Action.BLOCK
    error = wire_error(refused)
    assert error["code"] == errors.RATE_LIMITED == -32015
    assert "per_identity" in error["message"]
    data = error["data"]["guardian"]
    assert data["retry_after"] == 1.0
    assert data["limit"] == "per_identity"
    assert data["decision"] == "block" and data["request_id"] == refused.event_id
    assert [f.kind for f in refused.findings] == ["rate_limited"]
    assert (await pipeline.run(client_event(bob, call()))).action is Action.ALLOW
    clock.advance(0.999)
    assert guardian_data(await pipeline.run(client_event(alice, call())))["retry_after"] == 0.001
    clock.advance(0.001)
    assert (await pipeline.run(client_event(alice, call()))).action is Action.ALLOW  # waited as told
    assert not _is_coroutine(inspector.request)  # memory: runs inline, before any async inspector


def _is_coroutine(hook: object) -> bool:
    import inspect

    return inspect.iscoroutinefunction(hook)


async def test_sessions_without_identity_share_the_anonymous_bucket() -> None:
    pipeline, _, _ = limiter(per_identity=Rate(rate=1.0, burst=2.0))
    one, two = session(None, sid="a"), session(None, sid="b")
    assert (await pipeline.run(client_event(one, call()))).action is Action.ALLOW
    assert (await pipeline.run(client_event(two, call()))).action is Action.ALLOW
    assert (await pipeline.run(client_event(two, call()))).action is Action.BLOCK
    # An authenticated identity named "anonymous" is not the unauthenticated bucket.
    assert (await pipeline.run(client_event(session("anonymous", sid="c"), call()))).action is Action.ALLOW


async def test_per_tool_globs_first_match_wins_and_each_tool_has_its_own_bucket() -> None:
    rules = (
        ToolRate("send_*", Rate(rate=0.5, burst=1.0)),
        ToolRate("search", Rate(rate=1.0, burst=1.0), per="global"),
        ToolRate("*", Rate(rate=100.0, burst=100.0)),
    )
    pipeline, _, _ = limiter(per_tool=rules)
    alice, bob = session("alice"), session("bob", sid="s2")

    async def verdict(who: SessionInfo, tool: str) -> Action:
        return (await pipeline.run(client_event(who, call(tool)))).action

    assert await verdict(alice, "send_email") is Action.ALLOW
    refused = await pipeline.run(client_event(alice, call("send_email")))
    assert guardian_data(refused)["limit"] == "per_tool"
    assert guardian_data(refused)["retry_after"] == 2.0
    assert await verdict(alice, "send_sms") is Action.ALLOW  # same rule, its own bucket
    assert await verdict(bob, "send_email") is Action.ALLOW  # per identity by default
    assert await verdict(alice, "search") is Action.ALLOW
    assert await verdict(bob, "search") is Action.BLOCK  # per: global is shared by everyone
    assert all([await verdict(alice, "echo") is Action.ALLOW for _ in range(20)])  # "*" is generous
    # Other methods never reach the per-tool buckets.
    assert (await pipeline.run(client_event(alice, request("tools/list")))).action is Action.ALLOW


async def test_tenant_and_upstream_buckets() -> None:
    pipeline, _, _ = limiter(per_tenant=Rate(rate=1.0, burst=2.0))
    a1, b1, c2 = session("a", "t1", "s1"), session("b", "t1", "s2"), session("c", "t2", "s3")
    assert (await pipeline.run(client_event(a1, call()))).action is Action.ALLOW
    assert (await pipeline.run(client_event(b1, call()))).action is Action.ALLOW
    assert guardian_data(await pipeline.run(client_event(a1, call())))["limit"] == "per_tenant"
    assert (await pipeline.run(client_event(c2, call()))).action is Action.ALLOW
    for _ in range(5):  # no tenant: the per-tenant limit does not apply
        assert (await pipeline.run(client_event(session("d", None, "s4"), call()))).action is Action.ALLOW

    pipeline, _, _ = limiter(per_upstream=Rate(rate=1.0, burst=1.0))
    assert (await pipeline.run(client_event(session("a", upstream="x"), call()))).action is Action.ALLOW
    assert guardian_data(await pipeline.run(client_event(session("b", upstream="x"), call())))["limit"] == \
        "per_upstream"
    assert (await pipeline.run(client_event(session("a", upstream="y"), call()))).action is Action.ALLOW


async def test_exempt_methods_and_server_requests_are_not_limited() -> None:
    pipeline, _, _ = limiter(per_identity=Rate(rate=1.0, burst=1.0))
    alice = session("alice")
    for _ in range(5):
        assert (await pipeline.run(client_event(alice, request("ping")))).action is Action.ALLOW
    sampling = request("sampling/createMessage", messages=[], maxTokens=5)
    for _ in range(5):
        assert (await pipeline.run(Event(alice, Direction.SERVER_TO_CLIENT, sampling))).action is Action.ALLOW
    assert (await pipeline.run(client_event(alice, call()))).action is Action.ALLOW
    assert (await pipeline.run(client_event(alice, call()))).action is Action.BLOCK


async def test_in_flight_slots_free_on_answer_cancellation_and_session_end() -> None:
    pipeline, inspector, _ = limiter(max_in_flight_per_identity=2)
    alice = session("alice")
    first, second, third = call(id=1), call(id=2), call(id=3)
    assert (await pipeline.run(client_event(alice, first))).action is Action.ALLOW
    assert (await pipeline.run(client_event(alice, second))).action is Action.ALLOW
    refused = await pipeline.run(client_event(alice, third))
    assert guardian_data(refused)["limit"] == "max_in_flight_per_identity"
    assert guardian_data(refused)["retry_after"] == 1.0
    # Another session of the same identity shares the count.
    assert (await pipeline.run(client_event(session("alice", sid="s2"), call(id=9)))).action is Action.BLOCK
    assert (await pipeline.run(answer(alice, first))).action is Action.ALLOW
    assert (await pipeline.run(client_event(alice, third))).action is Action.ALLOW
    cancel = parse({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 2}})
    await pipeline.run(client_event(alice, cancel))
    assert (await pipeline.run(client_event(alice, call(id=4)))).action is Action.ALLOW
    assert (await pipeline.run(client_event(alice, call(id=5)))).action is Action.BLOCK
    await inspector.close_session(alice)
    assert (await pipeline.run(client_event(alice, call(id=6)))).action is Action.ALLOW
    # Without an identity the relay's per-session bound applies, not this one.
    for n in range(5):
        assert (await pipeline.run(client_event(session(None, sid="anon"), call(id=n)))).action is Action.ALLOW


async def test_session_limits_per_identity_and_tenant() -> None:
    _, inspector, _ = limiter(max_sessions_per_identity=1, max_sessions_per_tenant=2)
    a1, a2 = session("alice", "t", "s1"), session("alice", "t", "s2")
    assert await inspector.open_session(a1) is None
    refused = await inspector.open_session(a2)
    assert refused is not None and refused.kind == "rate_limited"
    decision = Decision(action=Action.BLOCK, findings=[refused], event_id="e1")
    assert wire_error(decision)["code"] == errors.RATE_LIMITED
    assert guardian_data(decision)["limit"] == "max_sessions_per_identity"
    assert await inspector.open_session(session("bob", "t", "s3")) is None
    tenant_full = await inspector.open_session(session("carol", "t", "s4"))
    assert tenant_full is not None and (tenant_full.error_data or {})["limit"] == "max_sessions_per_tenant"
    await inspector.close_session(a1)
    assert await inspector.open_session(a2) is None


async def test_a_policy_block_alongside_a_rate_limit_keeps_the_generic_code() -> None:
    pipeline = Pipeline()
    pipeline.add(ToolAccessInspector(deny=["drop_*"]))
    pipeline.add(RateLimitInspector(RateLimitPolicy(per_identity=Rate(1.0, 1.0)), MemoryBackend(clock=Clock())))
    alice = session("alice")
    assert (await pipeline.run(client_event(alice, call("echo")))).action is Action.ALLOW
    both = await pipeline.run(client_event(alice, call("drop_table")))
    assert {f.kind for f in both.findings} == {"tool_denied", "rate_limited"}
    assert wire_error(both)["code"] == errors.BLOCKED  # retrying will not help: say so
    assert wire_error(both)["message"] == "blocked by gateway policy"
    assert wire_error(await pipeline.run(client_event(alice, call("echo"))))["code"] == errors.RATE_LIMITED


async def test_a_request_blocked_elsewhere_gives_its_slot_back_when_abandoned() -> None:
    pipeline = Pipeline()
    pipeline.add(ToolAccessInspector(deny=["drop_*"]))
    inspector = RateLimitInspector(RateLimitPolicy(per_identity=None, max_sessions_per_identity=None,
                                                   max_in_flight_per_identity=1), MemoryBackend(clock=Clock()))
    pipeline.add(inspector)
    alice = session("alice")
    denied = client_event(alice, call("drop_table", id=1))
    assert [f.kind for f in (await pipeline.run(denied)).findings] == ["tool_denied"]
    # The sync limiter ran beside tool_access and holds a slot for a request no answer will end.
    assert guardian_data(await pipeline.run(client_event(alice, call(id=2))))["limit"] == "max_in_flight_per_identity"
    await inspector.abandoned(denied)
    assert (await pipeline.run(client_event(alice, call(id=2)))).action is Action.ALLOW


async def test_warn_action_records_without_refusing() -> None:
    pipeline, _, _ = limiter(per_identity=Rate(rate=1.0, burst=1.0), action=Action.WARN)
    alice = session("alice")
    assert (await pipeline.run(client_event(alice, call()))).action is Action.ALLOW
    over = await pipeline.run(client_event(alice, call()))
    assert over.action is Action.WARN and [f.kind for f in over.findings] == ["rate_limited"]


def test_block_error_without_own_codes_is_unchanged() -> None:
    finding = Finding("x", "denied", "tool is not allowed")
    error = wire_error(Decision(action=Action.BLOCK, findings=[finding], event_id="e"))
    assert error == {"code": errors.BLOCKED, "message": "blocked by gateway policy",
                     "data": {"guardian": {"decision": "block", "reasons": ["x: tool is not allowed"],
                                           "request_id": "e"}}}


# --- options --------------------------------------------------------------------------------------


def test_from_options_defaults_are_the_standard_profile() -> None:
    inspector = RateLimitInspector.from_options({})
    assert isinstance(inspector.backend, MemoryBackend)
    assert inspector.policy == RateLimitPolicy()
    assert inspector.policy.per_identity == Rate(20.0, 100.0)
    assert inspector.policy.max_in_flight_per_identity == 64
    assert inspector.fail_closed is True


def test_from_options_reads_every_key() -> None:
    inspector = RateLimitInspector.from_options({
        "enabled": True, "monitor": False, "timeout": 2,
        "per_identity": {"rate": 5, "burst": 10},
        "per_tenant": {"rate": 50},
        "per_upstream": None,
        "per_tool": {"send_*": {"rate": 0.1, "burst": 2, "per": "tenant"}, "*": {"rate": 10}},
        "max_sessions_per_identity": 4, "max_sessions_per_tenant": 40, "max_in_flight_per_identity": None,
        "in_flight_ttl": 60, "session_ttl": 600, "exempt_methods": ["ping", "notifications/*"],
        "action": "warn", "max_keys": 1000, "fail_closed": False,
    })
    policy = inspector.policy
    assert policy.per_identity == Rate(5.0, 10.0)
    assert policy.per_tenant == Rate(50.0, 50.0)  # burst defaults to one second's worth
    assert policy.per_upstream is None
    assert policy.per_tool == (ToolRate("send_*", Rate(0.1, 2.0), "tenant"), ToolRate("*", Rate(10.0, 10.0)))
    assert (policy.max_sessions_per_identity, policy.max_sessions_per_tenant) == (4, 40)
    assert policy.max_in_flight_per_identity is None
    assert inspector.response is None  # nothing in flight to release
    assert (policy.in_flight_ttl, policy.session_ttl, policy.action) == (60.0, 600.0, Action.WARN)
    assert isinstance(inspector.backend, MemoryBackend) and inspector.backend.max_keys == 1000
    assert inspector.fail_closed is False


def test_from_options_reports_every_problem_with_its_path() -> None:
    with pytest.raises(ConfigError) as caught:
        RateLimitInspector.from_options({
            "backend": "memcached",
            "per_identity": {"rate": 0, "burst": 3},
            "per_tenant": {"rate": 1, "burst": 0.5},
            "per_upstream": 7,
            "per_tool": {"x": {"rate": 1, "per": "planet"}, "y": {"rate": 1, "brust": 2}},
            "max_sessions_per_identity": 0,
            "max_in_flight_per_identity": True,
            "session_ttl": -1,
            "exempt_methods": "ping",
            "action": "redact",
            "fail_closed": "yes",
            "colour": "blue",
        })
    problems = caught.value.problems
    prefix = "security.inspectors.rate_limit."
    assert all(p.startswith(prefix) for p in problems)
    named = {p[len(prefix):].split(":")[0] for p in problems}
    assert named == {
        "backend", "per_identity.rate", "per_tenant.burst", "per_upstream", "per_tool.x.per", "per_tool.y",
        "max_sessions_per_identity", "max_in_flight_per_identity", "session_ttl", "exempt_methods", "action",
        "fail_closed", "colour",
    }


def test_redis_backend_needs_a_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    with pytest.raises(ConfigError, match=r"rate_limit\.redis_url: needed with backend 'redis'"):
        RateLimitInspector.from_options({"backend": "redis"})
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    inspector = RateLimitInspector.from_options({"backend": "redis"})
    assert isinstance(inspector.backend, RedisBackend)
    assert _is_coroutine(inspector.request)


# --- Redis unreachable ----------------------------------------------------------------------------


async def test_unreachable_redis_fails_closed_with_retry_after(caplog: pytest.LogCaptureFixture) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    inspector = RateLimitInspector.from_options({"backend": "redis", "redis_url": url, "redis_timeout": 2})
    pipeline = Pipeline()
    pipeline.add(inspector)
    try:
        with caplog.at_level("ERROR", logger="guardian.ratelimit"):
            first = await pipeline.run(client_event(session("alice"), call()))
            second = await pipeline.run(client_event(session("alice"), call(id=2)))
        assert first.action is second.action is Action.BLOCK
        assert [f.kind for f in first.findings] == ["backend_unavailable"]
        assert wire_error(first)["code"] == errors.RATE_LIMITED
        assert guardian_data(first)["retry_after"] == 1.0 and guardian_data(first)["limit"] == "backend"
        lines = [r.getMessage() for r in caplog.records if r.name == "guardian.ratelimit"]
        assert len(lines) == 1  # one line, not one per request
        assert "rate limit store (redis) failing" in lines[0] and "refused (fail closed)" in lines[0]
        assert await inspector.open_session(session("alice")) is not None
    finally:
        await inspector.aclose()


async def test_unreachable_redis_fails_open_when_configured() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    inspector = RateLimitInspector.from_options({"backend": "redis", "redis_url": url, "fail_closed": False})
    pipeline = Pipeline()
    pipeline.add(inspector)
    try:
        decision = await pipeline.run(client_event(session("alice"), call()))
        assert decision.action is Action.WARN
        assert [f.kind for f in decision.findings] == ["backend_unavailable"]
        assert await inspector.open_session(session("alice")) is None
    finally:
        await inspector.aclose()


# --- a real Redis ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private `redis-server` on a free loopback port: no persistence, gone after the module."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed; the shared rate-limit tests need a real one "
                    "(Debian/Ubuntu: apt-get install -y redis-server)")
    directory = tmp_path_factory.mktemp("redis")
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(directory), "--logfile", str(directory / "redis.log")]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"redis://127.0.0.1:{port}/0"
    admin = redis_sync.Redis.from_url(url)
    deadline = time.monotonic() + GUARD
    try:
        while True:
            try:
                if admin.ping():
                    break
            except redis_sync.ConnectionError:
                pass
            log = directory / "redis.log"
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"redis-server did not start: {log.read_text() if log.exists() else 'no log'}")
            time.sleep(0.05)
        yield url
    finally:
        admin.close()
        process.terminate()
        process.wait(10)


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own, so tests sharing the server never see each other's keys."""
    return f"test:{uuid.uuid4().hex[:8]}:"


def redis_options(url: str, prefix: str, **options: Any) -> dict[str, Any]:
    return {"backend": "redis", "redis_url": url, "redis_prefix": prefix, "per_identity": None,
            "max_sessions_per_identity": None, "max_in_flight_per_identity": None, **options}


async def test_redis_bucket_takes_the_burst_then_refuses_with_a_wait(redis_url: str, prefix: str) -> None:
    backend = RedisBackend(redis_url, prefix=prefix)
    try:
        check = [BucketCheck("k", Rate(rate=0.5, burst=3.0), "per_identity")]
        assert [await backend.check(check) for _ in range(3)] == [[], [], []]
        failed = await backend.check(check)
        assert len(failed) == 1 and failed[0][0] == 0
        assert 0.0 < failed[0][1] <= 2.0  # Redis's clock moved a little: at most 1/rate
    finally:
        await backend.aclose()


async def test_redis_is_all_or_nothing_and_maps_indexes_back(redis_url: str, prefix: str) -> None:
    backend = RedisBackend(redis_url, prefix=prefix)
    try:
        slot = SlotCheck("slots", 1, "m1", 60.0, "max_in_flight_per_identity", 1.0)
        drained = BucketCheck("drained", Rate(0.001, 1.0), "per_tool")
        fresh = BucketCheck("fresh", Rate(0.001, 1.0), "per_identity")
        assert await backend.check([drained]) == []
        # Order given: slot, fresh, drained; the script sees buckets first, the answer must not.
        failed = await backend.check([slot, fresh, drained])
        assert [index for index, _ in failed] == [2]
        assert await backend.held("slots") == 0  # the refused check took no slot ...
        assert await backend.check([fresh]) == []  # ... and no token from the fresh bucket
        assert await backend.check([fresh]) != []
    finally:
        await backend.aclose()


async def test_redis_slots_refresh_release_and_every_key_expires(redis_url: str, prefix: str) -> None:
    backend = RedisBackend(redis_url, prefix=prefix)
    admin = redis_sync.Redis.from_url(redis_url)
    try:
        def slot(member: str) -> list[BucketCheck | SlotCheck]:
            return [SlotCheck("set", 2, member, 60.0, "max_in_flight_per_identity", 1.0),
                    BucketCheck("bucket", Rate(rate=10.0, burst=20.0), "per_identity")]

        assert await backend.check(slot("a")) == []
        assert await backend.check(slot("b")) == []
        assert [i for i, _ in await backend.check(slot("c"))] == [0]
        assert await backend.check(slot("a")) == []  # held: refreshed
        assert await backend.held("set") == 2
        await backend.release("set", "a")
        await backend.release("set", "a")
        assert await backend.check(slot("c")) == []
        keys = [k.decode() if isinstance(k, bytes) else k for k in admin.keys(prefix + "*")]
        assert sorted(keys) == [prefix + "bucket", prefix + "set"]
        bucket_ttl, set_ttl = admin.pttl(prefix + "bucket"), admin.pttl(prefix + "set")
        # A bucket lives until it would be full again (4 tokens spent at 10/s: 0.4 s), plus a second.
        assert 0 < bucket_ttl <= 1400
        assert 59_000 < set_ttl <= 61_000
    finally:
        admin.close()
        await backend.aclose()


async def test_redis_reloads_the_script_after_noscript(redis_url: str, prefix: str) -> None:
    backend = RedisBackend(redis_url, prefix=prefix)
    admin = redis_sync.Redis.from_url(redis_url)
    try:
        check = [BucketCheck("k", Rate(0.001, 2.0), "per_identity")]
        assert await backend.check(check) == []
        admin.script_flush()
        assert await backend.check(check) == []  # NOSCRIPT -> SCRIPT LOAD -> EVALSHA
        assert await backend.check(check) != []  # and the count carried on
    finally:
        admin.close()
        await backend.aclose()


async def test_limiter_over_redis_releases_in_flight_slots(redis_url: str, prefix: str) -> None:
    inspector = RateLimitInspector.from_options(redis_options(redis_url, prefix, max_in_flight_per_identity=1))
    pipeline = Pipeline()
    pipeline.add(inspector)
    alice = session("alice")
    try:
        first = call(id=1)
        assert (await pipeline.run(client_event(alice, first))).action is Action.ALLOW
        refused = await pipeline.run(client_event(alice, call(id=2)))
        assert wire_error(refused)["code"] == errors.RATE_LIMITED
        await pipeline.run(answer(alice, first))
        assert (await pipeline.run(client_event(alice, call(id=2)))).action is Action.ALLOW
    finally:
        await inspector.aclose()


async def test_two_gateway_processes_share_one_limit(redis_url: str, prefix: str, tmp_path: Path) -> None:
    """Two real gateway processes (stdio, each with its own upstream) spend one global tool budget."""
    options = redis_options(redis_url, prefix, per_tool={"echo": {"rate": 0.001, "burst": 5, "per": "global"}})

    config = tmp_path / "guardian.json"
    config.write_text(json.dumps({"security": {"inspectors": {"rate_limit": options}}}))

    def gateway() -> StdioServerParameters:
        # The real CLI (`guardian wrap --config F`), each process with its own upstream and event loop.
        argv = ["-m", "guardian", "wrap", "--config", str(config), "--", *demo_server_stdio_argv()]
        return StdioServerParameters(command=sys.executable, args=argv, cwd=REPO_ROOT, env=gateway_env())

    outcomes: list[tuple[str, int | None, Any]] = []

    async def echo(client: Any, who: str) -> None:
        try:
            result = await client.call_tool("echo", {"text": who})
            assert text_of(result) == who
            outcomes.append((who, None, None))
        except MCPError as exc:
            outcomes.append((who, exc.code, exc.data))

    with anyio.fail_after(GUARD):
        async with open_client(gateway()) as first, open_client(gateway()) as second:
            for _ in range(3):
                await echo(first, "first")
            for _ in range(3):
                await echo(second, "second")
            await echo(first, "first")
            assert await first.call_tool("add", {"a": 1, "b": 2})  # other tools are not limited
    assert [(who, code) for who, code, _ in outcomes] == [
        ("first", None), ("first", None), ("first", None),
        ("second", None), ("second", None), ("second", errors.RATE_LIMITED),
        ("first", errors.RATE_LIMITED),
    ]
    data = outcomes[-1][2]["guardian"]
    assert data["limit"] == "per_tool" and data["retry_after"] > 900  # a token per 1000 s


async def test_a_crashed_holder_blocks_until_its_slot_expires(redis_url: str, prefix: str) -> None:
    """A session slot taken in one process is seen by another; killed unreleased, it expires by itself."""
    ttl = 3.0  # long enough that only the kill, not the clock, can explain the refusal right after it
    options = redis_options(redis_url, prefix, max_sessions_per_identity=1, session_ttl=ttl)
    argv = [sys.executable, "-m", "tests.support.ratelimit_peer", "hold", json.dumps(options), "alice"]
    holder = subprocess.Popen(argv, cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    inspector = RateLimitInspector.from_options(options)
    other = session("alice", sid="mine")
    try:
        assert holder.stdout is not None
        line = await anyio.to_thread.run_sync(holder.stdout.readline)
        assert line.strip() == "held"
        refused = await inspector.open_session(other)
        assert refused is not None and (refused.error_data or {})["limit"] == "max_sessions_per_identity"
        holder.kill()  # no close_session: the slot stays until its own expiry
        holder.wait(10)
        assert await inspector.open_session(other) is not None
        with anyio.fail_after(GUARD):
            while await inspector.open_session(other) is not None:
                await anyio.sleep(0.1)
        assert await inspector.open_session(session("alice", sid="third")) is not None  # now ours is held
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)
        await inspector.aclose()
