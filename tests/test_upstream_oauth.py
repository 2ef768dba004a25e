"""The gateway's own OAuth 2.0 client-credentials token for a URL upstream, end to end.

A real token endpoint and a real MCP server (SDK, streamable HTTP) that demands its bearer
tokens run on loopback in this process; a real `guardian serve` sits in front. The gateway
must fetch one token (client authenticated with HTTP Basic, `resource` and `scope` sent),
reuse it across calls and sessions, fetch a new one when the upstream answers 401 (and
retry that call), fetch a new one when it expires, and never pass the client's own
`Authorization` header on.
"""

from __future__ import annotations

import base64
import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import anyio
import httpx2
import pytest
import uvicorn
from mcp.server.mcpserver import MCPServer
from starlette.types import ASGIApp, Receive, Scope, Send

from guardian.auth.upstream_oauth import UpstreamOAuth
from guardian.config import Config
from guardian.errors import ConfigError
from tests.support.gateway import gateway_http
from tests.support.peers import LOOPBACK, free_port

pytestmark = pytest.mark.anyio

CLIENT_ID = "gateway client"  # a space: Basic credentials are form-encoded first (RFC 6749 2.3.1)
SECRET = "s3cret:with/odd+chars"
SECRET_ENV = "GUARDIAN_TEST_UPSTREAM_SECRET"
CLIENT_TOKEN = "Bearer the-clients-own-token"

ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}


@dataclass
class Authority:
    """The token endpoint's and the protected upstream's shared state (read by the test)."""

    expires_in: int = 3600
    issued: int = 0
    valid: set[str] = field(default_factory=set)
    token_requests: list[dict[str, list[str]]] = field(default_factory=list)
    basic: list[str] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)
    """Every `Authorization` header the MCP server was sent."""
    refused: int = 0


