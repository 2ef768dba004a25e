"""Tenants end to end: real JWTs (tenant claim) from a real JWKS on loopback, the gateway app under
uvicorn, SDK clients and raw HTTP, two real upstream servers over stdio.

`acme` reaches `files` (the demo server, its default) and `crm` (the rug-pull test server in its
honest state); `globex` reaches `crm` (its default) and `files`, denies the `mutate` tool and has
no rate limit, while `acme` allows one `add` per ~1000 s. `initech` is a tenant nobody configured.

Both servers have an `echo` tool: within one tenant the second upstream to list it is shadowing
(tool_poisoning withholds it), and which one that is differs per tenant, since each tenant has
its own registry. The first test fixes that order for the module.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import anyio
import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client import Transport
from mcp.client.streamable_http import streamable_http_client

from guardian import errors
from guardian.app import create_app
from guardian.auth.identity import Identity
from guardian.config import Config
from guardian.errors import ConfigError
from guardian.gateway import Guardian, check_inspectors
from guardian.pins.store import PinStore
from guardian.tenancy import AccessRefused
from tests.support.auth import (
    ACCEPT,
    INITIALIZE,
    ISSUER,
    RESOURCE,
    JWKSServer,
    claims,
    jwks_fixture,
    rsa_key,
    uvicorn_server,
)
from tests.support.gateway import DEMO_TOOLS, demo_server_stdio_argv
from tests.support.peers import REPO_ROOT, open_client, text_of

pytestmark = pytest.mark.anyio

KEY = rsa_key("tenants-1")
RUGPULL = REPO_ROOT / "tests" / "support" / "rugpull_server.py"
CRM_TOOLS = {"fetch_data", "echo", "mutate"}
MODERN = "2026-07-28"


def tenants_config(crm_state: Path, audit: Path) -> dict[str, Any]:
    return {
        "upstreams": {
            "files": {"command": demo_server_stdio_argv()},
            "crm": {"command": [sys.executable, str(RUGPULL), "--state", str(crm_state)]},
        },
        "tenants": {
            "acme": {
                "upstreams": ["files", "crm"],
                "security": {"inspectors": {"rate_limit": {
                    "per_identity": None, "per_tool": {"add": {"rate": 0.001, "burst": 1}}}}},
            },
            "globex": {"upstreams": ["crm", "files"], "security": {"tools": {"deny": ["mutate"]}}},
        },
        "authentication": {
            "resource": RESOURCE, "oauth": {"issuer": ISSUER, "jwks_uri": "http://127.0.0.1:1/unused"},
        },
        "monitoring": {"audit_log": str(audit), "audit_all_messages": True},
    }  # fmt: skip


@dataclass
class Gateway:
    base: str
    guardian: Guardian
    audit: Path
    pins: Path
    tokens: dict[str, str]

    def url(self, path: str = "/mcp") -> str:
        return self.base + path


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


jwks = jwks_fixture(KEY, scope="module")


@pytest.fixture(scope="module")
async def gateway(jwks: JWKSServer, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    directory = tmp_path_factory.mktemp("tenants")
    (directory / "crm.state").write_text("v1")
    config = tenants_config(directory / "crm.state", directory / "audit.jsonl")
    config["authentication"]["oauth"]["jwks_uri"] = jwks.url
    # The module's own pin store (conftest's isolated one changes with every test).
    config["security"] = {"inspectors": {"pins": {"store": str(directory / "pins.json")}}}
    guardian = Guardian(config)
    tokens = {
        "alice": KEY.sign(claims(sub="alice", tenant="acme", exp=2**31 - 1)),
        "bob": KEY.sign(claims(sub="bob", tenant="globex", exp=2**31 - 1)),
        "carol": KEY.sign(claims(sub="carol", tenant="initech", exp=2**31 - 1)),
        "dave": KEY.sign(claims(sub="dave", tenant=None, exp=2**31 - 1)),
    }
    async with uvicorn_server(create_app(guardian)) as port:
        yield Gateway(f"http://127.0.0.1:{port}", guardian, directory / "audit.jsonl", directory / "pins.json", tokens)


def client(gateway: Gateway, user: str, path: str = "/mcp", mode: Any = "legacy") -> Client:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {gateway.tokens[user]}"}, timeout=30)
    transport = cast(Transport, streamable_http_client(gateway.url(path), http_client=http))
    return open_client(transport, mode=mode)


async def tool_names(gateway: Gateway, user: str, path: str = "/mcp", mode: Any = "legacy") -> set[str]:
    async with client(gateway, user, path, mode) as session:
        return {tool.name for tool in (await session.list_tools()).tools}


async def raw_post(gateway: Gateway, user: str, path: str, body: dict[str, Any], **headers: str) -> httpx2.Response:
    async with httpx2.AsyncClient(timeout=30) as http:
        auth = {"Authorization": f"Bearer {gateway.tokens[user]}"}
        return await http.post(gateway.url(path), json=body, headers={**ACCEPT, **auth, **headers})


# --- which upstream a caller reaches ---------------------------------------------------------------


async def test_each_tenant_reaches_its_default_and_named_upstreams(gateway: Gateway) -> None:
    """Each tenant's own listings decide shadowing: acme saw `echo` on files first, globex on crm.
    A registry shared across tenants would withhold crm's `echo` from globex as well."""
    assert await tool_names(gateway, "alice") == set(DEMO_TOOLS)  # acme's default: files
    assert await tool_names(gateway, "bob") == CRM_TOOLS - {"mutate"}  # globex's default: crm
    assert await tool_names(gateway, "alice", "/mcp/crm") == CRM_TOOLS - {"echo"}
    assert await tool_names(gateway, "bob", "/mcp/files") == set(DEMO_TOOLS) - {"echo"}


