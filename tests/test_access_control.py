"""Access control end to end through a real `guardian serve`: API-key identities, an access
policy from the config, rate limits and session limits, over real HTTP to the demo server."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx2
import pytest

from guardian import errors
from tests.support.gateway import GUARDIAN, demo_server_stdio_argv, gateway_http
from tests.support.peers import REPO_ROOT

pytestmark = pytest.mark.anyio

ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}

POLICY: dict[str, Any] = {
    "version": 1,
    "name": "e2e",
    "default": "deny",
    "default_reason": "not allowed here",
    "rules": [
        {"id": "no-crash", "effect": "deny", "reason": "crashing the server is not allowed", "when": {"tool": "crash"}},
        {"id": "acme-tools", "effect": "allow", "reason": "acme uses the tools", "when": {"tenant": "acme"}},
    ],
}


def create_key(path: Path, subject: str, tenant: str) -> str:
    done = subprocess.run(
        [*GUARDIAN, "keys", "create", "--file", str(path), "--subject", subject, "--tenant", tenant],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=60, check=True,
    )
    return done.stdout.strip()


class Caller:
    """One client session over raw HTTP with an API key."""

    def __init__(self, http: httpx2.AsyncClient, url: str, key: str) -> None:
        self.http, self.url, self.headers = http, url, {**ACCEPT, "X-API-Key": key}
        self.ids = iter(range(2, 10_000))

    async def open(self) -> httpx2.Response:
        opened = await self.http.post(self.url, json=INITIALIZE, headers=self.headers)
        if opened.status_code == 200 and "mcp-session-id" in opened.headers:
            self.headers["Mcp-Session-Id"] = opened.headers["mcp-session-id"]
            await self.http.post(self.url, json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                                 headers=self.headers)
        return opened

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        body = {"jsonrpc": "2.0", "id": next(self.ids), "method": method, "params": params or {}}
        answer = await self.http.post(self.url, json=body, headers=self.headers)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    async def call(self, tool: str, **arguments: Any) -> dict[str, Any]:
        return await self.request("tools/call", {"name": tool, "arguments": arguments})


async def test_identity_policy_and_rate_limits_through_the_gateway(tmp_path: Path) -> None:
    key_file = tmp_path / "keys.yaml"
    alice, bob = create_key(key_file, "alice", "acme"), create_key(key_file, "bob", "globex")
    config = {
        "authentication": {"api_keys": {"file": str(key_file)}},
        "security": {"inspectors": {
            "access_policy": {"policy": POLICY},
            "rate_limit": {"per_identity": None, "per_tool": {"add": {"rate": 0.001, "burst": 2}},
                           "max_sessions_per_identity": 1},
        }},
    }
    async with gateway_http(upstream=demo_server_stdio_argv(), config=config) as gw, \
            httpx2.AsyncClient(timeout=30) as http:
        a, b = Caller(http, gw.url, alice), Caller(http, gw.url, bob)
        assert (await a.open()).status_code == 200 and (await b.open()).status_code == 200

        # The policy filters listings per identity and blocks what it denies, naming the rule's reason.
        listed = {t["name"] for t in (await a.request("tools/list"))["result"]["tools"]}
        assert "echo" in listed and "crash" not in listed
        assert (await b.request("tools/list"))["result"]["tools"] == []
        assert (await a.call("echo", text="hi"))["result"]["content"][0]["text"] == "hi"
        denied = await b.call("echo", text="hi")
        assert denied["error"]["code"] == errors.BLOCKED
        assert denied["error"]["data"]["guardian"]["reasons"] == ["access_policy: not allowed here"]
        crash = await a.call("crash")
        assert crash["error"]["code"] == errors.BLOCKED
        assert "crashing the server is not allowed" in crash["error"]["data"]["guardian"]["reasons"][0]

        # A per-tool budget of 2 for alice; the third call waits, with how long to wait.
        assert "result" in await a.call("add", a=1, b=2)
        assert "result" in await a.call("add", a=1, b=2)
        limited = await a.call("add", a=1, b=2)
        assert limited["error"]["code"] == errors.RATE_LIMITED
        assert limited["error"]["data"]["guardian"]["retry_after"] > 100

        # One session per identity: alice's second session is refused with the rate-limit code.
        second = Caller(http, gw.url, alice)
        refused = await second.open()
        assert refused.json()["error"]["code"] == errors.RATE_LIMITED
        assert refused.json()["error"]["data"]["guardian"]["limit"] == "max_sessions_per_identity"
