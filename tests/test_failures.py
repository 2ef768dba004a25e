"""Failure handling, end to end: crashed and missing upstreams, clients that vanish, signals,
timeouts, cancellation, load and overload.

Real processes only: the gateway runs as `python -m guardian wrap|serve` in front of the demo
server (examples/demo_server.py). Raw wire clients (tests/support/wire.py) are used where a
test needs exact control of what is on the wire or when; the SDK `Client` elsewhere. Every
process a test starts carries a unique `GUARDIAN_TEST_MARKER` in its environment (the gateway
passes its environment on to the upstream), which is how "no process was left behind" is
checked: by scanning /proc.
"""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import anyio
import httpx2
import pytest
from mcp import Client, MCPError

from guardian import errors
from tests.support.gateway import GUARDIAN, config_file, demo_server_stdio_argv, gateway_http, wrap_params
from tests.support.peers import DEMO_SERVER, ServerProcess, open_client, text_of
from tests.support.wire import (
    HttpSession,
    SseSession,
    StdioWire,
    cmdline,
    http_session,
    marked_pids,
    new_marker,
    open_stdio_wire,
    wait_until,
)

pytestmark = pytest.mark.anyio

EXIT_TIMEOUT = 20.0
"""Bound on how long a process may take to go away (the SDK's stop sequence is 2 s + 2 s)."""


def slow_call(request_id: Any, seconds: float) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": "slow", "arguments": {"seconds": seconds}},
    }


def cancelled(request_id: Any) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "method": "notifications/cancelled",
        "params": {"requestId": request_id, "reason": "test cancels"},
    }


def demo_pids(marker: str) -> list[int]:
    """The demo server processes started for this test (found by marker, confirmed by argv)."""
    return [pid for pid in marked_pids(marker) if cmdline(pid)[1:2] == [str(DEMO_SERVER)]]


@asynccontextmanager
async def wrapped_wire(
    upstream: list[str] | None = None,
    config: dict[str, Any] | None = None,
) -> AsyncIterator[StdioWire]:
    """Raw stdio client → `guardian wrap [--config] -- upstream` (not initialized)."""
    with config_file(config) as path:
        argv = [*GUARDIAN, "wrap", *(["--config", path] if path else []), "--", *(upstream or demo_server_stdio_argv())]
        async with open_stdio_wire(argv) as wire:
            yield wire


async def wire_slow_stats(wire: StdioWire, request_id: Any) -> dict[str, int]:
    answer = await wire.request(request_id, "tools/call", {"name": "slow_stats", "arguments": {}})
    assert "result" in answer, answer
    stats: dict[str, int] = answer["result"]["structuredContent"]
    return stats


async def wire_wait_stats(wire: StdioWire, key: str, at_least: int, timeout: float = 20.0) -> dict[str, int]:
    """Poll `slow_stats` over the raw wire until `stats[key] >= at_least` (bounded)."""
    stats: dict[str, int] = {}
    with anyio.fail_after(timeout):
        n = 0
        while True:
            n += 1
            stats = await wire_slow_stats(wire, f"stats-{key}-{n}")
            if stats[key] >= at_least:
                return stats
            await anyio.sleep(0.05)  # poll interval of a bounded wait


async def client_slow_stats(client: Client) -> dict[str, int]:
    result = await client.call_tool("slow_stats", {})
    assert result.structured_content is not None, result
    return dict(result.structured_content)


async def client_wait_stats(client: Client, key: str, at_least: int, timeout: float = 20.0) -> dict[str, int]:
    with anyio.fail_after(timeout):
        while True:
            stats = await client_slow_stats(client)
            if stats[key] >= at_least:
                return stats
            await anyio.sleep(0.05)  # poll interval of a bounded wait


async def health(gateway: ServerProcess) -> dict[str, Any]:
    async with httpx2.AsyncClient(timeout=20.0) as http:
        response = await http.get(f"{gateway.base_url}/health")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == "ok", body
    return body


async def wait_sessions(gateway: ServerProcess, count: int, timeout: float = 20.0) -> None:
    """Poll /health until it reports `count` open sessions (bounded)."""
    body: dict[str, Any] = {}
    with anyio.move_on_after(timeout):
        while (body := await health(gateway))["sessions"] != count:
            await anyio.sleep(0.05)  # poll interval of a bounded wait
    assert body.get("sessions") == count, body


