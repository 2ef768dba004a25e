"""Rate-limit benchmark: what one check costs, in memory and against a real Redis.

A benchmark, not a test: it prints a table (median, p95, p99 in microseconds per
operation) and always exits 0. Run it with::

    .venv/bin/python bench/bench_ratelimit.py [--calls N] [--redis-url URL]

Rows, for each backend:

- `check`: the backend alone: one identity bucket, one per-tool bucket and one in-flight
  slot, taken together (for Redis, one EVALSHA round trip).
- `request hook`: the inspector's request hook on a `tools/call` event with the two
  buckets (identity, tool) and no in-flight limit: planning the keys, the check.
- `request + answer`: both buckets and an in-flight slot: the request hook, then the
  response hook that releases the slot (for Redis, a second round trip: ZREM).
- `refused`: the request hook when the identity's bucket is empty (the finding built).

Redis: `--redis-url`, else `$REDIS_URL`, else a private `redis-server` started on a free
loopback port (no persistence) when one is installed; without any, the Redis rows are
skipped with a line saying so. The numbers include the client library and the loopback
round trip, i.e. what a gateway host with Redis on the same machine pays; a network hop
adds its own round-trip time to each Redis row.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))  # `python bench/bench_ratelimit.py` puts bench/ first, not the root

import anyio  # noqa: E402
import redis as redis_sync  # noqa: E402
from mcp_types import JSONRPCRequest, JSONRPCResponse  # noqa: E402

from bench.relay_latency import Stats  # noqa: E402
from guardian.events import Direction, Event, SessionInfo  # noqa: E402
from guardian.inspector import Hook  # noqa: E402
from guardian.ratelimit import MemoryBackend, Rate, RateLimitInspector, RateLimitPolicy  # noqa: E402
from guardian.ratelimit.bucket import BucketCheck, Check, SlotCheck  # noqa: E402
from guardian.ratelimit.policy import ToolRate  # noqa: E402
from guardian.ratelimit.redis import RedisBackend  # noqa: E402
from tests.support.peers import free_port  # noqa: E402

IDENTITIES = 1000
"""Distinct identities cycled through, so tables hold a realistic number of keys."""
GENEROUS = Rate(rate=1e6, burst=1e9)
"""Never refuses: the allowed path is what almost every request takes."""


def policy(in_flight: bool) -> RateLimitPolicy:
    return RateLimitPolicy(
        per_identity=GENEROUS,
        per_tool=(ToolRate("*", GENEROUS),),
        max_sessions_per_identity=None,
        max_in_flight_per_identity=1_000_000 if in_flight else None,
    )


def sessions() -> list[SessionInfo]:
    return [SessionInfo(f"s{i}", "bench", "demo", identity=f"user-{i}@example.com") for i in range(IDENTITIES)]


def checks_for(index: int) -> list[Check]:
    return [
        BucketCheck(f"id:{index}", GENEROUS, "per_identity"),
        BucketCheck(f"tool:{index}", GENEROUS, "per_tool"),
        SlotCheck(f"inflight:{index}", 1_000_000, f"m{index}", 150.0, "max_in_flight_per_identity", 1.0),
    ]


def call_events(who: list[SessionInfo], count: int) -> list[tuple[Event, Event]]:
    """(request, its answer) pairs, built before timing: the relay builds them anyway."""
    pairs = []
    for n in range(count):
        info = who[n % len(who)]
        request = JSONRPCRequest(jsonrpc="2.0", id=n, method="tools/call", params={"name": "echo", "arguments": {}})
        answer = JSONRPCResponse(jsonrpc="2.0", id=n, result={"content": []})
        pairs.append((Event(info, Direction.CLIENT_TO_SERVER, request),
                      Event(info, Direction.SERVER_TO_CLIENT, answer, request=request)))
    return pairs


def summary(name: str, samples: list[int]) -> str:
    s = Stats.of(samples)
    return f"| {name:<28} | {s.median * 1000:>9.2f} | {s.p95 * 1000:>9.2f} | {s.p99 * 1000:>9.2f} | {s.n:>7} |"


def timed_sync(operation: Callable[[int], Any], count: int, warmup: int) -> list[int]:
    for n in range(warmup):
        operation(n)
    clock = time.perf_counter_ns
    samples = []
    for n in range(count):
        start = clock()
        operation(n)
        samples.append(clock() - start)
    return samples


async def timed_async(operation: Callable[[int], Awaitable[Any]], count: int, warmup: int) -> list[int]:
    for n in range(warmup):
        await operation(n)
    clock = time.perf_counter_ns
    samples = []
    for n in range(count):
        start = clock()
        await operation(n)
        samples.append(clock() - start)
    return samples


async def invoke(hook: Hook, event: Event) -> None:
    """Call a hook the way the pipeline does: await it when it is a coroutine."""
    result = hook(event)
    if inspect.isawaitable(result):
        await result


def bench_memory(calls: int) -> list[str]:
    backend = MemoryBackend()
    plans = [checks_for(i) for i in range(IDENTITIES)]
    rows = [summary("memory: check", timed_sync(lambda n: backend.check(plans[n % IDENTITIES]), calls, 2000))]
    pairs = call_events(sessions(), calls)
    buckets_only = RateLimitInspector(policy(in_flight=False), MemoryBackend()).request
    assert buckets_only is not None
    rows.append(summary("memory: request hook", timed_sync(lambda n: buckets_only(pairs[n][0]), calls, 2000)))
    inspector = RateLimitInspector(policy(in_flight=True), MemoryBackend())
    request, response = inspector.request, inspector.response
    assert request is not None and response is not None

    def both(n: int) -> None:
        request(pairs[n][0])
        response(pairs[n][1])

    rows.append(summary("memory: request + answer", timed_sync(both, calls, 2000)))
    refusing = RateLimitInspector(RateLimitPolicy(per_identity=Rate(1e-6, 1.0), max_sessions_per_identity=None,
                                                  max_in_flight_per_identity=None), MemoryBackend())
    hook = refusing.request
    assert hook is not None
    one = pairs[:1] * 2
    hook(one[0][0])  # drains the bucket: every timed call below is refused
    rows.append(summary("memory: refused", timed_sync(lambda n: hook(one[0][0]), calls, 100)))
    return rows


async def bench_redis(url: str, calls: int) -> list[str]:
    prefix = f"bench:{os.getpid()}:"
    backend = RedisBackend(url, prefix=prefix)
    plans = [checks_for(i) for i in range(IDENTITIES)]
    try:
        rows = [summary("redis: check", await timed_async(lambda n: backend.check(plans[n % IDENTITIES]), calls,
                                                          500))]
    finally:
        await backend.aclose()
    pairs = call_events(sessions(), calls)
    plain = RateLimitInspector(policy(in_flight=False), RedisBackend(url, prefix=prefix))
    buckets_only = plain.request
    assert buckets_only is not None
    try:
        rows.append(summary("redis: request hook", await timed_async(lambda n: invoke(buckets_only, pairs[n][0]),
                                                                     calls, 500)))
    finally:
        await plain.aclose()
    inspector = RateLimitInspector(policy(in_flight=True), RedisBackend(url, prefix=prefix))
    request, response = inspector.request, inspector.response
    assert request is not None and response is not None
    try:
        async def both(n: int) -> None:
            await invoke(request, pairs[n][0])
            await invoke(response, pairs[n][1])

        rows.append(summary("redis: request + answer", await timed_async(both, calls, 500)))
    finally:
        await inspector.aclose()
    refusing = RateLimitInspector(RateLimitPolicy(per_identity=Rate(1e-6, 1.0), max_sessions_per_identity=None,
                                                  max_in_flight_per_identity=None), RedisBackend(url, prefix=prefix))
    hook = refusing.request
    assert hook is not None
    try:
        await invoke(hook, pairs[0][0])
        rows.append(summary("redis: refused", await timed_async(lambda n: invoke(hook, pairs[0][0]), calls, 100)))
    finally:
        await refusing.aclose()
    admin = redis_sync.Redis.from_url(url)
    for key in admin.scan_iter(f"{prefix}*"):
        admin.delete(key)
    admin.close()
    return rows


@contextlib.contextmanager
def private_redis() -> Iterator[str | None]:
    """A throwaway `redis-server` on a free loopback port, or None when none is installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    with tempfile.TemporaryDirectory() as directory:
        port = free_port()
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", directory],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        url = f"redis://127.0.0.1:{port}/0"
        try:
            admin = redis_sync.Redis.from_url(url)
            deadline = time.monotonic() + 15
            while True:
                with contextlib.suppress(redis_sync.ConnectionError):
                    if admin.ping():
                        break
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start")
                time.sleep(0.05)
            admin.close()
            yield url
        finally:
            process.terminate()
            process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000, help="timed operations per row (default 20000)")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"), help="default: $REDIS_URL or a private "
                        "redis-server")
    args = parser.parse_args()
    print(f"# rate limit: cost per operation (python {platform.python_version()}, {os.cpu_count()} CPUs)")
    print()
    print("| row                          | median µs |    p95 µs |    p99 µs |   calls |")
    print("|---|---:|---:|---:|---:|")
    for row in bench_memory(args.calls):
        print(row)
    redis_calls = max(1, args.calls // 4)
    if args.redis_url:
        rows = anyio.run(bench_redis, args.redis_url, redis_calls)
    else:
        with private_redis() as url:
            if url is None:
                print("\nredis-server is not installed and REDIS_URL is not set: Redis rows skipped")
                return
            rows = anyio.run(bench_redis, url, redis_calls)
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
