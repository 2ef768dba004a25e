"""Authentication end to end: MCP SDK clients through the gateway app (uvicorn on loopback) to real servers.

The gateway is `create_app(Guardian(...), authentication=...)` served by uvicorn in a
thread; the upstream is the demo server over stdio, or, to see exactly which headers an
upstream receives, a small SDK server over streamable HTTP behind a recording wrapper.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, cast

import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client import Transport
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer
from starlette.types import Receive, Scope, Send

from guardian.app import create_app
from guardian.auth.settings import AuthSettings
from guardian.gateway import Guardian
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
from tests.support.gateway import demo_server_stdio_argv
from tests.support.peers import text_of

pytestmark = pytest.mark.anyio

KEY = rsa_key("gw-1")


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


jwks = jwks_fixture(KEY, scope="module")


def auth_settings(jwks: JWKSServer) -> AuthSettings:
    return AuthSettings.from_dict({
        "resource": RESOURCE,
        "required_scopes": ["mcp:tools"],
        "oauth": {"issuer": ISSUER, "jwks_uri": jwks.url},
    })  # fmt: skip


@contextlib.asynccontextmanager
async def gateway(jwks: JWKSServer, upstream: Any) -> AsyncIterator[str]:
    guardian = Guardian({"upstream_mcp_server": upstream})
    async with uvicorn_server(create_app(guardian, authentication=auth_settings(jwks))) as port:
        yield f"http://127.0.0.1:{port}/mcp"


@pytest.fixture(scope="module")
async def demo_gateway(jwks: JWKSServer) -> AsyncIterator[str]:
    async with gateway(jwks, {"command": demo_server_stdio_argv()}) as url:
        yield url


def sdk_client(url: str, token: str, statuses: list[tuple[int, str]] | None = None) -> Client:
    """An SDK client whose HTTP requests carry `token`; `statuses` collects (status, WWW-Authenticate)."""

    async def note(response: httpx2.Response) -> None:
        if statuses is not None:
            statuses.append((response.status_code, response.headers.get("www-authenticate", "")))

    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30,
                              event_hooks={"response": [note]})
    transport = cast(Transport, streamable_http_client(url, http_client=http))
    return Client(transport, mode="legacy", cache=None, read_timeout_seconds=30)


async def test_sdk_client_with_a_good_token_reaches_the_demo_server(demo_gateway: str) -> None:
    statuses: list[tuple[int, str]] = []
    async with sdk_client(demo_gateway, KEY.sign(claims()), statuses) as client:
        tools = await client.list_tools()
        assert "echo" in {tool.name for tool in tools.tools}
        result = await client.call_tool("echo", {"text": "through the gateway"})
        assert text_of(result) == "through the gateway"
    assert statuses and all(status < 400 for status, _ in statuses)


@pytest.mark.parametrize("token", ["garbage", "expired", "wrong-audience", "other-signer"])
async def test_sdk_client_with_a_bad_token_is_refused(demo_gateway: str, token: str) -> None:
    bad = {
        "garbage": "garbage",
        "expired": KEY.sign(claims(exp=1_000_000_000, iat=999_999_000)),
        "wrong-audience": KEY.sign(claims(aud="https://another-server.example.test/mcp")),
        "other-signer": rsa_key("gw-1").sign(claims()),
    }[token]
    statuses: list[tuple[int, str]] = []
    with pytest.raises((MCPError, ExceptionGroup)) as caught:
        async with sdk_client(demo_gateway, bad, statuses) as client:
            await client.list_tools()
    # The SDK reports a refused POST as an internal error (-32603), possibly inside task groups.
    assert _leaves(caught.value) and all(isinstance(e, MCPError) for e in _leaves(caught.value))
    assert statuses == [(401, statuses[0][1])]
    assert statuses[0][1].startswith('Bearer error="invalid_token"')
    assert 'resource_metadata="https://gateway.example.test/.well-known/oauth-protected-resource/mcp"' in statuses[0][1]


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


async def test_a_session_belongs_to_whoever_opened_it(demo_gateway: str) -> None:
    alice = {**ACCEPT, "Authorization": f"Bearer {KEY.sign(claims(sub='alice'))}"}
    mallory = {**ACCEPT, "Authorization": f"Bearer {KEY.sign(claims(sub='mallory'))}"}
    async with httpx2.AsyncClient(timeout=30) as http:
        opened = await http.post(demo_gateway, json=INITIALIZE, headers=alice)
        assert opened.status_code == 200
        session = {"Mcp-Session-Id": opened.headers["mcp-session-id"]}
        listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
        stolen = await http.post(demo_gateway, json=listing, headers={**mallory, **session})
        assert stolen.status_code == 404, "another caller holding the session id gets nothing"
        # A fresh token for the same caller (a refresh) keeps the session.
        again = {**ACCEPT, "Authorization": f"Bearer {KEY.sign(claims(sub='alice', jti='refreshed'))}"}
        own = await http.post(demo_gateway, json=listing, headers={**again, **session})
        assert own.status_code == 200 and own.json()["result"]["tools"]
        await http.delete(demo_gateway, headers={**alice, **session})


class HeaderRecorder:
    """ASGI wrapper that notes the headers of every request an upstream server receives."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[dict[str, str]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.seen.append({k.decode(): v.decode() for k, v in scope["headers"]})
        await self.app(scope, receive, send)


async def test_the_clients_credential_never_reaches_the_upstream(jwks: JWKSServer) -> None:
    server = MCPServer("recorder")

    @server.tool()
    def echo(text: str) -> str:
        return text

    recorder = HeaderRecorder(server.streamable_http_app())
    async with uvicorn_server(recorder) as upstream_port:
        upstream = {
            "url": f"http://127.0.0.1:{upstream_port}/mcp",
            "headers": {"Authorization": "Bearer gateway-own-upstream-credential"},
        }
        async with gateway(jwks, upstream) as url:
            token = KEY.sign(claims())
            async with sdk_client(url, token) as client:
                assert text_of(await client.call_tool("echo", {"text": "hi"})) == "hi"
    assert len(recorder.seen) >= 3  # initialize, initialized, tools/call at least
    for headers in recorder.seen:
        assert token not in str(headers)
        assert headers.get("authorization") == "Bearer gateway-own-upstream-credential"
        assert "x-api-key" not in headers