# --- the upstream crashes mid-call -----------------------------------------------------------


async def test_upstream_crash_mid_call_over_stdio_is_answered_and_wrap_exits() -> None:
    async with wrapped_wire() as wire:
        await wire.initialize()
        assert len(demo_pids(wire.marker)) == 1
        answer = await wire.request(5, "tools/call", {"name": "crash", "arguments": {}})
        assert answer["error"]["code"] == errors.UPSTREAM_UNAVAILABLE, answer
        assert re.search(r"closed|exited|crash", answer["error"]["message"]), answer
        # The session cannot go on without its upstream: the wrapper ends, reporting failure.
        status = await wire.wait_exit(EXIT_TIMEOUT)
        assert status != 0, wire.stderr_text()
        assert await wait_until(lambda: not marked_pids(wire.marker), EXIT_TIMEOUT), marked_pids(wire.marker)


async def test_upstream_crash_over_http_fails_only_that_session() -> None:
    async with gateway_http(upstream=demo_server_stdio_argv()) as gateway:
        async with open_client(gateway.url) as doomed, open_client(gateway.url) as bystander:
            await wait_sessions(gateway, 2)
            with anyio.fail_after(30), pytest.raises(MCPError) as raised:
                await doomed.call_tool("crash", {})
            assert raised.value.code == errors.UPSTREAM_UNAVAILABLE, raised.value.error
            assert re.search(r"closed|exited|crash", raised.value.message), raised.value.error
            # The crashed session is cleaned up; the other one never noticed.
            await wait_sessions(gateway, 1)
            assert text_of(await bystander.call_tool("echo", {"text": "bystander"})) == "bystander"
            async with open_client(gateway.url) as newcomer:
                assert text_of(await newcomer.call_tool("echo", {"text": "newcomer"})) == "newcomer"
            assert text_of(await bystander.call_tool("echo", {"text": "still here"})) == "still here"
        assert gateway.returncode is None


# --- the upstream cannot be started ------------------------------------------------------------

MISSING = "/nonexistent/guardian-test-cmd"


async def test_missing_upstream_command_over_stdio_answers_and_exits() -> None:
    async with wrapped_wire(upstream=[MISSING, "--flag"]) as wire:
        answer = await wire.request(
            0,
            "initialize",
            {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
        )
        assert answer["error"]["code"] == errors.UPSTREAM_UNAVAILABLE, answer
        message = answer["error"]["message"]
        assert MISSING in message and "cannot start" in message, message
        status = await wire.wait_exit(EXIT_TIMEOUT)
        assert status != 0
        assert MISSING in wire.stderr_text()


@pytest.mark.parametrize("downstream", ["streamable-http", "sse"])
async def test_missing_upstream_command_over_http_answers_and_the_gateway_stays_up(
    downstream: Literal["streamable-http", "sse"],
) -> None:
    """The opening request gets -32012 naming the command; the gateway keeps serving.

    Two attempts: the second proves the first left nothing stuck (no half-open session).
    """
    initialize = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}
    async with gateway_http(upstream=[MISSING]) as gateway:
        for attempt in range(2):
            request = {"jsonrpc": "2.0", "id": attempt, "method": "initialize", "params": initialize}
            async with httpx2.AsyncClient(timeout=40.0) as http:
                if downstream == "streamable-http":
                    reply = await HttpSession(http, gateway.url).post(request)
                    assert reply.status == 200, reply
                    answers = [m for m in reply.messages if "method" not in m]
                else:
                    session = SseSession(http, gateway.base_url)
                    async with http.stream("GET", f"{gateway.base_url}/sse") as stream, anyio.create_task_group() as tg:
                        with anyio.fail_after(20):
                            await tg.start(session.read_events, stream)
                        assert (await session.post(request)).status_code == 202
                        answers = [await session.answer_for(attempt)]
                        tg.cancel_scope.cancel()
            assert len(answers) == 1, f"attempt {attempt}: the opening request got no answer: {answers}"
            answer = answers[0]
            assert answer["id"] == attempt and answer["error"]["code"] == errors.UPSTREAM_UNAVAILABLE, answer
            assert MISSING in answer["error"]["message"] and "cannot start" in answer["error"]["message"]
            await wait_sessions(gateway, 0)
        assert gateway.returncode is None