async def _reply(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def authority_app(state: Authority, mcp_app: ASGIApp) -> ASGIApp:
    """`/token` issues tokens; everything else is the MCP server behind a bearer check."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await mcp_app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        if scope["path"] == "/token":
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            state.token_requests.append(parse_qs(body.decode()))
            state.basic.append(headers.get("authorization", ""))
            state.issued += 1
            token = f"tok-{state.issued}"
            state.valid.add(token)
            answer = f'{{"access_token": "{token}", "token_type": "bearer", "expires_in": {state.expires_in}}}'
            await _reply(send, 200, answer.encode(), [(b"content-type", b"application/json")])
            return
        authorization = headers.get("authorization", "")
        state.seen.append(authorization)
        if authorization.removeprefix("Bearer ") not in state.valid:
            state.refused += 1
            await _reply(send, 401, b"", [(b"www-authenticate", b'Bearer error="invalid_token"')])
            return
        await mcp_app(scope, receive, send)

    return app


@contextlib.contextmanager
def protected_upstream(state: Authority) -> Iterator[str]:
    """The token endpoint and the MCP server on one loopback port, in a thread; yields the base URL."""
    server = MCPServer("protected", log_level="WARNING")

    @server.tool()
    def echo(text: str) -> str:
        return text

    port = free_port()
    app = authority_app(state, server.streamable_http_app(host=LOOPBACK))
    uv = uvicorn.Server(uvicorn.Config(app, host=LOOPBACK, port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not uv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "upstream did not start"
        time.sleep(0.02)
    try:
        yield f"http://{LOOPBACK}:{port}"
    finally:
        uv.should_exit = True
        thread.join(10)


class Session:
    """One handshake-era client session with the gateway, sending its own `Authorization`."""

    def __init__(self, http: httpx2.AsyncClient, url: str) -> None:
        self.http, self.url = http, url
        self.headers = {**ACCEPT, "Authorization": CLIENT_TOKEN}
        self.ids = iter(range(2, 10_000))

    async def open(self) -> None:
        opened = await self.http.post(self.url, json=INITIALIZE, headers=self.headers)
        assert opened.status_code == 200, opened.text
        assert opened.json()["result"]["serverInfo"]["name"] == "protected"
        self.headers["Mcp-Session-Id"] = opened.headers["mcp-session-id"]
        await self.http.post(self.url, json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                             headers=self.headers)

    async def echo(self, text: str) -> str:
        body = {"jsonrpc": "2.0", "id": next(self.ids), "method": "tools/call",
                "params": {"name": "echo", "arguments": {"text": text}}}
        answer = await self.http.post(self.url, json=body, headers=self.headers)
        assert answer.status_code == 200, answer.text
        payload = answer.json()
        assert "result" in payload, payload
        return str(payload["result"]["content"][0]["text"])


async def test_gateway_fetches_reuses_and_refreshes_its_upstream_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)  # the gateway subprocess inherits it
    state = Authority()
    with protected_upstream(state) as base:
        config = {"upstream_mcp_server": {"url": f"{base}/mcp", "oauth": {
            "token_url": f"{base}/token", "client_id": CLIENT_ID, "client_secret_env": SECRET_ENV,
            "scope": ["mcp:tools", "mcp:read"], "resource": f"{base}/mcp"}}}
        async with gateway_http(config=config) as gw, httpx2.AsyncClient(timeout=30) as http:
            first = Session(http, gw.url)
            await first.open()
            assert await first.echo("one") == "one"
            assert await first.echo("two") == "two"
            # One token for the whole session, fetched as RFC 6749 4.4 says, client in HTTP Basic.
            assert state.issued == 1
            assert state.token_requests[0] == {"grant_type": ["client_credentials"],
                                               "scope": ["mcp:tools mcp:read"], "resource": [f"{base}/mcp"]}
            expected_basic = base64.b64encode(b"gateway+client:s3cret%3Awith%2Fodd%2Bchars").decode()
            assert state.basic == [f"Basic {expected_basic}"]

            # Another session (its own upstream connection) reuses the same token.
            second = Session(http, gw.url)
            await second.open()
            assert await second.echo("three") == "three"
            assert state.issued == 1 and state.refused == 0
            assert set(state.seen) == {"Bearer tok-1"}

            # The upstream stops accepting the token: the call meets a 401, a new token is fetched
            # and the call retried with it. The new one lives 1 s (0.9 s before it is replaced).
            state.valid.clear()
            state.expires_in = 1
            assert await first.echo("four") == "four"
            assert state.issued == 2 and state.refused >= 1
            assert state.seen[-2:] == ["Bearer tok-1", "Bearer tok-2"]
            refused = state.refused

            # Once it has expired, the next call fetches a fresh token first: no 401 on the way.
            await anyio.sleep(1.2)
            state.expires_in = 3600
            assert await second.echo("five") == "five"
            assert state.issued == 3 and state.refused == refused
            assert state.seen[-1] == "Bearer tok-3"

            # The client's own credentials never reached the upstream; every request carried ours.
            assert CLIENT_TOKEN not in state.seen
            assert all(seen.startswith("Bearer tok-") for seen in state.seen)
            # Neither the secret nor a token went into the gateway's log.
            log = gw.stderr_text()
            assert SECRET not in log and "tok-1" not in log and "tok-2" not in log


def test_config_parses_and_checks_the_oauth_block() -> None:
    oauth = {"token_url": "https://auth.example/token", "client_id": "gw", "client_secret": "hunter2",
             "audience": "mcp", "client_auth": "client_secret_post", "scope": "a b"}
    upstream = Config.from_dict({"upstream_mcp_server": {"url": "https://mcp.example/mcp", "oauth": oauth}}).upstream
    assert upstream is not None and upstream.oauth == UpstreamOAuth(
        token_url="https://auth.example/token", client_id="gw", client_secret="hunter2", audience="mcp",
        client_auth="client_secret_post", scope="a b")
    assert "hunter2" not in repr(upstream)

    with pytest.raises(ConfigError, match=r"oauth"):  # a secret, or where to find one, is required
        Config.from_dict({"upstream_mcp_server": {"url": "https://mcp.example/mcp", "oauth": {
            "token_url": "https://auth.example/token", "client_id": "gw"}}})
    with pytest.raises(ConfigError, match=r"oauth\.grant: unknown key"):
        Config.from_dict({"upstream_mcp_server": {"url": "https://mcp.example/mcp", "oauth": {**oauth, "grant": "x"}}})
    with pytest.raises(ConfigError, match=r"oauth: needs a URL upstream"):
        Config.from_dict({"upstream_mcp_server": {"command": "server", "oauth": oauth}})
