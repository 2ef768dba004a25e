"""Both protocol eras through the gateway give the same answers as the demo server gives directly.

SDK `Client` modes `legacy` (initialize handshake), `auto` (probes `server/discover`, settles on
2026-07-28 with this server) and `2026-07-28` (modern era, no probe), each over three gateway
paths: stdio `guardian wrap`, streamable HTTP `guardian serve -- CMD` (stdio upstream), and
`guardian serve --upstream URL` (streamable-HTTP upstream). Every answer is compared with the
same client mode connected straight to the demo server.

Then the modern era's own rules at the gateway: no sessions over HTTP (concurrent clients that
use the same JSON-RPC ids, and the same progress tokens, must each get only their own answers,
progress and logs), `subscriptions/listen` streams, header/body agreement (`-32020`), parse
errors (`-32700`), and the block path (`-32010` with `error.data.guardian`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal, cast

import anyio
import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.client import ConnectMode
from mcp.types import InputRequiredResult, ListToolsResult

from tests.support.gateway import DEMO_TOOLS, demo_server_stdio_argv, gateway_http, wrap_params
from tests.support.peers import (
    ELICITATION_CONTENT,
    SAMPLING_REPLY,
    TEST_ROOT_URIS,
    ClientRecorder,
    ClientTarget,
    ServerProcess,
    demo_http_server,
    demo_server_stdio_params,
    open_client,
    text_of,
)

pytestmark = pytest.mark.anyio

MODERN = "2026-07-28"
MODES: list[ConnectMode] = ["legacy", "auto", MODERN]
EXPECTED_VERSION = {"legacy": "2025-11-25", "auto": MODERN, MODERN: MODERN}
DEMO_TOOL_SET = set(DEMO_TOOLS)
DENY_ECHO: dict[str, Any] = {"security": {"tools": {"deny": ["echo"]}}}
BLOCKED = -32010
HEADER_MISMATCH = -32020
PARSE_ERROR = -32700
LISTEN_TIMEOUT = 10.0
"""Seconds to wait for a subscription acknowledgement or event (direct: ~50 ms)."""

Path_ = Literal["wrap", "serve-stdio", "serve-url"]
PATHS: list[Path_] = ["wrap", "serve-stdio", "serve-url"]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """Module scope so the servers and gateways below live for the whole module."""
    return "asyncio"


@dataclass
class Servers:
    """Everything this module talks to over HTTP, started once."""

    demo_http: ServerProcess
    """The demo server over streamable HTTP: the direct baseline and the `--upstream` target."""
    gw_stdio: ServerProcess
    """`guardian serve -- python demo_server.py` (stdio upstream)."""
    gw_url: ServerProcess
    """`guardian serve --upstream http://…/mcp` (streamable-HTTP upstream)."""
    gw_deny: ServerProcess
    """A gateway whose config denies the `echo` tool (streamable-HTTP upstream)."""

    def by_name(self, name: str) -> ServerProcess:
        return cast(ServerProcess, getattr(self, name))


@pytest.fixture(scope="module")
async def servers(anyio_backend: str) -> AsyncIterator[Servers]:
    async with (
        demo_http_server("streamable-http") as demo,
        gateway_http(upstream=demo_server_stdio_argv()) as gw_stdio,
        gateway_http(upstream_url=demo.url) as gw_url,
        gateway_http(upstream_url=demo.url, config=DENY_ECHO) as gw_deny,
    ):
        yield Servers(demo, gw_stdio, gw_url, gw_deny)


# --- one tour of the protocol, recorded so direct and gateway answers can be compared ------------


def builtin_tools(listed: ListToolsResult) -> list[str]:
    """Tool names without the `dynamic_<n>` ones `add_tool` registers (the listen test adds some
    to the shared demo servers), sorted."""
    return sorted(tool.name for tool in listed.tools if not tool.name.startswith("dynamic_"))


def _dump(result: Any) -> Any:
    if result is None:
        return None
    return result.model_dump(mode="json", by_alias=True, exclude_none=True)


async def era_tour(client: Client, recorder: ClientRecorder, mode: ConnectMode) -> dict[str, Any]:
    """Everything the client sees, as plain JSON-able values."""
    seen: dict[str, Any] = {
        "protocol_version": client.protocol_version,
        "server_info": _dump(client.server_info),
    }
    seen["tools"] = builtin_tools(await client.list_tools())
    seen["echo"] = _dump(await client.call_tool("echo", {"text": f"héllo ✓ {mode} \"q\"\nline"}))
    seen["add"] = (await client.call_tool("add", {"a": 2, "b": 3.5})).structured_content
    seen["readme"] = _dump(await client.read_resource("demo://readme"))
    seen["item"] = _dump(await client.read_resource("demo://items/42"))
    seen["prompt"] = _dump(await client.get_prompt("greet", {"name": "Ada"}))
    if client.protocol_version == MODERN:
        # No server→client requests in this era: the first answer is an InputRequiredResult.
        for tool, args in (("sample", {"prompt": "Say something"}), ("ask", {"question": "Why?"})):
            first = await client.session.call_tool(tool, args, allow_input_required=True)
            assert isinstance(first, InputRequiredResult), f"{tool}: {first!r}"
            assert first.request_state, f"{tool}: no requestState to echo back"
            seen[f"{tool}_input_required"] = sorted(
                request.method for request in (first.input_requests or {}).values()
            )
    # The Client answers sampling/elicitation/roots with the recorder's callbacks: mid-call
    # requests in the handshake era, InputRequiredResult retries in the modern era.
    seen["sample"] = text_of(await client.call_tool("sample", {"prompt": "Say something"}))
    seen["ask"] = text_of(await client.call_tool("ask", {"question": "Why?"}))
    seen["roots"] = _dump(await client.call_tool("roots", {}))
    seen["server_requests"] = [record.method for record in recorder.server_requests]
    return seen


def _check_tour(seen: dict[str, Any], mode: ConnectMode) -> None:
    """The answers are the demo's (so a gateway and a direct run cannot both be wrong the same way)."""
    assert seen["protocol_version"] == EXPECTED_VERSION[mode]
    if mode != MODERN:  # a pinned 2026-07-28 client skips server/discover, so it has no server info
        assert seen["server_info"]["name"] == "guardian-demo"
    assert set(seen["tools"]) == DEMO_TOOL_SET
    assert seen["echo"]["content"] == [{"type": "text", "text": f"héllo ✓ {mode} \"q\"\nline"}]
    assert seen["add"] == {"result": 5.5}
    assert "static text" in seen["readme"]["contents"][0]["text"]
    assert json.loads(seen["item"]["contents"][0]["text"]) == {"id": "42", "name": "Item 42"}
    assert seen["prompt"]["messages"][0]["content"]["text"] == "Please greet Ada warmly."
    assert seen["sample"] == SAMPLING_REPLY
    assert seen["ask"] == ELICITATION_CONTENT["answer"]
    assert seen["roots"]["structuredContent"] == {"result": list(TEST_ROOT_URIS)}
    if seen["protocol_version"] == MODERN:
        assert seen["sample_input_required"] == ["sampling/createMessage"]
        assert seen["ask_input_required"] == ["elicitation/create"]
    # Each callback ran once per tool (the raw InputRequiredResult probes above answer nothing).
    assert seen["server_requests"] == ["sampling/createMessage", "elicitation/create", "roots/list"]