# --- the client goes away ------------------------------------------------------------------------


async def test_http_client_dropping_a_call_mid_flight_leaves_the_gateway_healthy() -> None:
    async with gateway_http(upstream=demo_server_stdio_argv()) as gateway:
        async with http_session(gateway.url) as session:

            async def stats() -> dict[str, int]:
                reply = await session.post(
                    {
                        "jsonrpc": "2.0",
                        "id": "stats",
                        "method": "tools/call",
                        "params": {"name": "slow_stats", "arguments": {}},
                    }
                )
                structured: dict[str, int] = reply.answer["result"]["structuredContent"]
                return structured

            async def stats_reach(key: str, value: int) -> None:
                with anyio.fail_after(30):
                    while (await stats())[key] < value:
                        await anyio.sleep(0.05)  # poll interval of a bounded wait

            # A second HTTP connection carries the slow call; it is dropped mid-call.
            async with httpx2.AsyncClient(timeout=30.0) as doomed:
                headers = session.headers()
                async with doomed.stream("POST", gateway.url, json=slow_call(77, 2), headers=headers) as response:
                    assert response.status_code == 200
                    await stats_reach("started", 1)
                # leaving both blocks closes the response and the connection; the body was never read

            # Same session, other session, health: all fine, and the late answer harms nothing.
            assert await session.echo(1, "same session") == "same session"
            async with http_session(gateway.url) as other:
                assert await other.echo(1, "other session") == "other session"
            await stats_reach("completed", 1)
            assert await session.echo(2, "after the late answer") == "after the late answer"
            assert (await health(gateway))["sessions"] >= 1
        assert gateway.returncode is None


Ending = Literal["SIGTERM", "client closes stdin"]


@pytest.mark.parametrize("ending", ["SIGTERM", "client closes stdin"])
async def test_no_orphaned_upstream_when_wrap_is_ended_mid_call(ending: Ending) -> None:
    """Ended mid-call (the hardest case for a clean stop): wrap exits and its upstream is gone.

    Checked by scanning /proc for the test's marker, so a child that escaped the process group
    or was re-parented to init is caught too.
    """
    async with wrapped_wire() as wire:
        await wire.initialize()
        await wire.send(slow_call(5, 30))
        await wire_wait_stats(wire, "started", 1)
        upstream = demo_pids(wire.marker)
        assert len(upstream) == 1, upstream
        if ending == "client closes stdin":
            await wire.close_stdin()
        else:
            os.kill(wire.pid, getattr(signal, ending))  # the gateway only, not its process group
        await wire.wait_exit(EXIT_TIMEOUT)
        assert await wait_until(lambda: not marked_pids(wire.marker), EXIT_TIMEOUT), [
            cmdline(pid) for pid in marked_pids(wire.marker)
        ]


# --- timeouts and cancellation -------------------------------------------------------------------


async def test_request_timeout_answers_cancels_upstream_and_the_session_goes_on() -> None:
    # 3 s, not 1: the clock also runs for `initialize` while the upstream process starts (~1 s here).
    config = {"server": {"request_timeout": 3}}
    async with wrapped_wire(config=config) as wire:
        await wire.initialize()
        with anyio.fail_after(25):  # a bound only; the configured timeout is 3 s
            answer = await wire.request(5, "tools/call", {"name": "slow", "arguments": {"seconds": 30}}, timeout=25)
        assert answer["error"]["code"] == errors.UPSTREAM_TIMEOUT, answer
        assert "tools/call" in answer["error"]["message"], answer
        assert await wire.echo(6, "after the timeout") == "after the timeout"
        stats = await wire_wait_stats(wire, "cancelled", 1)
        assert stats["completed"] == 0, stats
        # Exactly one answer for the timed-out id: a late upstream answer must not follow it.
        assert await wire.echo(7, "later") == "later"
        assert [m for m in wire.received if m.get("id") == 5] == [answer]


Downstream = Literal["stdio", "streamable-http", "sse"]


