"""The embedding API: `Guardian` built in code, plugin-mode `inspect()`, custom inspectors,
and the ASGI app served in-process by uvicorn in front of the demo stdio server.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
import uvicorn
import yaml
from mcp import Client
from mcp.shared.exceptions import MCPError

import guardian
from guardian import Action, Config, ConfigError, Decision, Direction, Event, Finding, Guardian, Inspector

pytestmark = pytest.mark.anyio

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_SERVER = REPO_ROOT / "examples" / "demo_server.py"
EMBED_EXAMPLE = REPO_ROOT / "examples" / "embed.py"
GUARD = 30.0
"""Upper bound on any one wait, so a regression fails instead of hanging."""

DENY_CONFIG: dict[str, Any] = {"security": {"tools": {"deny": ["delete_*", "crash"]}}}


def call(tool: str, arguments: dict[str, Any] | None = None, id: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": arguments or {}}}


TOOLS_LIST_REQUEST = {"jsonrpc": "2.0", "id": 7, "method": "tools/list"}


def tools_list_result(*names: str) -> dict[str, Any]:
    tools = [{"name": n, "description": f"{n} tool", "inputSchema": {"type": "object"}} for n in names]
    return {"jsonrpc": "2.0", "id": 7, "result": {"tools": tools}}


# --- inspectors defined by "the embedding application" ----------------------------------------------


class ForbidWord:
    """Blocks tool calls whose arguments contain a word (sync hook, reads `event.texts()`)."""

    def __init__(self, word: str, name: str = "forbid-word") -> None:
        self.name = name
        self.word = word
        self.seen: list[Event] = []

    def request(self, event: Event) -> list[Finding]:
        self.seen.append(event)
        if event.method != "tools/call":
            return []
        return [
            Finding(self.name, "forbidden_word", "arguments mention a forbidden word", path=item.path)
            for item in event.texts()
            if self.word in item.text
        ]


class NeverAnswers:
    """An async hook that waits forever: only the configured timeout ends it."""

    name = "never-answers"

    async def request(self, event: Event) -> list[Finding]:
        await anyio.Event().wait()
        return []


# --- building a Guardian ---------------------------------------------------------------------------------


def test_public_api_exports() -> None:
    for name in guardian.__all__:
        assert hasattr(guardian, name), name
    assert {"Guardian", "Config", "Decision", "Finding", "Action", "Inspector", "Event", "Direction"} <= set(
        guardian.__all__
    )
    assert isinstance(guardian.__version__, str)
    assert isinstance(ForbidWord("x"), Inspector)  # the runtime-checkable protocol: anything with a name


def inspector_names(g: Guardian) -> list[str]:
    return [inspector.name for inspector in g.pipeline.inspectors]


def test_build_from_nothing_a_dict_a_config_and_files(tmp_path: Path) -> None:
    detectors = [  # the standard profile's, in the order they run
        "schema_validation", "hidden_characters", "secrets", "pii", "prompt_injection", "tool_poisoning",
        "argument_injection",
    ]
    # tool_access only when allow/deny lists are configured
    assert inspector_names(Guardian()) == ["limits", "pins", "catalog", *detectors]
    from_dict = Guardian(DENY_CONFIG)
    assert inspector_names(from_dict) == ["limits", "tool_access", "pins", "catalog", *detectors]
    assert from_dict.config.security.tools_deny == ("delete_*", "crash")
    assert Guardian(Config.from_dict(DENY_CONFIG)).config == from_dict.config

    yaml_path = tmp_path / "guardian.yaml"
    yaml_path.write_text(yaml.safe_dump(DENY_CONFIG), encoding="utf-8")
    json_path = tmp_path / "guardian.json"
    json_path.write_text(json.dumps(DENY_CONFIG), encoding="utf-8")
    for built in (Guardian(str(yaml_path)), Guardian(yaml_path), Guardian.from_file(json_path)):
        assert built.config.security.tools_deny == ("delete_*", "crash")
        assert inspector_names(built) == ["limits", "tool_access", "pins", "catalog", *detectors]


def test_bad_config_raises_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        Guardian({"security": {"tools": {"deny": "crash"}}})
    assert caught.value.problems == ["<dict>: $.security.tools.deny: 'crash' is not of type 'array'"]


def test_add_inspector_rejects_a_duplicate_name() -> None:
    g = Guardian()
    g.add_inspector(ForbidWord("x"))
    with pytest.raises(ValueError):
        g.add_inspector(ForbidWord("y"))


# --- plugin mode: inspect() ----------------------------------------------------------------------------------


async def test_inspect_allows_a_benign_message() -> None:
    g = Guardian(DENY_CONFIG)
    decision = await g.inspect(call("echo", {"text": "hello"}), direction="client_to_server")
    assert isinstance(decision, Decision)
    assert decision.action is Action.ALLOW
    assert decision.findings == []
    assert decision.reasons == []


async def test_inspect_blocks_a_denied_tool() -> None:
    g = Guardian(DENY_CONFIG)
    decision = await g.inspect(call("delete_repo", {"repo": "acme/site"}), direction=Direction.CLIENT_TO_SERVER)
    assert decision.action is Action.BLOCK
    assert decision.reasons == ["tool_access: tool is not allowed by gateway policy"]
    assert decision.event_id
    assert decision.to_dict()["decision"] == "block"
    # the same tool coming from the server side is not a client call
    assert (await g.inspect(call("delete_repo"), direction="server_to_client")).action is Action.ALLOW


async def test_inspect_accepts_json_text_and_bytes() -> None:
    g = Guardian(DENY_CONFIG)
    text = json.dumps(call("delete_repo"))
    assert (await g.inspect(text)).action is Action.BLOCK
    assert (await g.inspect(text.encode())).action is Action.BLOCK
    assert (await g.inspect(json.dumps(call("echo")).encode())).action is Action.ALLOW


async def test_inspect_redacts_a_tools_list_response_given_its_request() -> None:
    g = Guardian(DENY_CONFIG)
    response = tools_list_result("echo", "delete_repo", "crash", "add")
    decision = await g.inspect(response, direction="server_to_client", request=TOOLS_LIST_REQUEST)
    assert decision.action is Action.REDACT
    assert decision.reasons == ["tool_access: tool hidden from listing by gateway policy"]
    assert decision.patched is not None
    forwarded = decision.patched.model_dump(by_alias=True, exclude_unset=True)
    assert [tool["name"] for tool in forwarded["result"]["tools"]] == ["echo", "add"]
    assert forwarded["id"] == 7
    assert len(response["result"]["tools"]) == 4  # the caller's dict is untouched
    # Without the request, the gateway cannot know this result is a listing.
    assert (await g.inspect(response, direction="server_to_client")).action is Action.ALLOW


async def test_inspect_request_must_be_a_request() -> None:
    with pytest.raises(TypeError):
        await Guardian().inspect(tools_list_result("a"), direction="server_to_client", request=tools_list_result("b"))


async def test_inspect_applies_configured_limits() -> None:
    g = Guardian({"security": {"limits": {"max_string_length": 16}}})
    assert (await g.inspect(call("echo", {"text": "x" * 16}))).action is Action.ALLOW
    decision = await g.inspect(call("echo", {"text": "x" * 17}))
    assert decision.action is Action.BLOCK
    assert decision.findings[0].kind == "string_length"


async def test_custom_inspector_blocks_in_plugin_mode() -> None:
    g = Guardian()
    forbid = ForbidWord("drop table")
    g.add_inspector(forbid)
    nested = json.dumps({"sql": "please drop table users"})
    decision = await g.inspect(call("query", {"request": nested}))
    assert decision.action is Action.BLOCK
    assert decision.reasons == ["forbid-word: arguments mention a forbidden word"]
    assert decision.findings[0].to_dict()["path"] == "$.params.arguments.request<json>.sql"
    assert forbid.seen[-1].session.transport == "library"
    assert (await g.inspect(call("query", {"request": "select 1"}))).action is Action.ALLOW


async def test_per_inspector_settings_from_config() -> None:
    disabled = Guardian({"security": {"inspectors": {"forbid-word": {"enabled": False}}}})
    disabled.add_inspector(ForbidWord("bad"))
    assert "forbid-word" not in inspector_names(disabled)
    assert (await disabled.inspect(call("t", {"q": "bad"}))).action is Action.ALLOW

    monitored = Guardian({"security": {"inspectors": {"forbid-word": {"monitor": True}}}})
    monitored.add_inspector(ForbidWord("bad"))
    decision = await monitored.inspect(call("t", {"q": "bad"}))
    assert decision.action is Action.WARN
    assert decision.findings[0].monitor is True
    assert decision.reasons == []


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"security": {"inspectors": {"never-answers": {"timeout": 0.01}}}}, Action.BLOCK),
        ({"security": {"security_plugin_timeout": 0.01}}, Action.BLOCK),
        ({"security_profile": "basic", "security": {"security_plugin_timeout": 0.01}}, Action.WARN),
        ({"security": {"inspectors": {"never-answers": {"timeout": 0.01, "fail_closed": False}}}}, Action.WARN),
    ],
    ids=["inspector-timeout", "plugin-timeout", "basic-profile-fails-open", "inspector-fails-open"],
)
async def test_inspector_timeouts_and_failure_mode_from_config(config: dict[str, Any], expected: Action) -> None:
    g = Guardian(config)
    g.add_inspector(NeverAnswers())
    with anyio.fail_after(GUARD):
        decision = await g.inspect(call("echo"))
    assert decision.action is expected
    assert [(f.detector, f.kind) for f in decision.findings] == [("never-answers", "detector_error")]


# --- the ASGI app, in-process -------------------------------------------------------------------------------


@asynccontextmanager
async def serving(g: Guardian) -> AsyncIterator[str]:
    """Serve `g.asgi_app()` with uvicorn on a free loopback port; yield the `/mcp` URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))  # bound and listening before uvicorn starts: no port race
    sock.listen(64)
    port = sock.getsockname()[1]
    config = uvicorn.Config(g.asgi_app(), lifespan="on", log_level="warning", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            with anyio.fail_after(GUARD):
                while not server.started:
                    await anyio.sleep(0.01)  # poll interval while uvicorn runs its lifespan startup
            try:
                yield f"http://127.0.0.1:{port}/mcp"
            finally:
                server.should_exit = True
    finally:
        sock.close()


def demo_config(**security: Any) -> dict[str, Any]:
    return {
        "upstream_mcp_server": {"command": [sys.executable, str(DEMO_SERVER)], "cwd": str(REPO_ROOT)},
        "security": {"tools": {"deny": ["crash"]}, **security},
    }


def text_of(result: Any) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_asgi_app_in_process_relays_and_blocks(mode: str) -> None:
    g = Guardian(demo_config())
    forbid = ForbidWord("forbidden")
    g.add_inspector(forbid)
    with anyio.fail_after(GUARD * 2):
        async with serving(g) as url, Client(url, mode=mode) as client:  # type: ignore[arg-type]
            echoed = await client.call_tool("echo", {"text": "héllo ✓ through the gateway"})
            assert text_of(echoed) == "héllo ✓ through the gateway"

            # the custom inspector blocks end to end, with the stable code and its reason
            with pytest.raises(MCPError) as blocked:
                await client.call_tool("echo", {"text": "this is forbidden"})
            assert blocked.value.code == -32010
            assert blocked.value.data["guardian"]["reasons"] == ["forbid-word: arguments mention a forbidden word"]
            assert blocked.value.data["guardian"]["decision"] == "block"
            assert "forbidden" not in blocked.value.message  # the reason never echoes the content

            # the config's deny list: refused on call, hidden from the listing
            with pytest.raises(MCPError) as denied:
                await client.call_tool("crash", {})
            assert denied.value.code == -32010
            assert denied.value.data["guardian"]["reasons"] == ["tool_access: tool is not allowed by gateway policy"]
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert "echo" in names and "crash" not in names

            # the session is still usable after blocks
            again = await client.call_tool("echo", {"text": "still here"})
            assert text_of(again) == "still here"
    assert any(event.target == "echo" for event in forbid.seen)


# --- examples/embed.py -----------------------------------------------------------------------------------------


def test_embed_example_runs() -> None:
    result = subprocess.run(
        [sys.executable, str(EMBED_EXAMPLE)], capture_output=True, text=True, cwd=REPO_ROOT, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:4] == [
        "echo call: allow",
        "delete_repo call: block (tool_access: tool is not allowed by gateway policy)",
        "query call: block (no-production-hosts: production hosts are off limits)",
        "tools/list result: redact (tool_access: tool hidden from listing by gateway policy)",
    ]
    assert "  tools forwarded: echo, search" in lines
    assert "lookup result: redact (email-redactor: e-mail address redacted)" in lines
    assert "  forwarded text: Contact [EMAIL] or [EMAIL]." in lines
    findings = [json.loads(line.removeprefix("  finding: ")) for line in lines if line.startswith("  finding: ")]
    assert [(f["detector"], f["path"], f["span"]) for f in findings] == [
        ("email-redactor", "$.result.content[0].text", [8, 28]),
        ("email-redactor", "$.result.content[0].text", [32, 47]),
    ]
    assert "@" not in result.stdout.split("forwarded text:")[1].split("\n")[0]
