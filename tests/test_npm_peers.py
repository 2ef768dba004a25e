"""Non-Python peers through the gateway: the npm reference server and two non-Python clients.

* `@modelcontextprotocol/server-everything` (TS SDK v1) as the upstream: over stdio behind
  `guardian wrap`, and over streamable HTTP behind `guardian serve --upstream` and
  `guardian connect`. Where its answers are deterministic they must equal the direct answers.
* `tests/node/client.mjs` (TS SDK v1 client) and the MCP Inspector CLI (TS SDK v2) as the
  downstream client, against the demo server behind the gateway over streamable HTTP, SSE and
  stdio, in both protocol eras where the client speaks them.
* The block path as a non-Python client sees it: a denied tool is hidden and refused (-32010).

The npm packages come from `npm ci --prefix tests/node` (`make test` runs it); without them
every test here FAILS with the command to run.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
from mcp import Client, StdioServerParameters

from tests.support.gateway import (
    DEMO_TOOLS,
    GUARDIAN,
    config_file,
    connect_params,
    demo_server_stdio_argv,
    gateway_http,
    wrap_params,
)
from tests.support.node import (
    NodeRun,
    everything_http,
    everything_stdio_argv,
    run_client_mjs,
    run_inspector,
)
from tests.support.peers import (
    ELICITATION_CONTENT,
    SAMPLING_MODEL,
    SAMPLING_REPLY,
    TEST_ROOT_URIS,
    ClientRecorder,
    ClientTarget,
    ServerProcess,
    demo_http_server,
    open_client,
    text_of,
)

pytestmark = pytest.mark.anyio

DEMO_TOOL_LIST = list(DEMO_TOOLS)
DENY_ECHO: dict[str, Any] = {"security": {"tools": {"deny": ["echo"]}}}
BLOCKED = -32010
HANDSHAKE_VERSION = "2025-11-25"
EVERYTHING_INFO = {"name": "mcp-servers/everything", "title": "Everything Reference Server", "version": "2.0.0"}


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """Module scope so the gateways below live for the whole module."""
    return "asyncio"


@dataclass
class Servers:
    demo_http: ServerProcess
    """The demo server over streamable HTTP, connected to directly (the baseline)."""
    gateway: ServerProcess
    """`guardian serve -- python demo_server.py`: /mcp and /sse."""
    deny: ServerProcess
    """`guardian serve --config {deny echo} --upstream <demo_http>`."""


@pytest.fixture(scope="module")
async def servers(anyio_backend: str) -> AsyncIterator[Servers]:
    async with (
        demo_http_server("streamable-http") as demo,
        gateway_http(upstream=demo_server_stdio_argv()) as gateway,
        gateway_http(upstream_url=demo.url, config=DENY_ECHO) as deny,
    ):
        yield Servers(demo, gateway, deny)


@pytest.fixture(scope="module")
def inspector_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """$HOME for the inspector, so its ~/.mcp-inspector storage stays out of the real home."""
    return tmp_path_factory.mktemp("inspector-home")


def _wrap_argv(*upstream: str, config: str | None = None) -> list[str]:
    return [*GUARDIAN, "wrap", *(["--config", config] if config else []), "--", *upstream]


def _dump(result: Any) -> Any:
    return result.model_dump(mode="json", by_alias=True, exclude_none=True)


# --- server-everything upstream -------------------------------------------------------------------


async def everything_tour(client: Client, recorder: ClientRecorder) -> dict[str, Any]:
    """The deterministic part of server-everything, as JSON-able values."""
    seen: dict[str, Any] = {
        "protocol_version": client.protocol_version,
        "server_info": _dump(client.server_info),
    }
    # It registers its capability-dependent tools after `notifications/initialized` and announces
    # each with tools/list_changed; over stdio that must reach the client.
    await recorder.wait_for_notification("notifications/tools/list_changed")
    seen["tools"] = {tool.name: _dump(tool) for tool in (await client.list_tools()).tools}
    seen["echo"] = _dump(await client.call_tool("echo", {"message": "héllo ✓ \"q\"\nline"}))
    seen["sum"] = _dump(await client.call_tool("get-sum", {"a": 19, "b": 23.5}))
    seen["structured"] = _dump(await client.call_tool("get-structured-content", {"location": "Chicago"}))
    long_running = await client.call_tool(
        "trigger-long-running-operation", {"duration": 0.2, "steps": 2}, progress_callback=recorder.progress_callback
    )
    seen["long_running"] = _dump(long_running)
    seen["progress"] = [(p.progress, p.total) for p in recorder.progress]
    seen["sampling"] = _dump(await client.call_tool("trigger-sampling-request", {"prompt": "Say hi", "maxTokens": 20}))
    seen["elicitation"] = _dump(await client.call_tool("trigger-elicitation-request", {}))
    seen["roots"] = _dump(await client.call_tool("get-roots-list", {}))
    seen["resource"] = _dump(await client.read_resource("demo://resource/static/document/features.md"))
    seen["prompts"] = [_dump(prompt) for prompt in (await client.list_prompts()).prompts]
    seen["prompt"] = _dump(await client.get_prompt("args-prompt", {"city": "Paris", "state": "Texas"}))
    # roots/list may be asked twice (its own 350 ms sync racing get-roots-list): compare the set.
    seen["server_requests"] = sorted({record.method for record in recorder.server_requests})
    return seen


def _check_everything(seen: dict[str, Any]) -> None:
    assert seen["protocol_version"] == HANDSHAKE_VERSION
    assert seen["server_info"] == EVERYTHING_INFO
    assert {"echo", "get-sum", "trigger-sampling-request", "trigger-elicitation-request", "get-roots-list"} <= set(
        seen["tools"]
    )
    assert seen["echo"]["content"] == [{"type": "text", "text": "Echo: héllo ✓ \"q\"\nline"}]
    assert seen["sum"]["content"][0]["text"] == "The sum of 19 and 23.5 is 42.5."
    assert set(seen["structured"]["structuredContent"]) == {"temperature", "conditions", "humidity"}
    assert "Long running operation completed" in seen["long_running"]["content"][0]["text"]
    assert seen["progress"] == [(1.0, 2.0), (2.0, 2.0)]
    sampling_text = seen["sampling"]["content"][0]["text"]
    assert SAMPLING_REPLY in sampling_text and SAMPLING_MODEL in sampling_text
    assert ELICITATION_CONTENT["answer"] in json.dumps(seen["elicitation"])
    assert all(uri in seen["roots"]["content"][0]["text"] for uri in TEST_ROOT_URIS)
    assert seen["resource"]["contents"][0]["uri"] == "demo://resource/static/document/features.md"
    assert "Everything Server" in seen["resource"]["contents"][0]["text"]
    assert [p["name"] for p in seen["prompts"]] == ["simple-prompt", "args-prompt", "completable-prompt",
                                                    "resource-prompt"]
    assert seen["prompt"]["messages"][0]["content"]["text"] == "What's weather in Paris, Texas?"
    assert seen["server_requests"] == ["elicitation/create", "roots/list", "sampling/createMessage"]


async def _everything_tour_of(target: ClientTarget) -> dict[str, Any]:
    recorder = ClientRecorder()
    async with open_client(target, recorder=recorder) as client:
        seen = await everything_tour(client, recorder)
    assert recorder.errors == []
    return seen


async def test_everything_over_stdio_through_wrap_matches_direct() -> None:
    argv = everything_stdio_argv()
    direct = await _everything_tour_of(StdioServerParameters(command=argv[0], args=argv[1:]))
    _check_everything(direct)
    with wrap_params(argv) as params:
        via_gateway = await _everything_tour_of(params)
    _check_everything(via_gateway)
    assert via_gateway == direct


async def test_everything_over_streamable_http_behind_serve_and_connect() -> None:
    async with everything_http("streamableHttp") as everything:
        async with open_client(everything.url) as client:
            direct_version = client.protocol_version
            direct = _dump(await client.call_tool("echo", {"message": "over HTTP"}))
        assert direct["content"] == [{"type": "text", "text": "Echo: over HTTP"}]

        recorder = ClientRecorder()
        async with (
            gateway_http(upstream_url=everything.url) as gateway,
            open_client(gateway.url, recorder=recorder) as client,
        ):
            assert client.protocol_version == direct_version
            assert _dump(await client.call_tool("echo", {"message": "over HTTP"})) == direct
            # A server→client request crossing both HTTP legs (downstream and upstream).
            sampled = await client.call_tool("trigger-sampling-request", {"prompt": "Say hi"})
            assert SAMPLING_REPLY in text_of(sampled)
        assert [r.method for r in recorder.server_requests if r.method != "roots/list"] == ["sampling/createMessage"]

        with connect_params(everything.url) as params:
            async with open_client(params) as client:
                assert client.protocol_version == direct_version
                assert _dump(await client.call_tool("echo", {"message": "over HTTP"})) == direct


# --- client.mjs (TS SDK v1) through the gateway ---------------------------------------------------

Downstream = Literal["streamable-http", "sse", "stdio"]
DOWNSTREAMS: list[Downstream] = ["streamable-http", "sse", "stdio"]


def _client_target(downstream: Downstream, servers: Servers) -> list[str]:
    if downstream == "streamable-http":
        return ["--url", servers.gateway.url]
    if downstream == "sse":
        return ["--sse", f"{servers.gateway.base_url}/sse"]
    # --grace 5000: guardian must exit by itself on stdin EOF ("eof"), not need a signal.
    return ["--quiet", "--grace", "5000", "--", *_wrap_argv(*demo_server_stdio_argv())]


def _ok(run: NodeRun) -> Any:
    assert run.returncode == 0, run.describe()
    out = run.json
    assert out["error"] is None, run.describe()
    return out


_DIRECT_CACHE: dict[str, Any] = {}


async def client_mjs_direct(servers: Servers) -> Any:
    """client.mjs straight to the demo server (streamable HTTP): the baseline answers (run once)."""
    if servers.demo_http.url not in _DIRECT_CACHE:
        run = await run_client_mjs(
            "--tool", "echo", "--args", json.dumps({"text": "héllo ✓"}), "--read", "demo://items/42",
            "--url", servers.demo_http.url,
        )
        _DIRECT_CACHE[servers.demo_http.url] = _ok(run)
    return _DIRECT_CACHE[servers.demo_http.url]


@pytest.mark.parametrize("downstream", DOWNSTREAMS)
async def test_client_mjs_through_the_gateway(downstream: Downstream, servers: Servers) -> None:
    direct = await client_mjs_direct(servers)
    run = await run_client_mjs(
        "--tool", "echo", "--args", json.dumps({"text": "héllo ✓"}), "--read", "demo://items/42",
        *_client_target(downstream, servers),
    )
    out = _ok(run)
    assert out["transport"] == downstream
    assert out["tools"] == DEMO_TOOL_LIST
    assert out["call"] == {"content": [{"type": "text", "text": "héllo ✓"}], "isError": False}
    assert json.loads(out["read"]["contents"][0]["text"]) == {"id": "42", "name": "Item 42"}
    for key in ("serverInfo", "protocolVersion", "capabilities", "tools", "call", "read"):
        assert out[key] == direct[key], key
    assert out["protocolVersion"] == HANDSHAKE_VERSION
    if downstream == "stdio":
        assert out["serverExit"]["by"] == "eof", out["serverExit"]


BACK_CHANNEL: dict[str, tuple[dict[str, Any], str, list[str]]] = {
    # tool: (arguments, the server→client request it makes, the texts client.mjs's answer yields)
    "sample": ({"prompt": "Say hi"}, "sampling/createMessage", ["canned by client.mjs"]),
    "ask": ({"question": "Why?"}, "elicitation/create", ["from client.mjs"]),
    "roots": ({}, "roots/list", ["file:///node/a", "file:///node/b"]),
}


@pytest.mark.parametrize(
    ("downstream", "tool"),
    [(d, t) for d in ("streamable-http", "sse") for t in BACK_CHANNEL] + [("stdio", "sample")],
)
async def test_client_mjs_answers_server_requests_through_the_gateway(
    downstream: Downstream, tool: str, servers: Servers
) -> None:
    """The demo's sampling / elicitation / roots tools, answered by client.mjs's --sampling/--elicit/--roots."""
    args, server_request, expected_texts = BACK_CHANNEL[tool]
    run = await run_client_mjs(
        "--sampling", "canned by client.mjs", "--elicit", json.dumps({"answer": "from client.mjs"}),
        "--roots", "file:///node/a,file:///node/b", "--tool", tool, "--args", json.dumps(args),
        *_client_target(downstream, servers),
    )
    out = _ok(run)
    assert out["serverRequests"] == [server_request]
    assert [block["text"] for block in out["call"]["content"]] == expected_texts


# --- the MCP Inspector CLI (TS SDK v2) through the gateway ----------------------------------------

Era = Literal["legacy", "modern"]


def _inspector_target(downstream: Literal["streamable-http", "stdio"], url: str) -> list[str]:
    return [url] if downstream == "streamable-http" else _wrap_argv(*demo_server_stdio_argv())


def _result(run: NodeRun) -> Any:
    assert run.returncode == 0, run.describe()
    return run.json["result"]


_INSPECTOR_DIRECT: dict[tuple[str, ...], Any] = {}


async def _inspector_direct(servers: Servers, home: Path, *options: str) -> Any:
    """The inspector's result straight from the demo server over HTTP (the baseline; run once per options)."""
    key = (servers.demo_http.url, *options)
    if key not in _INSPECTOR_DIRECT:
        _INSPECTOR_DIRECT[key] = _result(await run_inspector(*options, target=[servers.demo_http.url], home=home))
    return _INSPECTOR_DIRECT[key]