@asynccontextmanager
async def client_through_gateway(
    downstream: Downstream,
    config: dict[str, Any] | None = None,
) -> AsyncIterator[Client]:
    if downstream == "stdio":
        with wrap_params(demo_server_stdio_argv(), config) as params:
            async with open_client(params) as client:
                yield client
        return
    async with gateway_http(upstream=demo_server_stdio_argv(), config=config) as gateway:
        url = gateway.url if downstream == "streamable-http" else f"{gateway.base_url}/sse"
        async with open_client(url) as client:
            yield client


@pytest.mark.parametrize("downstream", ["stdio", "streamable-http"])
async def test_client_cancellation_reaches_the_upstream(downstream: Downstream) -> None:
    async with client_through_gateway(downstream) as client:
        outcome: list[str] = []
        async with anyio.create_task_group() as tg:

            async def call_slow(*, task_status: anyio.abc.TaskStatus[anyio.CancelScope]) -> None:
                with anyio.CancelScope() as scope:
                    task_status.started(scope)
                    await client.call_tool("slow", {"seconds": 30})
                    outcome.append("completed")
                if scope.cancelled_caught:
                    outcome.append("cancelled")

            scope = await tg.start(call_slow)
            await client_wait_stats(client, "started", 1)
            scope.cancel()
        assert outcome == ["cancelled"]
        stats = await client_wait_stats(client, "cancelled", 1)
        assert stats["completed"] == 0, stats
        assert text_of(await client.call_tool("echo", {"text": "after cancel"})) == "after cancel"


# --- load and overload ---------------------------------------------------------------------------

SESSIONS = 50
CALLS_PER_SESSION = 4


async def test_fifty_concurrent_http_sessions_each_get_only_their_own_answers() -> None:
    """50 sessions open at once (default `max_sessions` is 100), each with its own upstream;
    every session fires its echo calls concurrently and must get back exactly its own texts."""
    async with gateway_http(upstream=demo_server_stdio_argv()) as gateway:
        answers: dict[int, list[tuple[str, str]]] = {}
        opened = 0
        all_open, go = anyio.Event(), anyio.Event()

        async def one_session(n: int) -> None:
            nonlocal opened
            async with open_client(gateway.url) as client:
                opened += 1
                if opened == SESSIONS:
                    all_open.set()
                await go.wait()  # every session is open before any of them calls
                got: list[tuple[str, str]] = []

                async def call(k: int) -> None:
                    text = f"session {n} call {k} {new_marker()}"
                    got.append((text, text_of(await client.call_tool("echo", {"text": text}))))

                async with anyio.create_task_group() as calls:
                    for k in range(CALLS_PER_SESSION):
                        calls.start_soon(call, k)
                answers[n] = got

        with anyio.fail_after(120):  # a bound only: 50 upstream processes start on few cores
            async with anyio.create_task_group() as tg:
                for n in range(SESSIONS):
                    tg.start_soon(one_session, n)
                await all_open.wait()
                open_sessions = (await health(gateway))["sessions"]
                go.set()
        assert open_sessions == SESSIONS
        assert sorted(answers) == list(range(SESSIONS))
        for n, got in answers.items():
            assert len(got) == CALLS_PER_SESSION
            for sent, received in got:
                assert received == sent, (n, sent, received)
        await wait_sessions(gateway, 0)


async def test_overload_on_stdio_answers_the_request_over_the_limit() -> None:
    """Deterministic on a pipe: three slow calls in one write; the limit is two in flight."""
    async with wrapped_wire(config={"server": {"max_concurrent_requests": 2}}) as wire:
        await wire.initialize()
        await wire.send_raw(b"".join(json.dumps(slow_call(n, 30)).encode() + b"\n" for n in (1, 2, 3)))
        answer = await wire.receive_response()
        assert answer["id"] == 3 and answer["error"]["code"] == errors.GATEWAY_OVERLOADED, answer
        # Cancelling frees the slots again.
        await wire.send(cancelled(1))
        await wire.send(cancelled(2))
        assert await wire.echo(4, "room again") == "room again"
        stats = await wire_slow_stats(wire, 5)
        assert stats["started"] == 2, stats  # the refused call never reached the upstream