async def test_an_upstream_the_tenant_may_not_reach_reads_as_missing(tmp_path: Path) -> None:
    """Another tenant's upstream and one that does not exist give the same 404: no upstream
    name leaks. (Own gateway: globex here reaches only crm.)"""
    (tmp_path / "crm.state").write_text("v1")
    config = tenants_config(tmp_path / "crm.state", tmp_path / "audit.jsonl")
    config["tenants"]["globex"]["upstreams"] = ["crm"]
    del config["authentication"]
    guardian = Guardian(config)
    bob = Identity(subject="bob", method="jwt", tenant="globex")
    assert guardian.route(bob).upstream_name == "crm"
    refusals = []
    for name in ("files", "nonexistent"):
        with pytest.raises(AccessRefused) as refused:
            guardian.route(bob, name)
        refusals.append((refused.value.status, str(refused.value).replace(name, "NAME")))
    assert refusals == [(404, "no upstream named 'NAME'")] * 2


async def test_other_tenants_upstream_over_http_is_404_with_a_jsonrpc_error(gateway: Gateway) -> None:
    """globex may reach files in the shared gateway; a made-up upstream is refused on every
    transport with -32016 and the request's id."""
    response = await raw_post(gateway, "bob", "/mcp/ledger", INITIALIZE)
    assert response.status_code == 404
    assert response.json()["error"] == {"code": errors.ACCESS_REFUSED, "message": "no upstream named 'ledger'"}
    assert response.json()["id"] == 1


@pytest.mark.parametrize(
    ("user", "message"),
    [("carol", "tenant 'initech' is not served by this gateway"), ("dave", "the caller has no tenant")],
)
async def test_a_caller_of_no_configured_tenant_is_refused_everywhere(
    gateway: Gateway, user: str, message: str
) -> None:
    handshake = await raw_post(gateway, user, "/mcp", INITIALIZE)
    assert (handshake.status_code, handshake.json()["error"]["code"]) == (403, errors.ACCESS_REFUSED)
    assert handshake.json()["error"]["message"] == message
    modern = await raw_post(
        gateway, user, "/mcp",
        {"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {"_meta": {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "0"},
            "io.modelcontextprotocol/clientCapabilities": {}}}},
        **{"MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/list"},
    )  # fmt: skip
    assert (modern.status_code, modern.json()["error"]["message"], modern.json()["id"]) == (403, message, 7)
    async with httpx2.AsyncClient(timeout=30) as http:
        sse = await http.get(gateway.url("/sse"), headers={"Authorization": f"Bearer {gateway.tokens[user]}"})
    assert (sse.status_code, sse.json()["error"]["message"]) == (403, message)


# --- state that must not cross tenants ----------------------------------------------------------------


async def test_a_session_is_bound_to_its_tenant_and_its_endpoint(gateway: Gateway) -> None:
    opened = await raw_post(gateway, "alice", "/mcp/crm", INITIALIZE)
    assert opened.status_code == 200
    session = {"Mcp-Session-Id": opened.headers["mcp-session-id"], "MCP-Protocol-Version": "2025-11-25"}
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    as_bob = await raw_post(gateway, "bob", "/mcp/crm", listing, **session)  # globex reaches crm too
    elsewhere = await raw_post(gateway, "alice", "/mcp/files", listing, **session)
    assert (as_bob.status_code, elsewhere.status_code) == (404, 404)
    assert as_bob.json()["error"]["message"] == elsewhere.json()["error"]["message"] == "session not found"
    own = await raw_post(gateway, "alice", "/mcp/crm", listing, **session)
    assert own.status_code == 200
    assert {tool["name"] for tool in own.json()["result"]["tools"]} == CRM_TOOLS - {"echo"}


