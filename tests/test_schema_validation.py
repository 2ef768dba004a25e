"""Schema validation: messages against the official MCP schema of the session's protocol version,
`tools/call` arguments against the tool's `inputSchema`, `structuredContent` against its
`outputSchema`; invalid requests answered -32602/-32600 with the path of the first violation
(never the value), invalid results blocked; bad tool schemas tolerated; validators cached.

Messages and tool definitions here were written for this project, in the shape of real traffic
(the demo server's `add`, the spec's examples); the schemas are the shipped `schemas/mcp` files.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import random
import re
import sys
import urllib.request
from pathlib import Path
from typing import Any

import anyio
import pytest
from jsonschema import Draft4Validator, Draft7Validator, Draft202012Validator
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp_types import JSONRPCRequest

from guardian import Action, ConfigError, Decision, Guardian
from guardian.events import Direction
from guardian.inspectors.fast_schema import Unsupported, compile_check
from guardian.inspectors.schema_validation import (
    HANDSHAKE_VERSIONS,
    MODERN_VERSIONS,
    SCHEMA_DIR,
    VERSION_META_KEY,
    VERSIONS,
    ProtocolSchemas,
    SchemaValidationInspector,
    ToolSchemas,
    client_path,
    resolve_version,
)
from tests.support.gateway import gateway_env

pytestmark = pytest.mark.anyio

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_SERVER = REPO_ROOT / "examples" / "demo_server.py"
NAME = SchemaValidationInspector.name
S2C = Direction.SERVER_TO_CLIENT
LATEST = HANDSHAKE_VERSIONS[-1]
MODERN = MODERN_VERSIONS[-1]

ADD_TOOL: dict[str, Any] = {
    "name": "add",
    "description": "Add two numbers.",
    "inputSchema": {
        "type": "object",
        "properties": {"a": {"type": "number"}, "b": {"type": "number"},
                       "unit": {"type": "string", "enum": ["m", "km"]}},
        "required": ["a", "b"],
    },
    "outputSchema": {"type": "object", "properties": {"result": {"type": "number"}}, "required": ["result"]},
}
SEARCH_TOOL: dict[str, Any] = {
    "name": "search",
    "description": "Search the catalogue.",
    "inputSchema": {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {
            "query": {"type": "string", "minLength": 1, "maxLength": 200},
            "limit": {"type": "integer", "minimum": 1, "maximum": 50},
            "sort": {"anyOf": [{"type": "string", "enum": ["relevance", "date"]}, {"type": "null"}]},
            "filters": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        "required": ["query"],
        "additionalProperties": False,
    },
}


# --- helpers -------------------------------------------------------------------------------------------------


def guardian(**options: Any) -> tuple[Guardian, SchemaValidationInspector]:
    """A gateway with the schema inspector (options as a config block would give them); pins off,
    since these tests relist changed definitions on purpose."""
    g = Guardian({"security": {"inspectors": {NAME: options, "pins": {"enabled": False}}}})
    wired = next(i for i in g.pipeline.inspectors if i.name == NAME)
    assert isinstance(wired, SchemaValidationInspector)  # the gateway builds it from the config block
    return g, wired


def request(method: str, params: dict[str, Any] | None = None, id: int = 1) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        message["params"] = params
    return message


def notification(method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    return message


def response(result: dict[str, Any], id: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id, "result": result}


def call(name: str, arguments: Any, **params: Any) -> dict[str, Any]:
    return request("tools/call", {"name": name, "arguments": arguments, **params})


async def list_tools(g: Guardian, *tools: dict[str, Any], version: str | None = None) -> Decision:
    listing: dict[str, Any] = {"tools": list(tools)}
    params: dict[str, Any] | None = None
    if version in MODERN_VERSIONS:
        listing |= {"resultType": "complete", "ttlMs": 0, "cacheScope": "public"}
        params = {"_meta": modern_meta(version)}
    return await g.inspect(response(listing, id=7), S2C, request=request("tools/list", params, id=7))


async def handshake(g: Guardian, version: str) -> None:
    """An `initialize` exchange that settles `version` for the (embedded) session."""
    init = request("initialize", {"protocolVersion": version, "capabilities": {},
                                  "clientInfo": {"name": "test-client", "version": "1.0"}}, id=0)
    assert (await g.inspect(init)).action is Action.ALLOW
    result = {"protocolVersion": version, "capabilities": {"tools": {}}, "serverInfo": {"name": "s", "version": "1"}}
    assert (await g.inspect(response(result, id=0), S2C, request=init)).action is Action.ALLOW


def modern_meta(version: str = MODERN) -> dict[str, Any]:
    return {VERSION_META_KEY: version, "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "test-client", "version": "1.0"}}


def mine(decision: Decision) -> list[Any]:
    return [f for f in decision.findings if f.detector == NAME]


def wire_error(decision: Decision, id: int = 1) -> dict[str, Any]:
    error: dict[str, Any] = decision.block_error(id).model_dump(exclude_none=True)
    return error


# --- the shipped schemas -------------------------------------------------------------------------------------


def test_every_carried_version_ships_with_its_source_and_hash_in_the_readme() -> None:
    readme = (SCHEMA_DIR / "README.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `([\d-]+)` .*`([0-9a-f]{64})` \|$", readme, flags=re.MULTILINE))
    assert sorted(rows) == sorted(VERSIONS)
    for version in VERSIONS:
        data = (SCHEMA_DIR / version / "schema.json").read_bytes()
        assert hashlib.sha256(data).hexdigest() == rows[version], f"{version}: file differs from the README"
    assert "modelcontextprotocol/modelcontextprotocol" in readme and "MIT" in readme
    assert "MIT License" in (SCHEMA_DIR / "LICENSE").read_text(encoding="utf-8")


@pytest.mark.parametrize("version", VERSIONS)
def test_each_schema_is_valid_under_the_draft_it_declares(version: str) -> None:
    document = json.loads((SCHEMA_DIR / version / "schema.json").read_text(encoding="utf-8"))
    expected = Draft7Validator if version < "2025-11-25" else Draft202012Validator
    assert ProtocolSchemas().spec(version).validator_class is expected
    expected.check_schema(document)


def test_versions_resolve_within_their_era() -> None:
    assert resolve_version("2025-06-18", modern=False) == "2025-06-18"
    assert resolve_version(None, modern=False) == LATEST
    assert resolve_version("2025-09-01", modern=False) == "2025-06-18"  # newest shipped not newer than it
    assert resolve_version("2024-01-01", modern=False) == "2024-11-05"
    assert resolve_version("2027-01-01", modern=False) == LATEST  # a handshake session never gets modern rules
    assert resolve_version("2027-01-01", modern=True) == MODERN


# --- valid traffic passes under every version ----------------------------------------------------------------


def handshake_conversation(version: str) -> list[tuple[dict[str, Any], Direction, dict[str, Any] | None]]:
    """(message, direction, answered request) for a session of `version`, all valid under it."""
    c2s, s2c = Direction.CLIENT_TO_SERVER, S2C
    add = call("add", {"a": 1, "b": 2.5}, _meta={"progressToken": "p-1"})
    read = request("resources/read", {"uri": "demo://readme"}, id=2)
    prompt = request("prompts/get", {"name": "greet", "arguments": {"name": "Ann"}}, id=3)
    sample = request("sampling/createMessage", {
        "messages": [{"role": "user", "content": {"type": "text", "text": "Summarise the report."}}],
        "maxTokens": 100}, id=4)
    ping = request("ping", id=5)
    subscribe = request("resources/subscribe", {"uri": "demo://readme"}, id=6)
    content = [{"type": "text", "text": "3.5"}]
    conversation = [
        (notification("notifications/initialized"), c2s, None),
        (add, c2s, None),
        (notification("notifications/progress", {"progressToken": "p-1", "progress": 1, "total": 2}), s2c, None),
        (notification("notifications/message", {"level": "info", "data": "adding"}), s2c, None),
        (response({"content": content, "structuredContent": {"result": 3.5}, "isError": False}), s2c, add),
        (read, c2s, None),
        (response({"contents": [{"uri": "demo://readme", "mimeType": "text/markdown", "text": "# Demo"}]}, 2),
         s2c, read),
        (prompt, c2s, None),
        (response({"messages": [{"role": "user", "content": {"type": "text", "text": "Greet Ann."}}]}, 3),
         s2c, prompt),
        (sample, s2c, None),
        (response({"role": "assistant", "content": {"type": "text", "text": "Fine."}, "model": "m-1"}, 4), c2s,
         sample),
        (ping, c2s, None),
        (response({}, 5), s2c, ping),
        (subscribe, c2s, None),
        (response({}, 6), s2c, subscribe),
        (notification("notifications/cancelled", {"requestId": 9, "reason": "user"}), c2s, None),
    ]
    if version >= "2025-11-25":
        task_call = call("add", {"a": 1, "b": 2}, task={"ttl": 60000})
        task = {"taskId": "t-1", "status": "working", "createdAt": "2026-01-01T00:00:00Z",
                "lastUpdatedAt": "2026-01-01T00:00:00Z", "ttl": 60000}
        conversation += [(task_call, c2s, None), (response({"task": task}), s2c, task_call)]
    return conversation


def modern_conversation() -> list[tuple[dict[str, Any], Direction, dict[str, Any] | None]]:
    c2s, s2c = Direction.CLIENT_TO_SERVER, S2C
    meta = {"_meta": modern_meta()}
    discover = request("server/discover", meta, id=0)
    add = call("add", {"a": 1, "b": 2}, **meta)
    ask = call("add", {"a": 1, "b": 2}, **meta, requestState="s-1")
    read = request("resources/read", {**meta, "uri": "demo://readme"}, id=2)
    prompt = request("prompts/get", {**meta, "name": "greet", "arguments": {"name": "Ann"}}, id=3)
    cache = {"resultType": "complete", "ttlMs": 0, "cacheScope": "private"}
    return [
        (discover, c2s, None),
        (response({**cache, "supportedVersions": [MODERN], "capabilities": {"tools": {}}}, 0), s2c, discover),
        (add, c2s, None),
        (notification("notifications/progress", {"progressToken": 1, "progress": 1}), s2c, None),
        (response({"content": [{"type": "text", "text": "3"}], "structuredContent": {"result": 3},
                   "resultType": "complete"}), s2c, add),
        (ask, c2s, None),
        (response({"resultType": "input_required", "requestState": "s-2"}), s2c, ask),
        (read, c2s, None),
        (response({**cache, "contents": [{"uri": "demo://readme", "text": "# Demo"}]}, 2), s2c, read),
        (prompt, c2s, None),
        (response({"resultType": "complete", "messages": [
            {"role": "user", "content": {"type": "text", "text": "Greet Ann."}}]}, 3), s2c, prompt),
    ]


@pytest.mark.parametrize("version", VERSIONS)
async def test_valid_traffic_passes_under_each_shipped_version(version: str) -> None:
    g, inspector = guardian(mode="full")
    if version in MODERN_VERSIONS:
        conversation = modern_conversation()
    else:
        await handshake(g, version)
        conversation = handshake_conversation(version)
    assert (await list_tools(g, ADD_TOOL, version=version)).action is Action.ALLOW
    for message, direction, answered in conversation:
        decision = await g.inspect(message, direction, request=answered)
        assert not mine(decision), (message, [f.message for f in mine(decision)])
    # every message really was checked against this version's schema (nothing skipped)
    validated = {version_ for version_, _ in inspector.schemas._validators}
    assert validated == {version}


async def test_the_same_message_is_judged_by_the_negotiated_version() -> None:
    add = call("add", {"a": 1, "b": 2})
    audio = response({"content": [{"type": "audio", "data": "UklGRg==", "mimeType": "audio/wav"}],
                      "structuredContent": {"result": 3}})
    old, _ = guardian()
    await handshake(old, "2024-11-05")  # audio content arrived in 2025-03-26
    await list_tools(old, ADD_TOOL)
    blocked = await old.inspect(audio, S2C, request=add)
    assert blocked.action is Action.BLOCK
    assert mine(blocked)[0].message.startswith("invalid tools/call result: $.result.content[0]")
    newer, _ = guardian()
    await handshake(newer, "2025-03-26")
    await list_tools(newer, ADD_TOOL)
    assert (await newer.inspect(audio, S2C, request=add)).action is Action.ALLOW


async def test_a_modern_request_is_judged_by_the_version_in_its_meta() -> None:
    g, _ = guardian()
    meta = {VERSION_META_KEY: MODERN}  # the 2026-07-28 schema also requires the client's capabilities
    decision = await g.inspect(call("add", {"a": 1, "b": 2}, _meta=meta))
    assert decision.action is Action.BLOCK
    error = wire_error(decision)["error"]
    assert error["code"] == -32602
    assert error["message"] == \
        'invalid params: $.params._meta["io.modelcontextprotocol/clientCapabilities"]: missing required property'


# --- invalid requests: -32602 / -32600 with the path ---------------------------------------------------------


@pytest.mark.parametrize(("params", "path", "problem"), [
    ({"arguments": {"a": 1, "b": 2}}, "$.params.name", "missing required property"),
    ({"name": 42, "arguments": {}}, "$.params.name", "expected string, got integer"),
    ({"name": "add", "arguments": ["a", "b"]}, "$.params.arguments", "expected object, got array"),
])
async def test_invalid_tool_calls_are_answered_invalid_params_with_the_path(
    params: dict[str, Any], path: str, problem: str
) -> None:
    g, _ = guardian()
    decision = await g.inspect(request("tools/call", params))
    assert decision.action is Action.BLOCK
    error = wire_error(decision)["error"]
    assert error["code"] == -32602
    assert error["message"] == f"invalid params: {path}: {problem}"
    assert error["data"]["guardian"]["path"] == path
    assert [f.kind for f in mine(decision)] == ["invalid_params"]


async def test_a_request_invalid_outside_its_params_is_answered_invalid_request() -> None:
    g, _ = guardian()
    # An embedding application can hand over a message the wire codec would have refused.
    odd = JSONRPCRequest.model_construct(jsonrpc="2.0", id=1.5, method="tools/call", params={"name": "add"})
    decision = await g.inspect(odd)
    error = wire_error(decision)["error"]
    assert error["code"] == -32600
    assert error["message"] == "invalid request: $.id: expected string or integer, got number"
    assert [f.kind for f in mine(decision)] == ["invalid_request"]


async def test_inspected_mode_checks_only_the_inspected_methods_and_full_checks_all() -> None:
    subscribe = request("resources/subscribe", {})  # `uri` is required
    progress = notification("notifications/progress", {"progress": 1})  # `progressToken` is required
    standard, _ = guardian()
    assert (await standard.inspect(subscribe)).action is Action.ALLOW
    assert (await standard.inspect(progress, S2C)).action is Action.ALLOW
    assert (await standard.inspect(request("resources/read", {}))).action is Action.BLOCK
    full, _ = guardian(mode="full")
    blocked = await full.inspect(subscribe)
    assert wire_error(blocked)["error"]["message"] == "invalid params: $.params.uri: missing required property"
    dropped = await full.inspect(progress, S2C)
    assert dropped.action is Action.BLOCK
    assert [f.message for f in mine(dropped)] == [
        "invalid notifications/progress notification: $.params.progressToken: missing required property"]


async def test_mode_off_still_validates_arguments() -> None:
    g, _ = guardian(mode="off")
    await list_tools(g, ADD_TOOL)
    assert (await g.inspect(request("tools/call", {"arguments": {}}))).action is Action.ALLOW
    assert (await g.inspect(call("add", {"a": 1}))).action is Action.BLOCK


async def test_unknown_methods_pass() -> None:
    g, _ = guardian(mode="full")
    assert (await g.inspect(request("vendor/custom", {"anything": [1, 2]}))).action is Action.ALLOW
    assert (await g.inspect(notification("notifications/vendor", {"x": 1}))).action is Action.ALLOW


# --- arguments against the inputSchema ----------------------------------------------------------------------


@pytest.mark.parametrize(("arguments", "path", "problem"), [
    ({"a": 1}, "$.params.arguments.b", "missing required property"),
    ({"a": "Kx9-private-value", "b": 2}, "$.params.arguments.a", "expected number, got string"),
    ({"a": 1, "b": 2, "unit": "Kx9-private-value"}, "$.params.arguments.unit", "not one of the allowed values"),
])
async def test_arguments_violating_the_input_schema_are_blocked_with_the_path_not_the_value(
    arguments: dict[str, Any], path: str, problem: str
) -> None:
    g, _ = guardian()
    await list_tools(g, ADD_TOOL)
    decision = await g.inspect(call("add", arguments))
    assert decision.action is Action.BLOCK
    error = wire_error(decision)["error"]
    assert error["code"] == -32602
    assert error["message"] == f"arguments do not match the tool's input schema: {path}: {problem}"
    assert error["data"]["guardian"]["path"] == path
    record = json.dumps([error, decision.to_dict()])
    assert "Kx9-private-value" not in record  # neither the client nor the audit log sees the value


@pytest.mark.parametrize(("arguments", "path", "problem"), [
    ({"query": ""}, "$.params.arguments.query", "shorter than the minimum length (1)"),
    ({"query": "lamps", "limit": 500}, "$.params.arguments.limit", "greater than the maximum (50)"),
    ({"query": "lamps", "limit": 2.5}, "$.params.arguments.limit", "expected integer, got number"),
    ({"query": "lamps", "sort": 3}, "$.params.arguments.sort", "expected string or null, got integer"),
    ({"query": "lamps", "sort": "price"}, "$.params.arguments.sort", "not one of the allowed values"),
    ({"query": "lamps", "page": 2}, "$.params.arguments", "unexpected property"),
    ({"query": "lamps", "filters": {"colour & size!": 1}}, "$.params.arguments.filters[…]",
     "expected string, got integer"),
])
async def test_draft07_tool_schemas_are_enforced(arguments: dict[str, Any], path: str, problem: str) -> None:
    g, _ = guardian()
    await list_tools(g, SEARCH_TOOL)
    decision = await g.inspect(call("search", arguments))
    message = wire_error(decision)["error"]["message"]
    assert message == f"arguments do not match the tool's input schema: {path}: {problem}"


async def test_valid_arguments_and_optional_null_pass() -> None:
    g, _ = guardian()
    await list_tools(g, ADD_TOOL, SEARCH_TOOL)
    assert (await g.inspect(call("add", {"a": 1, "b": 2.5, "unit": "km"}))).action is Action.ALLOW
    assert (await g.inspect(call("search", {"query": "lamps", "limit": 5.0, "sort": None}))).action is Action.ALLOW
    assert (await g.inspect(request("tools/call", {"name": "search", "arguments": {"query": "x"}}))).action \
        is Action.ALLOW


async def test_a_call_without_arguments_is_checked_as_an_empty_object() -> None:
    g, _ = guardian()
    await list_tools(g, ADD_TOOL)
    decision = await g.inspect(request("tools/call", {"name": "add"}))
    assert wire_error(decision)["error"]["message"].endswith("$.params.arguments.a: missing required property")


async def test_a_tool_never_listed_passes() -> None:
    g, _ = guardian()
    await list_tools(g, ADD_TOOL)
    assert (await g.inspect(call("unlisted", {"anything": [1, {"x": None}]}))).action is Action.ALLOW


async def test_warn_forwards_and_records() -> None:
    g, _ = guardian(action="warn")
    await list_tools(g, ADD_TOOL)
    decision = await g.inspect(call("add", {"a": 1}))
    assert decision.action is Action.WARN
    assert [f.kind for f in mine(decision)] == ["invalid_arguments"]


async def test_arguments_false_turns_the_argument_check_off() -> None:
    g, _ = guardian(arguments=False)
    await list_tools(g, ADD_TOOL)
    assert (await g.inspect(call("add", {"a": "x"}))).action is Action.ALLOW


# --- results: the protocol schema and the outputSchema -------------------------------------------------------


async def test_structured_content_violating_the_output_schema_is_blocked_with_the_path() -> None:
    g, _ = guardian()
    await list_tools(g, ADD_TOOL)
    add = call("add", {"a": 1, "b": 2})
    text = [{"type": "text", "text": "3"}]
    wrong = await g.inspect(response({"content": text, "structuredContent": {"result": "Kx9-three"}}), S2C,
                            request=add)
    assert wrong.action is Action.BLOCK
    error = wire_error(wrong)["error"]
    assert error["code"] == -32010  # a blocked answer: the client hears the gateway's block, with the reason
    assert error["data"]["guardian"]["reasons"] == [
        "schema_validation: structured content does not match the tool's output schema: "
        "$.result.structuredContent.result: expected number, got string"]
    assert "Kx9-three" not in json.dumps([error, wrong.to_dict()])
    missing = await g.inspect(response({"content": text}), S2C, request=add)
    assert [f.message for f in mine(missing)] == [
        "structured content does not match the tool's output schema: $.result.structuredContent: "
        "missing (the tool declares one)"]
    good = await g.inspect(response({"content": text, "structuredContent": {"result": 3}}), S2C, request=add)
    assert good.action is Action.ALLOW
    failed = await g.inspect(response({"content": text, "isError": True}), S2C, request=add)
    assert failed.action is Action.ALLOW  # a tool error carries no structure


async def test_invalid_results_are_blocked_with_the_path() -> None:
    g, _ = guardian()
    listing = await list_tools(g, {"name": "broken", "description": "no input schema"})
    assert [f.message for f in mine(listing)] == [
        "invalid tools/list result: $.result.tools[0].inputSchema: missing required property"]
    read = request("resources/read", {"uri": "demo://readme"})
    unread = await g.inspect(response({"contents": [{"uri": "demo://readme"}]}), S2C, request=read)
    assert unread.action is Action.BLOCK
    assert mine(unread)[0].message.startswith("invalid resources/read result: $.result.contents[0]")
    add = call("add", {"a": 1, "b": 2})
    untyped = await g.inspect(response({"content": [{"type": "text"}]}), S2C, request=add)
    assert [f.message for f in mine(untyped)] == [  # the `type` singles out TextContent among the shapes
        "invalid tools/call result: $.result.content[0].text: missing required property"]


async def test_a_task_augmented_call_is_answered_with_a_task() -> None:
    g, _ = guardian()
    await handshake(g, "2025-11-25")
    task_call = call("add", {"a": 1, "b": 2}, task={"ttl": 1000})
    plain = await g.inspect(response({"content": [{"type": "text", "text": "3"}]}), S2C, request=task_call)
    assert [f.message for f in mine(plain)] == ["invalid tools/call result: $.result.task: missing required property"]


async def test_server_requests_are_validated_too() -> None:
    g, _ = guardian()
    decision = await g.inspect(request("sampling/createMessage", {"messages": []}), S2C)
    error = wire_error(decision)["error"]  # answered to the server that sent it
    assert error["code"] == -32602
    assert error["message"] == "invalid params: $.params.maxTokens: missing required property"


# --- bad tool schemas and the validator cache ----------------------------------------------------------------


@pytest.mark.parametrize("schema", [
    {"type": "objekt"},  # not a JSON Schema type
    {"type": "object", "properties": {"a": {"type": "string", "pattern": "(unclosed"}}},
    "a schema must be an object",
    {"type": "object", "properties": {"a": {"$ref": "https://schemas.example.com/a.json"}}},  # never fetched
])
async def test_a_bad_input_schema_is_skipped_with_one_warning(
    schema: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a $ref was fetched over the network")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    g, inspector = guardian()
    await list_tools(g, {"name": "odd", "inputSchema": schema})
    with caplog.at_level(logging.WARNING, logger="guardian.inspectors.schema_validation"):
        for _ in range(3):
            decision = await g.inspect(call("odd", {"a": "value"}))
            assert not mine(decision)
            assert not any(f.kind == "detector_error" for f in decision.findings)
    warnings = [r for r in caplog.records if r.name == "guardian.inspectors.schema_validation"]
    assert len(warnings) == 1 and "inputSchema of tool 'odd'" in warnings[0].getMessage()
    assert inspector.tool_schemas.compilations == 1


async def test_validators_are_compiled_once_and_reused() -> None:
    g, inspector = guardian()
    await list_tools(g, ADD_TOOL)
    assert inspector.schemas.compilations == 1  # ListToolsResult
    for n in range(5):
        assert (await g.inspect(call("add", {"a": n, "b": 1}))).action is Action.ALLOW
    assert inspector.tool_schemas.compilations == 1
    assert inspector.schemas.compilations == 2  # and CallToolRequest, each once
    await list_tools(g, copy.deepcopy(ADD_TOOL))  # listed again, same schema: found by its hash
    assert (await g.inspect(call("add", {"a": 1, "b": 1}))).action is Action.ALLOW
    assert inspector.tool_schemas.compilations == 1
    changed = copy.deepcopy(ADD_TOOL)
    changed["inputSchema"]["required"] = ["a"]
    await list_tools(g, changed)
    assert (await g.inspect(call("add", {"a": 1}))).action is Action.ALLOW
    assert inspector.tool_schemas.compilations == 2


def test_the_tool_schema_cache_is_bounded() -> None:
    cache = ToolSchemas(max_entries=2)
    schemas = [{"type": "object", "required": [name]} for name in ("a", "b", "c")]
    for schema in schemas:
        assert cache.validator(schema, "t") is not None
    assert cache.compilations == 3
    cache.validator(copy.deepcopy(schemas[2]), "t")
    assert cache.compilations == 3
    cache.validator(copy.deepcopy(schemas[0]), "t")  # evicted: compiled again
    assert cache.compilations == 4


# --- options and paths ---------------------------------------------------------------------------------------


def test_options_default_to_the_standard_profile_and_are_checked() -> None:
    policy = SchemaValidationInspector.from_options({}).policy
    assert (policy.mode, policy.arguments, policy.structured_content, policy.action) == (
        "inspected", True, True, Action.BLOCK)
    full = SchemaValidationInspector.from_options({"mode": "full", "arguments": False, "action": "warn"}).policy
    assert (full.mode, full.arguments, full.action) == ("full", False, Action.WARN)
    with pytest.raises(ConfigError) as bad:
        SchemaValidationInspector.from_options({"mode": "strict", "action": "redact", "structured_content": "yes",
                                                "cache": 10})
    assert bad.value.problems == [
        "$.security.inspectors.schema_validation.mode: 'strict' is not one of off, inspected, full",
        "$.security.inspectors.schema_validation.structured_content: 'yes' is not true or false",
        "$.security.inspectors.schema_validation.action: redact is not supported: use block or warn",
        "$.security.inspectors.schema_validation.cache: unknown option",
    ]


def test_paths_shown_to_clients_hide_keys_that_do_not_look_like_names() -> None:
    assert client_path(("params", "arguments", "items", 2, "sku")) == "$.params.arguments.items[2].sku"
    assert client_path(("params", "_meta", VERSION_META_KEY)) == f'$.params._meta["{VERSION_META_KEY}"]'
    assert client_path(("result", "structuredContent", "my password is hunter2")) == "$.result.structuredContent[…]"
    assert client_path(("a", "x" * 80)) == "$.a[…]"


# --- the compiled check agrees with jsonschema ---------------------------------------------------------------


_NOISE: list[Any] = [None, True, False, 0, 1, 1.0, -2.5, 10**20, "", "x", "text", [], {}, [1, "a"], {"k": 1},
                     {"type": "text"}]


def _resolve(root: Any, ref: str) -> Any:
    target = root
    for token in ref[2:].split("/") if ref != "#" else ():
        target = target[token.replace("~1", "/").replace("~0", "~")]
    return target


def _sample(schema: Any, root: Any, rnd: random.Random, depth: int = 0) -> Any:
    """A random instance shaped by `schema`, off-shape now and then, to tell validators apart."""
    if depth > 6 or rnd.random() < 0.07 or not isinstance(schema, dict):
        return copy.deepcopy(rnd.choice(_NOISE))
    if "$ref" in schema and rnd.random() < 0.85:
        return _sample(_resolve(root, schema["$ref"]), root, rnd, depth + 1)
    if "const" in schema:
        return copy.deepcopy(schema["const"])
    if "enum" in schema:
        return copy.deepcopy(rnd.choice(schema["enum"]))
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return _sample(rnd.choice(schema[key]), root, rnd, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = rnd.choice(kind)
    if kind == "object" or "properties" in schema:
        required = set(schema.get("required", []))
        out = {name: _sample(sub, root, rnd, depth + 1) for name, sub in schema.get("properties", {}).items()
               if (name in required and rnd.random() < 0.95) or rnd.random() < 0.35}
        if rnd.random() < 0.15:
            out[rnd.choice(["extra", "x-1", "meta data"])] = _sample(
                schema.get("additionalProperties", {}), root, rnd, depth + 1)
        return out
    if kind == "array":
        return [_sample(schema.get("items", {}), root, rnd, depth + 1) for _ in range(rnd.randint(0, 3))]
    choices: dict[str, list[Any]] = {
        "string": ["", "a", "text/plain", "https://x.example/y", "2026-01-01T00:00:00Z", "ab12"],
        "integer": [0, 1, -1, 7, 2.0, 10**20, True], "number": [0, 0.5, -1.5, 3, 1e300, False],
        "boolean": [True, False, 0], "null": [None],
    }
    return copy.deepcopy(rnd.choice(choices.get(str(kind), _NOISE)))


@pytest.mark.parametrize("version", VERSIONS)
def test_the_compiled_check_agrees_with_jsonschema_on_every_definition(version: str) -> None:
    schemas = ProtocolSchemas()
    spec = schemas.spec(version)
    rnd = random.Random(f"mcp-{version}")
    outcomes = {True: 0, False: 0}
    for name in spec.definitions:
        compiled = schemas.validator(version, name)
        assert compiled.check is not None, f"{name} is not compiled"
        for _ in range(12):
            instance = _sample(spec.definitions[name], spec.document, rnd)
            expected = compiled.validator.is_valid(instance)
            assert compiled.check(instance) is expected, (name, instance)
            outcomes[expected] += 1
    assert min(outcomes.values()) > 100, outcomes  # both verdicts were exercised


TOOL_SCHEMAS: list[dict[str, Any]] = [
    ADD_TOOL["inputSchema"], SEARCH_TOOL["inputSchema"],
    {"type": "object", "properties": {"n": {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 10},
                                      "tags": {"type": "array", "items": {"type": "string", "pattern": "^[a-z]+$"},
                                               "minItems": 1, "maxItems": 2}},
     "patternProperties": {"^x-": {"type": "boolean"}}, "additionalProperties": False,
     "minProperties": 1, "maxProperties": 3, "dependentRequired": {"n": ["tags"]}},
    {"$defs": {"node": {"type": "object", "required": ["value"], "properties": {
        "value": {"type": "number"}, "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}},
     "$ref": "#/$defs/node", "properties": {"value": {"maximum": 5}}},  # 2020-12: $ref and its siblings both apply
    {"$schema": "http://json-schema.org/draft-07/schema#", "definitions": {"s": {"type": "string"}},
     "$ref": "#/definitions/s", "maxLength": 1},  # draft-07: siblings of $ref are ignored
    {"type": "object", "properties": {"mode": {"const": 1}, "flag": {"enum": [1, "1", True, None, [1], {"a": 1}]},
                                      "choice": {"oneOf": [{"type": "integer"}, {"type": "number", "minimum": 2}]},
                                      "other": {"not": {"type": "string"}}}},
]


def test_the_compiled_check_agrees_with_jsonschema_on_tool_schemas() -> None:
    rnd = random.Random("tools")
    cache = ToolSchemas()
    extra: list[Any] = [{"mode": True}, {"mode": 1.0}, {"flag": 1.0}, {"flag": False}, {"flag": [True]},
                        {"flag": {"a": 1.0}}, {"choice": 3}, {"choice": 2.5}, {"x-debug": 1}, {"n": 10},
                        {"value": 5, "children": [{"value": 7}]}, "ab", "a"]
    for schema in TOOL_SCHEMAS:
        compiled = cache.validator(schema, "test")
        assert compiled is not None and compiled.check is not None
        for instance in [_sample(schema, schema, rnd) for _ in range(300)] + extra:
            assert compiled.check(instance) is compiled.validator.is_valid(instance), (schema, instance)


@pytest.mark.parametrize(("validator_class", "schema"), [
    (Draft202012Validator, {"if": {"type": "string"}, "then": {"minLength": 2}}),
    (Draft7Validator, {"items": [{"type": "string"}]}),
    (Draft202012Validator, {"$ref": "https://schemas.example.com/a.json"}),
    (Draft202012Validator, {"properties": {"a": {"$id": "https://example.com/a", "type": "string"}}}),
    (Draft202012Validator, {"multipleOf": 0.1}),
    (Draft4Validator, {"type": "integer"}),
])
def test_schemas_the_compiler_does_not_cover_are_left_to_jsonschema(validator_class: Any, schema: Any) -> None:
    with pytest.raises(Unsupported):
        compile_check(validator_class, schema)


async def test_an_uncompiled_schema_is_still_enforced_by_jsonschema() -> None:
    g, inspector = guardian()
    conditional = {"type": "object", "properties": {"unit": {"type": "string"}, "value": {"type": "number"}},
                   "if": {"properties": {"unit": {"const": "percent"}}},
                   "then": {"properties": {"value": {"maximum": 100}}}}
    await list_tools(g, {"name": "measure", "inputSchema": conditional})
    assert (await g.inspect(call("measure", {"unit": "percent", "value": 50}))).action is Action.ALLOW
    decision = await g.inspect(call("measure", {"unit": "percent", "value": 150}))
    assert wire_error(decision)["error"]["message"].endswith("$.params.arguments.value: greater than the maximum (100)")
    compiled = inspector.tool_schemas.validator(conditional, "measure")
    assert compiled is not None and compiled.check is None


# --- end to end: a stdio wrap of the demo server -------------------------------------------------------------

WRAP_WITH_SCHEMA_VALIDATION = """
import json, sys
import anyio
from guardian import Guardian
from guardian.inspectors.schema_validation import SchemaValidationInspector