@pytest.mark.parametrize("era", ["legacy", "modern"])
@pytest.mark.parametrize("downstream", ["streamable-http", "stdio"])
async def test_inspector_through_the_gateway_matches_direct(
    downstream: Literal["streamable-http", "stdio"], era: Era, servers: Servers, inspector_home: Path
) -> None:
    """tools/list and tools/call through `guardian serve` (HTTP) and `guardian wrap` (stdio).

    In the modern era the inspector connects with `server/discover` and opens a
    `subscriptions/listen` stream, waiting for its acknowledgement before anything else.
    """
    era_flag = ["--protocol-era", era]
    call = ["--method", "tools/call", "--tool-name", "echo", "--tool-args-json", json.dumps({"text": "héllo ✓"})]
    listing = ["--method", "tools/list"]
    target = _inspector_target(downstream, servers.gateway.url)

    direct_list = await _inspector_direct(servers, inspector_home, *era_flag, *listing)
    direct_call = await _inspector_direct(servers, inspector_home, *era_flag, *call)
    gateway_list = _result(await run_inspector(*era_flag, *listing, target=target, home=inspector_home))
    gateway_call = _result(await run_inspector(*era_flag, *call, target=target, home=inspector_home))

    assert [tool["name"] for tool in gateway_list["tools"]] == DEMO_TOOL_LIST
    assert gateway_call["content"] == [{"type": "text", "text": "héllo ✓"}]
    assert gateway_call["isError"] is False
    if era == "modern":  # 2026-07-28 results carry the server's identity in _meta
        assert gateway_call["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "guardian-demo"
    else:
        assert "_meta" not in gateway_call
    assert gateway_list == direct_list
    assert gateway_call == direct_call


# --- the block path, as non-Python clients see it -------------------------------------------------


@pytest.mark.parametrize("downstream", DOWNSTREAMS)
async def test_client_mjs_sees_a_denied_tool_hidden_and_blocked(downstream: Downstream, servers: Servers) -> None:
    echo = ["--tool", "echo", "--args", json.dumps({"text": "must not pass"})]
    if downstream == "stdio":
        with config_file(DENY_ECHO) as config:
            argv = _wrap_argv(*demo_server_stdio_argv(), config=config)
            run = await run_client_mjs(*echo, "--quiet", "--", *argv)
    else:
        deny = servers.deny
        where = ["--url", deny.url] if downstream == "streamable-http" else ["--sse", f"{deny.base_url}/sse"]
        run = await run_client_mjs(*echo, *where)
    assert run.returncode == 1, run.describe()
    out = run.json
    assert out["tools"] == [name for name in DEMO_TOOLS if name != "echo"]
    assert out["call"] is None
    assert out["errorCode"] == BLOCKED, run.describe()
    assert "blocked" in out["error"]


@pytest.mark.parametrize("era", ["legacy", "modern"])
async def test_inspector_sees_a_denied_tool_hidden(era: Era, servers: Servers, inspector_home: Path) -> None:
    era_flag = ["--protocol-era", era]
    listing = _result(
        await run_inspector(*era_flag, "--method", "tools/list", target=[servers.deny.url], home=inspector_home)
    )
    assert [tool["name"] for tool in listing["tools"]] == [name for name in DEMO_TOOLS if name != "echo"]
    # The inspector checks the listing before calling, so a hidden tool is "not found" to it:
    # the gateway's listing filter is what it trips over (client.mjs above gets the -32010).
    call = await run_inspector(
        *era_flag, "--method", "tools/call", "--tool-name", "echo", "--tool-args-json", '{"text": "x"}',
        target=[servers.deny.url], home=inspector_home,
    )
    assert call.returncode == 5, call.describe()
    assert call.error_json["error"]["code"] == "tool_not_found"
    # A tool that is allowed still works through the same gateway.
    added = _result(
        await run_inspector(
            *era_flag, "--method", "tools/call", "--tool-name", "add", "--tool-args-json", '{"a": 1, "b": 2}',
            target=[servers.deny.url], home=inspector_home,
        )
    )
    assert added["structuredContent"] == {"result": 3.0}