async def tour_of(target: ClientTarget, mode: ConnectMode) -> dict[str, Any]:
    recorder = ClientRecorder()
    async with open_client(target, mode=mode, recorder=recorder) as client:
        seen = await era_tour(client, recorder, mode)
    assert recorder.errors == []
    return seen


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("mode", MODES)
async def test_each_era_through_the_gateway_matches_direct(
    mode: ConnectMode, path: Path_, servers: Servers
) -> None:
    direct: ClientTarget = demo_server_stdio_params() if path == "wrap" else servers.demo_http.url
    baseline = await tour_of(direct, mode)
    _check_tour(baseline, mode)
    with ExitStack() as stack:
        if path == "wrap":
            through: ClientTarget = stack.enter_context(wrap_params(demo_server_stdio_argv()))
        else:
            through = (servers.gw_stdio if path == "serve-stdio" else servers.gw_url).url
        via_gateway = await tour_of(through, mode)
    _check_tour(via_gateway, mode)
    assert via_gateway == baseline


# --- 2026-07-28 over HTTP: no session, one shared upstream, ids rewritten ------------------------


@pytest.mark.parametrize("gateway_name", ["gw_stdio", "gw_url"])
async def test_concurrent_modern_clients_each_get_their_own_answers(
    gateway_name: str, servers: Servers
) -> None:
    """Two fresh 2026-07-28 clients number their requests alike; 40 concurrent echoes each."""
    gateway = servers.by_name(gateway_name)
    calls = 40
    answers: dict[str, dict[int, str]] = {"A": {}, "B": {}}

    async with open_client(gateway.url, mode=MODERN) as a, open_client(gateway.url, mode=MODERN) as b:
        assert a.protocol_version == b.protocol_version == MODERN

        async def echo(name: str, client: Client, index: int) -> None:
            answers[name][index] = text_of(await client.call_tool("echo", {"text": f"{name}:{index}"}))

        async with anyio.create_task_group() as tg:
            for index in range(calls):
                tg.start_soon(echo, "A", a, index)
                tg.start_soon(echo, "B", b, index)

    for name in ("A", "B"):
        assert answers[name] == {index: f"{name}:{index}" for index in range(calls)}


MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientInfo": {"name": "raw-httpx2", "version": "0"},
    "io.modelcontextprotocol/clientCapabilities": {},
}
MODERN_HEADERS = {
    "MCP-Protocol-Version": MODERN,
    "Accept": "application/json, text/event-stream",
    "Content-Type": "application/json",
}


def _echo_request(request_id: int | str, text: str) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0", "id": request_id, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": text}, "_meta": MODERN_META},
    }  # fmt: skip


def _routing_headers(method: str, name: str) -> dict[str, str]:
    return {**MODERN_HEADERS, "Mcp-Method": method, "Mcp-Name": name}


async def test_identical_request_ids_from_two_raw_clients_are_kept_apart(servers: Servers) -> None:
    """The same JSON-RPC id on two concurrent POSTs: each answer carries its own id and text."""
    ids: list[int | str] = [*range(1, 21), "same-string-id"]
    answers: dict[tuple[str, int | str], dict[str, Any]] = {}

    async with httpx2.AsyncClient(timeout=30) as http:

        async def post(client: str, request_id: int | str) -> None:
            response = await http.post(
                servers.gw_stdio.url, json=_echo_request(request_id, f"{client}/{request_id}"),
                headers=_routing_headers("tools/call", "echo"),
            )
            assert response.status_code == 200, response.text
            answers[(client, request_id)] = response.json()

        async with anyio.create_task_group() as tg:
            for request_id in ids:
                tg.start_soon(post, "A", request_id)
                tg.start_soon(post, "B", request_id)

    for (client, request_id), body in answers.items():
        assert body["id"] == request_id
        assert body["result"]["content"] == [{"type": "text", "text": f"{client}/{request_id}"}]
    assert len(answers) == 2 * len(ids)