config, options = json.loads(sys.argv[1]), json.loads(sys.argv[2])
g = Guardian(config)
if not any(i.name == SchemaValidationInspector.name for i in g.pipeline.inspectors):
    g.add_inspector(SchemaValidationInspector.from_options(options, catalog=g.catalog))
sys.exit(0 if anyio.run(g.run_stdio) is None else 1)
"""
"""`guardian wrap -- python demo_server.py`, with the inspector added the way an embedding application would."""


@pytest.mark.parametrize("mode", ["legacy", "auto"])  # handshake era (initialize) and 2026-07-28 (server/discover)
async def test_end_to_end_through_a_stdio_wrap_of_the_demo_server(mode: str, tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    options = {"mode": "full"}
    config = {"upstream_mcp_server": {"command": [sys.executable, str(DEMO_SERVER)], "cwd": str(REPO_ROOT)},
              "monitoring": {"audit_log": str(audit), "audit_all_messages": True},
              "security": {"inspectors": {NAME: options}}}
    params = StdioServerParameters(command=sys.executable, cwd=REPO_ROOT, env=gateway_env(), args=[
        "-c", WRAP_WITH_SCHEMA_VALIDATION, json.dumps(config), json.dumps(options)])
    with anyio.fail_after(60):
        async with Client(params, mode=mode) as client:  # type: ignore[arg-type]
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert {"add", "echo"} <= names
            added = await client.call_tool("add", {"a": 1, "b": 2.5})
            assert added.structured_content == {"result": 3.5}
            with pytest.raises(MCPError) as refused:
                await client.call_tool("add", {"a": "Kx9-not-a-number", "b": 2})
            assert refused.value.code == -32602
            assert refused.value.message == \
                "arguments do not match the tool's input schema: $.params.arguments.a: expected number, got string"
            assert "Kx9-not-a-number" not in json.dumps(refused.value.data)
            echoed = await client.call_tool("echo", {"text": "still here"})
            assert echoed.content[0].text == "still here"  # type: ignore[union-attr]
            await client.read_resource("demo://readme")
            await client.get_prompt("greet", {"name": "Ann"})
    records = [json.loads(line) for line in audit.read_text(encoding="utf-8").splitlines()]
    checked = [r for r in records if NAME in r.get("latency_ms", {})]
    assert len(checked) >= 10  # the inspector saw the session's traffic
    flagged = [(r["method"], f["message"]) for r in records for f in r["findings"] if f["detector"] == NAME]
    assert flagged == [("tools/call", refused.value.message)]  # real traffic of either era passes in full mode
