"""The demo upstream, tested directly with the SDK `Client` (no gateway in between).

Every feature is checked over stdio, streamable HTTP and SSE, in both protocol eras:
`legacy` (the initialize handshake, negotiating 2025-11-25) and `2026-07-28` (the modern era,
pinned, no `server/discover` probe). These are the baselines gateway tests compare against.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

import anyio
import httpx2
import pytest
from mcp import Client, MCPError
from mcp.types import CreateMessageRequestParams, ElicitRequestFormParams, ListToolsResult, TextContent

from tests.support.gateway import DEMO_TOOLS
from tests.support.peers import (
    ELICITATION_CONTENT,
    SAMPLING_REPLY,
    TEST_ROOT_URIS,
    ClientRecorder,
    ClientTarget,
    ProgressUpdate,
    ServerProcess,
    demo_http_server,
    demo_server_stdio_params,
    first,
    free_port,
    has_method,
    http_server_process,
    open_client,
    text_of,
)

pytestmark = pytest.mark.anyio

TransportName = Literal["stdio", "streamable-http", "sse"]
Era = Literal["legacy", "2026-07-28"]

TRANSPORTS: list[TransportName] = ["stdio", "streamable-http", "sse"]
ERAS: list[Era] = ["legacy", "2026-07-28"]
EXPECTED_VERSION = {"legacy": "2025-11-25", "2026-07-28": "2026-07-28"}


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """Module scope so the HTTP servers below can live for the whole module."""
    return "asyncio"


@pytest.fixture(scope="module")
async def streamable_http_server(anyio_backend: str) -> AsyncIterator[ServerProcess]:
    async with demo_http_server("streamable-http") as server:
        yield server


@pytest.fixture(scope="module")
async def sse_server(anyio_backend: str) -> AsyncIterator[ServerProcess]:
    async with demo_http_server("sse") as server:
        yield server


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> TransportName:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(params=ERAS)
def era(request: pytest.FixtureRequest) -> Era:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def target(request: pytest.FixtureRequest, transport: TransportName) -> ClientTarget:
    """What a client connects to; HTTP servers start lazily, once per module."""
    if transport == "stdio":
        return demo_server_stdio_params()
    fixture = "streamable_http_server" if transport == "streamable-http" else "sse_server"
    server: ServerProcess = request.getfixturevalue(fixture)
    return server.url


@pytest.fixture
def recorder() -> ClientRecorder:
    return ClientRecorder()


def connect(target: ClientTarget, era: Era, recorder: ClientRecorder) -> Client:
    return open_client(target, mode=era, recorder=recorder, read_timeout_seconds=15)


def tool_names(listing: ListToolsResult) -> set[str]:
    return {tool.name for tool in listing.tools}


# --- every transport x every era -----------------------------------------------------------------


async def test_connect_negotiates_the_era_and_lists_everything(
    target: ClientTarget, era: Era, recorder: ClientRecorder
) -> None:
    async with connect(target, era, recorder) as client:
        assert client.protocol_version == EXPECTED_VERSION[era]
        if era == "legacy":
            # A pinned modern client synthesizes its discover result, so only the handshake
            # (or mode="auto", tested below) carries the server's identity and instructions.
            assert client.instructions is not None and "guardian" in client.instructions.lower()
            assert client.server_info is not None and client.server_info.name == "guardian-demo"
            assert client.server_capabilities.tools is not None
            assert client.server_capabilities.tools.list_changed is True
            assert client.server_capabilities.logging is not None
        assert tool_names(await client.list_tools()) >= set(DEMO_TOOLS)
        assert [r.uri for r in (await client.list_resources()).resources] == ["demo://readme"]
        templates = (await client.list_resource_templates()).resource_templates
        assert [t.uri_template for t in templates] == ["demo://items/{item_id}"]
        assert [p.name for p in (await client.list_prompts()).prompts] == ["greet"]


async def test_plain_and_structured_tool_results(
    target: ClientTarget, era: Era, recorder: ClientRecorder
) -> None:
    async with connect(target, era, recorder) as client:
        echoed = await client.call_tool("echo", {"text": "héllo wörld"})
        assert not echoed.is_error
        assert echoed.content == [TextContent(type="text", text="héllo wörld")]
        assert echoed.structured_content is None

        added = await client.call_tool("add", {"a": 2, "b": 3.5})
        assert added.structured_content == {"result": 5.5}
        assert text_of(added) == "5.5"

        big = await client.call_tool("big", {"n": 100_000})
        assert len(text_of(big)) == 100_000 and text_of(big).startswith("0123456789abcdef0123")

        note = await client.call_tool("secret_note", {})
        assert "aws_secret_access_key" in text_of(note)

        bad = await client.call_tool("big", {"n": -1})
        assert bad.is_error


async def test_resources_and_prompt(target: ClientTarget, era: Era, recorder: ClientRecorder) -> None:
    async with connect(target, era, recorder) as client:
        readme = await client.read_resource("demo://readme")
        assert readme.contents[0].mime_type == "text/markdown"
        assert text_of(readme).startswith("# MCP Guardian demo server")

        item = await client.read_resource("demo://items/42")
        assert item.contents[0].mime_type == "application/json"
        assert text_of(item) == '{"id": "42", "name": "Item 42"}'

        with pytest.raises(MCPError):
            await client.read_resource("demo://nope")

        prompt = await client.get_prompt("greet", {"name": "Ada"})
        assert len(prompt.messages) == 1
        assert prompt.messages[0].role == "user"
        assert prompt.messages[0].content == TextContent(type="text", text="Please greet Ada warmly.")


async def test_sampling_elicitation_and_roots(
    target: ClientTarget, era: Era, recorder: ClientRecorder
) -> None:
    """Legacy: real server-to-client requests mid-call. Modern: InputRequiredResult + retry.

    Either way the client's callbacks answer, and the tool sees the answers.
    """
    async with connect(target, era, recorder) as client:
        sampled = await client.call_tool("sample", {"prompt": "Say something"})
        assert text_of(sampled) == SAMPLING_REPLY

        answered = await client.call_tool("ask", {"question": "What is six times seven?"})
        assert text_of(answered) == ELICITATION_CONTENT["answer"]

        roots = await client.call_tool("roots", {})
        assert roots.structured_content == {"result": list(TEST_ROOT_URIS)}

    methods = [request.method for request in recorder.server_requests]
    assert methods == ["sampling/createMessage", "elicitation/create", "roots/list"]
    sampling_params = recorder.server_requests[0].params
    assert isinstance(sampling_params, CreateMessageRequestParams)
    assert sampling_params.messages[0].content == TextContent(type="text", text="Say something")
    elicitation_params = recorder.server_requests[1].params
    assert isinstance(elicitation_params, ElicitRequestFormParams)
    assert elicitation_params.message == "What is six times seven?"


async def test_progress_and_log_notifications(
    target: ClientTarget, era: Era, recorder: ClientRecorder
) -> None:
    """Progress needs a progress token (a progress_callback); modern-era logs need log_level."""
    async with connect(target, era, recorder) as client:
        result = await client.call_tool(
            "progress", {"steps": 3}, progress_callback=recorder.progress_callback
        )
        assert text_of(result) == "completed 3 steps"

        updates = await recorder.wait_for_count(lambda m: isinstance(m, ProgressUpdate), 3)
        assert sorted(u.progress for u in updates if isinstance(u, ProgressUpdate)) == [1.0, 2.0, 3.0]
        await recorder.wait_for_count(has_method("notifications/progress"), 3)  # teed to message_handler
        await recorder.wait_for_count(has_method("notifications/message"), 3)
    assert sorted(str(log.data) for log in recorder.logs) == [f"progress step {i} of 3" for i in (1, 2, 3)]
    assert {log.level for log in recorder.logs} == {"info"}
    assert {log.logger for log in recorder.logs} == {"demo.progress"}
    assert recorder.errors == []


async def test_tool_list_changes_at_runtime(target: ClientTarget, era: Era, recorder: ClientRecorder) -> None:
    """Legacy: notifications/tools/list_changed. Modern: an event on a subscriptions/listen stream."""
    async with connect(target, era, recorder) as client:
        if era == "legacy":
            added = await client.call_tool("add_tool", {})
            await recorder.wait_for_notification("notifications/tools/list_changed")
        else:
            async with client.listen(tools_list_changed=True) as subscription:
                added = await client.call_tool("add_tool", {})
                event = await first(aiter(subscription))
            assert type(event).__name__ == "ToolsListChanged"
        name = text_of(added)
        assert name.startswith("dynamic_")
        assert name in tool_names(await client.list_tools())
        assert text_of(await client.call_tool(name, {"text": "x"})) == f"{name}: x"


async def test_cancelling_a_call_reaches_the_server(
    target: ClientTarget, era: Era, recorder: ClientRecorder
) -> None:
    """Cancelling the caller's scope is how the SDK Client cancels: it sends notifications/cancelled
    (legacy, and modern stdio/SSE) or aborts the POST (modern streamable HTTP)."""
    async with connect(target, era, recorder) as client:
        before = (await client.call_tool("slow_stats", {})).structured_content
        assert before is not None
        with anyio.move_on_after(0.3) as scope:
            await client.call_tool("slow", {"seconds": 30})
        assert scope.cancelled_caught

        with anyio.fail_after(5):
            while True:  # the cancel is asynchronous on the server side; poll its counter
                after = (await client.call_tool("slow_stats", {})).structured_content
                assert after is not None
                if after["cancelled"] > before["cancelled"]:
                    break
        assert after["completed"] == before["completed"]
        # The connection stays usable after a cancellation.
        assert text_of(await client.call_tool("slow", {"seconds": 0})) == "slept 0 seconds"


# --- mode="auto" ------------------------------------------------------------------------------------


async def test_auto_mode_discovers_the_modern_era(target: ClientTarget, recorder: ClientRecorder) -> None:
    """The demo runs SDK 2.3, which answers server/discover, so auto mode lands on 2026-07-28."""
    async with open_client(target, mode="auto", recorder=recorder) as client:
        assert client.protocol_version == "2026-07-28"
        assert client.instructions is not None and "guardian" in client.instructions.lower()
        assert client.server_info is not None and client.server_info.name == "guardian-demo"
        assert text_of(await client.call_tool("echo", {"text": "auto"})) == "auto"


# --- crashing upstreams (each crash needs its own server process) ---------------------------------


@pytest.mark.parametrize("era", ERAS)
async def test_crash_over_stdio_fails_the_call(era: Era, recorder: ClientRecorder) -> None:
    async with connect(demo_server_stdio_params(), era, recorder) as client:
        with pytest.raises(MCPError, match="Connection closed"):
            await client.call_tool("crash", {})


@pytest.mark.parametrize("era", ERAS)
async def test_crash_over_sse_fails_the_call(era: Era, recorder: ClientRecorder) -> None:
    async with demo_http_server("sse") as server:
        async with connect(server.url, era, recorder) as client:
            with pytest.raises(MCPError, match="Connection closed"):
                await client.call_tool("crash", {})
        assert await server.wait() == 3


async def test_crash_over_streamable_http_legacy_fails_the_call(recorder: ClientRecorder) -> None:
    async with demo_http_server("streamable-http") as server:
        async with connect(server.url, "legacy", recorder) as client:
            with pytest.raises(MCPError, match="SSE stream ended without a response"):
                await client.call_tool("crash", {})
        assert await server.wait() == 3


async def test_crash_over_streamable_http_modern_tears_down_the_client(recorder: ClientRecorder) -> None:
    """SDK 2.3 quirk: on a 2026-07-28 streamable-HTTP connection the dropped POST is not turned
    into an MCPError; the transport's task group fails, cancelling the caller, and the client's
    `async with` exits with an exception group holding httpx2.RemoteProtocolError."""
    async with demo_http_server("streamable-http") as server:
        with pytest.raises(BaseExceptionGroup) as raised:
            async with connect(server.url, "2026-07-28", recorder) as client:
                await client.call_tool("crash", {})
        assert raised.group_contains(httpx2.RemoteProtocolError)
        assert await server.wait() == 3


# --- the helpers themselves -------------------------------------------------------------------------


async def test_streamable_http_json_response_and_stateless_flags(recorder: ClientRecorder) -> None:
    async with (
        demo_http_server("streamable-http", "--json-response", "--stateless") as server,
        connect(server.url, "legacy", recorder) as client,
    ):
        assert text_of(await client.call_tool("echo", {"text": "json"})) == "json"


async def test_http_server_process_reports_an_early_exit() -> None:
    argv = [sys.executable, "-c", "import sys; sys.stderr.write('boom'); sys.exit(5)"]
    with pytest.raises(RuntimeError, match=r"exited with 5(.|\n)*boom"):
        async with http_server_process(argv, free_port()):
            pytest.fail("must not yield")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a reparented zombie is dead for our purposes


async def test_http_server_process_kills_the_whole_process_group(tmp_path: Path) -> None:
    """A server that spawned a child (and ignores SIGTERM) still leaves nothing running."""
    pid_file = tmp_path / "grandchild.pid"
    script = (
        "import signal, socket, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen(['sleep', '60'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen()\n"
        "while True: s.accept()\n"
    )
    port = free_port()
    async with http_server_process(
        [sys.executable, "-c", script, str(port)], port, stop_timeout=0.5
    ) as server:
        leader = server.process.pid
        grandchild = int(pid_file.read_text())
        assert _alive(leader) and _alive(grandchild)
    assert server.returncode is not None
    with anyio.fail_after(5):
        while _alive(grandchild):
            await anyio.sleep(0.02)


def test_demo_server_cli_help_runs() -> None:
    params = demo_server_stdio_params("--help")
    completed = subprocess.run(
        [params.command, *params.args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=params.cwd,
        env=os.environ,
    )
    assert completed.returncode == 0
    assert "streamable-http" in completed.stdout