@pytest.mark.parametrize("where", ["direct", "gw_stdio", "gw_url"])
async def test_concurrent_modern_progress_and_logs_stay_with_their_client(
    where: str, servers: Servers
) -> None:
    """Progress and log notifications of one modern client's call must not reach another client.

    Two fresh clients use the same request ids, so the same progress tokens (the SDK uses the
    request id). `direct` is the control: the demo server keeps them apart by itself.

    Behind a command upstream (`gw_stdio`) all clients share one server process, and a log
    line on stdio names no request: while several calls that asked for logs are in flight,
    the gateway withholds their log lines rather than guess (see `SharedUpstream`). So there
    the promise is "never another client's log", not "every log".
    """
    server = servers.by_name("demo_http" if where == "direct" else where)
    steps = {"A": 3, "B": 5}
    rounds = 10
    progress: dict[str, list[list[tuple[float, float | None]]]] = {"A": [], "B": []}
    results: dict[str, list[str]] = {"A": [], "B": []}
    recorders = {"A": ClientRecorder(), "B": ClientRecorder()}

    async with (
        open_client(server.url, mode=MODERN, recorder=recorders["A"]) as a,
        open_client(server.url, mode=MODERN, recorder=recorders["B"]) as b,
    ):

        async def call(name: str, client: Client) -> None:
            updates: list[tuple[float, float | None]] = []

            async def on_progress(value: float, total: float | None, message: str | None) -> None:
                updates.append((value, total))

            result = await client.call_tool("progress", {"steps": steps[name]}, progress_callback=on_progress)
            results[name].append(text_of(result))
            progress[name].append(updates)

        async with anyio.create_task_group() as tg:
            for _ in range(rounds):
                tg.start_soon(call, "A", a)
                tg.start_soon(call, "B", b)

    for name, n in steps.items():
        assert results[name] == [f"completed {n} steps"] * rounds
        expected = [(float(step), float(n)) for step in range(1, n + 1)]
        wrong = [updates for updates in progress[name] if updates != expected]
        assert wrong == [], f"client {name} (steps={n}) got other progress: {wrong[:3]}"
        log_texts = [str(log.data) for log in recorders[name].logs]
        foreign = [text for text in log_texts if not text.endswith(f"of {n}")]
        assert foreign == [], f"client {name} got another client's logs: {foreign[:3]}"
        if where == "gw_stdio":
            assert len(log_texts) <= rounds * n
        else:
            assert len(log_texts) == rounds * n


@pytest.mark.parametrize("where", ["direct", "wrap", "gw_stdio", "gw_url"])
async def test_modern_subscriptions_listen_is_acknowledged_and_delivers_events(where: str, servers: Servers) -> None:
    """`subscriptions/listen` (the modern era's list_changed channel) through each gateway path.

    The client opens a listen stream for tool-list changes, then calls `add_tool` on the same
    connection: the stream must be acknowledged under the client's own request id (or the client
    never sees it open; the MCP Inspector CLI opens one on every modern-era connect), and the
    change must arrive on it, as it does directly. `direct` is the control.
    """
    target: ClientTarget
    event: object = None
    problem: str | None = None
    async with AsyncExitStack() as stack:
        if where == "wrap":
            target = stack.enter_context(wrap_params(demo_server_stdio_argv()))
        else:
            target = servers.by_name("demo_http" if where == "direct" else where).url
        client = await stack.enter_async_context(open_client(target, mode=MODERN))
        assert text_of(await client.call_tool("echo", {"text": "warm"})) == "warm"  # upstream is up
        with anyio.move_on_after(LISTEN_TIMEOUT) as waiting:
            subscription = await stack.enter_async_context(client.listen(tools_list_changed=True))
        if waiting.cancelled_caught:
            problem = f"subscriptions/listen was not acknowledged within {LISTEN_TIMEOUT:g}s"
        else:
            added = text_of(await client.call_tool("add_tool", {}))
            assert added.startswith("dynamic_")
            with anyio.move_on_after(LISTEN_TIMEOUT) as waiting:
                event = await subscription.__anext__()
            if waiting.cancelled_caught:
                problem = f"listen stream acknowledged, but the change add_tool made ({added}) never arrived on it"
            else:
                assert added in {tool.name for tool in (await client.list_tools()).tools}
    # Asserted outside the client: its task groups would wrap the failure in exception groups.
    assert problem is None, problem
    assert type(event).__name__ == "ToolsListChanged"


async def test_modern_logs_through_a_command_upstream_arrive_when_attributable(servers: Servers) -> None:
    """One call at a time through the shared stdio upstream: every log line reaches its caller."""
    recorder = ClientRecorder()
    async with open_client(servers.by_name("gw_stdio").url, mode=MODERN, recorder=recorder) as client:
        for _ in range(3):
            result = await client.call_tool("progress", {"steps": 2})
            assert text_of(result) == "completed 2 steps"
    assert [str(log.data) for log in recorder.logs] == ["progress step 1 of 2", "progress step 2 of 2"] * 3


# --- modern-era header checks and parse errors at the gateway --------------------------------------