async def test_an_sse_session_accepts_posts_only_from_its_caller(gateway: Gateway) -> None:
    async with httpx2.AsyncClient(timeout=30) as http:
        alice = {"Authorization": f"Bearer {gateway.tokens['alice']}"}
        async with http.stream("GET", gateway.url("/sse/crm"), headers=alice) as stream:
            endpoint = None
            async for line in stream.aiter_lines():
                if line.startswith("data:"):
                    endpoint = line.removeprefix("data:").strip()
                    break
            assert endpoint is not None and "session_id=" in endpoint
            body = json.dumps(INITIALIZE)
            bob = {"Authorization": f"Bearer {gateway.tokens['bob']}", "Content-Type": "application/json"}
            refused = await http.post(gateway.base + endpoint, content=body, headers=bob)
            accepted = await http.post(
                gateway.base + endpoint, content=body, headers={**alice, "Content-Type": "application/json"}
            )
    assert (refused.status_code, accepted.status_code) == (404, 202)


async def test_modern_clients_of_two_tenants_never_share_an_upstream_process(gateway: Gateway) -> None:
    """2026-07-28 requests share one upstream process per (tenant, upstream): a tool that acme's
    call registers in its `files` process does not exist for globex."""
    async with client(gateway, "alice", "/mcp/files", MODERN) as alice:
        assert alice.protocol_version == MODERN
        await alice.call_tool("add_tool", {})
        mine = {tool.name for tool in (await alice.list_tools()).tools}
    theirs = await tool_names(gateway, "bob", "/mcp/files", MODERN)
    added = {name for name in mine if name.startswith("dynamic_")}
    assert added, mine
    assert not added & theirs
    assert "add_tool" in theirs


async def test_concurrent_sessions_of_two_tenants_stay_apart(gateway: Gateway) -> None:
    seen: dict[tuple[str, int], tuple[set[str], str]] = {}

    async def session(user: str, index: int) -> None:
        async with client(gateway, user, "/mcp/crm") as s:
            names = {tool.name for tool in (await s.list_tools()).tools}
            answer = await s.call_tool("fetch_data", {"query": f"{user}-{index}"})
            seen[(user, index)] = (names, text_of(answer))

    async with anyio.create_task_group() as tg:
        for index in range(6):
            tg.start_soon(session, "alice", index)
            tg.start_soon(session, "bob", index)

    for (user, index), (names, answer) in seen.items():
        assert names == CRM_TOOLS - ({"echo"} if user == "alice" else {"mutate"})
        assert f"{user}-{index}" in answer
    records = [json.loads(line) for line in gateway.audit.read_text().splitlines()]
    tenants = {(r.get("identity"), r.get("tenant")) for r in records if r.get("identity") in ("alice", "bob")}
    assert tenants == {("alice", "acme"), ("bob", "globex")}


async def test_tenant_security_settings_apply_to_that_tenant_only(gateway: Gateway) -> None:
    async with client(gateway, "bob", "/mcp/crm") as bob:
        with pytest.raises(MCPError) as blocked:
            await bob.call_tool("mutate", {})
        assert blocked.value.error.code == errors.BLOCKED
    async with client(gateway, "bob", "/mcp/files") as bob:
        assert [(await bob.call_tool("add", {"a": 1, "b": i})).structured_content for i in range(3)] == [
            {"result": 1.0}, {"result": 2.0}, {"result": 3.0}]  # fmt: skip
    async with client(gateway, "alice") as alice:
        assert text_of(await alice.call_tool("echo", {"text": "hi"})) == "hi"
        await alice.call_tool("add", {"a": 1, "b": 1})
        with pytest.raises(MCPError) as limited:
            await alice.call_tool("add", {"a": 1, "b": 2})
        assert limited.value.error.code == errors.RATE_LIMITED


async def test_pins_are_kept_per_tenant(gateway: Gateway) -> None:
    await tool_names(gateway, "alice", "/mcp/crm")
    await tool_names(gateway, "bob", "/mcp/crm")
    store = PinStore(gateway.pins)
    scopes = {tenant: store.scope("crm", tenant) for tenant in ("acme", "globex")}
    for tenant, scope in scopes.items():  # pins record the upstream's own listing, in each tenant's namespace
        assert {name for (kind, name) in scope if kind == "tool"} == CRM_TOOLS
        assert {entry.tenant for entry in scope.values()} == {tenant}
    assert store.scope("crm", None) == {}