async def _raw_post(url: str, content: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    async with httpx2.AsyncClient(timeout=30) as http:
        response = await http.post(url, content=content, headers=headers)
    return response.status_code, response.json()


async def test_modern_header_and_parse_checks_match_direct(servers: Servers) -> None:
    body = json.dumps(_echo_request(7, "header check")).encode()
    cases: dict[str, tuple[bytes, dict[str, str]]] = {
        "agreeing headers": (body, _routing_headers("tools/call", "echo")),
        "Mcp-Method disagrees": (body, _routing_headers("tools/list", "echo")),
        "Mcp-Name disagrees": (body, _routing_headers("tools/call", "add")),
        "not JSON": (b'{"jsonrpc": "2.0", "id": 8, "method": ', _routing_headers("tools/call", "echo")),
    }
    expected = {
        "agreeing headers": (200, None),
        "Mcp-Method disagrees": (400, HEADER_MISMATCH),
        "Mcp-Name disagrees": (400, HEADER_MISMATCH),
        "not JSON": (400, PARSE_ERROR),
    }
    for case, (content, headers) in cases.items():
        seen = {}
        for side, url in (("direct", servers.demo_http.url), ("gateway", servers.gw_stdio.url)):
            status, answer = await _raw_post(url, content, headers)
            code = answer["error"]["code"] if "error" in answer else None
            seen[side] = (status, code)
            if code is None:
                assert answer["id"] == 7 and text_of_raw(answer) == "header check", (side, case, answer)
            elif code == HEADER_MISMATCH:
                assert answer["id"] == 7, (side, case, answer)
        assert seen == {"direct": expected[case], "gateway": expected[case]}, case


def text_of_raw(answer: dict[str, Any]) -> str:
    return "".join(block.get("text", "") for block in answer["result"]["content"])


# --- the block path in the modern era ----------------------------------------------------------------


@asynccontextmanager
async def _deny_target(path: str, servers: Servers) -> AsyncIterator[ClientTarget]:
    if path == "wrap":
        with wrap_params(demo_server_stdio_argv(), DENY_ECHO) as params:
            yield params
    else:
        yield servers.gw_deny.url


@pytest.mark.parametrize(("path", "mode"), [("serve", MODERN), ("wrap", MODERN), ("serve", "legacy")])
async def test_denied_tool_is_hidden_and_blocked(path: str, mode: ConnectMode, servers: Servers) -> None:
    async with _deny_target(path, servers) as target, open_client(target, mode=mode) as client:
        assert client.protocol_version == EXPECTED_VERSION[mode]
        assert set(builtin_tools(await client.list_tools())) == DEMO_TOOL_SET - {"echo"}
        with pytest.raises(MCPError) as caught:
            await client.call_tool("echo", {"text": "must not pass"})
        assert caught.value.code == BLOCKED
        guardian = caught.value.data["guardian"]
        assert guardian["decision"] == "block"
        assert guardian["reasons"], guardian
        assert guardian["request_id"], guardian
        # Everything else still flows.
        assert (await client.call_tool("add", {"a": 1, "b": 2})).structured_content == {"result": 3.0}


async def test_modern_listen_outlives_the_request_timeout() -> None:
    """A subscription stream is quiet by design: `server.request_timeout` must not end it."""
    problem: str | None = None
    event: object = None
    config = {"server": {"request_timeout": 1}}
    async with gateway_http(upstream=demo_server_stdio_argv(), config=config) as gateway, AsyncExitStack() as stack:
        client = await stack.enter_async_context(open_client(gateway.url, mode=MODERN))
        with anyio.move_on_after(LISTEN_TIMEOUT) as waiting:
            subscription = await stack.enter_async_context(client.listen(tools_list_changed=True))
        if waiting.cancelled_caught:
            problem = "subscriptions/listen was not acknowledged"
        else:
            await anyio.sleep(2.5)  # the point of the test: let more than request_timeout pass
            added = text_of(await client.call_tool("add_tool", {}))
            with anyio.move_on_after(LISTEN_TIMEOUT) as waiting:
                event = await subscription.__anext__()
            if waiting.cancelled_caught:
                problem = f"the listen stream did not deliver the change ({added}) after a quiet spell"
    assert problem is None, problem
    assert type(event).__name__ == "ToolsListChanged"