# --- configuration --------------------------------------------------------------------------------


def test_tenants_share_inspectors_whose_settings_are_equal(tmp_path: Path) -> None:
    config = {
        "upstream_mcp_server": "python server.py",
        "tenants": {"a": {}, "b": {}, "c": {"security": {"inspectors": {"pii": {"action": "block"}}}}},
    }
    guardian = Guardian(config)
    a, b, c = (
        {i.name: i for i in guardian.tenancy.tenants[name].pipeline.inspectors} for name in ("a", "b", "c")
    )
    assert a["pii"] is b["pii"] and a["secrets"] is b["secrets"]
    assert c["pii"] is not a["pii"] and c["secrets"] is a["secrets"]
    assert guardian.route(Identity(subject="x", method="jwt", tenant="a")).upstream_name == "default"


def test_callers_without_a_tenant_use_the_default_tenant_when_configured() -> None:
    guardian = Guardian({
        "upstreams": {"one": "python one.py", "two": "python two.py"},
        "tenants": {"default": {"upstreams": ["two"]}, "acme": {"upstreams": ["one", "two"]}},
    })  # fmt: skip
    assert guardian.route(None).upstream_name == "two"
    assert guardian.route(None).context.tenant_of(None) == "default"
    assert guardian.route(Identity(subject="x", method="api_key"), "two").context.name == "default"
    with pytest.raises(AccessRefused):
        guardian.route(None, "one")


def test_without_tenants_every_upstream_is_reachable_and_the_claim_is_the_tenant() -> None:
    guardian = Guardian({"upstreams": {"one": "python one.py", "two": "https://example.test/mcp"}})
    caller = Identity(subject="x", method="jwt", tenant="acme")
    route = guardian.route(caller, "two")
    assert (route.upstream.url, route.upstream.label) == ("https://example.test/mcp", "two")
    assert guardian.route(caller).upstream_name == "one"
    assert route.context.tenant_of(caller) == "acme"


@pytest.mark.parametrize(
    ("config", "problems"),
    [
        ({"upstreams": {"a": "python a.py"}, "tenants": {"t": {"upstreams": ["a", "b"]}}},
         ["<dict>: $.tenants.t.upstreams[1]: no upstream named 'b'"]),
        ({"upstreams": {"a": "python a.py"}, "tenants": {"t": {}}},
         ["<dict>: $.tenants.t.upstreams: required when upstream_mcp_server is not set"]),
        ({"upstreams": {"a": "python a.py"}, "tenants": {"t": {"upstreams": ["a"], "default_upstream": "z"}}},
         ["<dict>: $.tenants.t.default_upstream: 'z' is not one of this tenant's upstreams"]),
        ({"upstream_mcp_server": "python a.py", "upstreams": {"default": "python b.py"}},
         ["<dict>: $.upstreams.default: the name is taken by upstream_mcp_server"]),
        ({"upstreams": {"a": {"url": "http://x/mcp", "transport": "stdio"}}},
         ["<dict>: $.upstreams.a: transport 'stdio' needs a command, not a URL"]),
        ({"upstream_mcp_server": "python a.py", "tenants": {"t": {"security_profile": "nope.yaml"}}},
         None),
    ],
)  # fmt: skip
def test_bad_tenant_configuration_is_one_line_per_problem(config: dict[str, Any], problems: list[str] | None) -> None:
    with pytest.raises(ConfigError) as raised:
        Config.from_dict(config)
    if problems is not None:
        assert raised.value.problems == problems
    else:
        [problem] = raised.value.problems
        assert problem.startswith("<dict>: $.tenants.t: ") and "nope.yaml" in problem


def test_check_config_names_the_tenant_of_a_bad_inspector_option() -> None:
    config = Config.from_dict({
        "upstream_mcp_server": "python a.py",
        "tenants": {"t": {"security": {"inspectors": {"secrets": {"colour": "red"}}}}},
    })  # fmt: skip
    with pytest.raises(ConfigError) as raised:
        check_inspectors(config)
    assert raised.value.problems == ["$.tenants.t: $.security.inspectors.secrets.colour: unknown option"]
    with pytest.raises(ConfigError) as at_start:
        Guardian(config)
    assert at_start.value.problems == raised.value.problems
