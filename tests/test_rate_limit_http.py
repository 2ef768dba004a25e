"""Rate-limit refusals over HTTP through a real `guardian serve`: with
`server.rate_limit_http_status: 429` a plain-JSON `RATE_LIMITED` answer is an HTTP 429 with
`Retry-After` (whole seconds, rounded up), the JSON-RPC error still its body; with 200 (the
default) the same body comes with 200 and no `Retry-After`."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from guardian import errors
from guardian.config import Config
from tests.support.gateway import demo_server_stdio_argv, gateway_http

pytestmark = pytest.mark.anyio

ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}
MODERN = "2026-07-28"
MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "0"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


def limited_config(status: int | None) -> dict[str, Any]:
    """A budget of one `add` call (refilled every ~1000 s) for everyone; `status` as configured."""
    config: dict[str, Any] = {"security": {"inspectors": {"rate_limit": {
        "per_identity": None, "per_tool": {"add": {"rate": 0.001, "burst": 1}}}}}}
    if status is not None:
        config["server"] = {"rate_limit_http_status": status}
    return config


def add_call(request_id: int, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"name": "add", "arguments": {"a": 1, "b": 2}}
    if meta is not None:
        params["_meta"] = meta
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


async def session_calls(http: httpx2.AsyncClient, url: str) -> tuple[httpx2.Response, httpx2.Response]:
    """Open a handshake-era session and call `add` twice: the first fits the budget, the second not."""
    opened = await http.post(url, json=INITIALIZE, headers=ACCEPT)
    assert opened.status_code == 200, opened.text
    headers = {**ACCEPT, "Mcp-Session-Id": opened.headers["mcp-session-id"]}
    await http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
    first = await http.post(url, json=add_call(2), headers=headers)
    second = await http.post(url, json=add_call(3), headers=headers)
    return first, second


def assert_rate_limited_body(response: httpx2.Response, request_id: int) -> float:
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["id"] == request_id
    assert body["error"]["code"] == errors.RATE_LIMITED
    retry_after = body["error"]["data"]["guardian"]["retry_after"]
    assert isinstance(retry_after, float | int) and retry_after > 100
    return float(retry_after)


async def test_429_with_retry_after_when_configured() -> None:
    async with gateway_http(upstream=demo_server_stdio_argv(), config=limited_config(429)) as gw, \
            httpx2.AsyncClient(timeout=30) as http:
        first, second = await session_calls(http, gw.url)
        assert first.status_code == 200 and "retry-after" not in first.headers
        assert first.json()["result"]["content"][0]["text"] == "3.0"

        assert second.status_code == 429, second.text
        retry_after = assert_rate_limited_body(second, 3)
        header = second.headers["retry-after"]
        assert header.isdigit()
        assert int(header) >= retry_after and int(header) - retry_after < 1  # rounded up to whole seconds
        assert "mcp-session-id" in second.headers

        # The session survives the refusal: a call that no limit covers still answers 200.
        headers = {**ACCEPT, "Mcp-Session-Id": second.headers["mcp-session-id"]}
        listed = await http.post(gw.url, json={"jsonrpc": "2.0", "id": 4, "method": "tools/list"}, headers=headers)
        assert listed.status_code == 200 and "retry-after" not in listed.headers

        # A sessionless 2026-07-28 request, refused in place by the same (anonymous) budget: 429 too.
        modern = await http.post(gw.url, json=add_call(7, MODERN_META), headers={
            **ACCEPT, "MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/call", "Mcp-Name": "add"})
        assert modern.status_code == 429, modern.text
        assert_rate_limited_body(modern, 7)
        assert int(modern.headers["retry-after"]) >= 1


@pytest.mark.parametrize("status", [200, None], ids=["explicit-200", "default"])
async def test_200_with_the_same_body_when_set_to_200(status: int | None) -> None:
    async with gateway_http(upstream=demo_server_stdio_argv(), config=limited_config(status)) as gw, \
            httpx2.AsyncClient(timeout=30) as http:
        first, second = await session_calls(http, gw.url)
        assert first.status_code == 200
        assert second.status_code == 200, second.text
        assert "retry-after" not in second.headers
        assert_rate_limited_body(second, 3)


def test_setting_is_validated() -> None:
    assert Config.from_dict({}).server.rate_limit_http_status == 200
    assert Config.from_dict({"server": {"rate_limit_http_status": 429}}).server.rate_limit_http_status == 429
    with pytest.raises(errors.ConfigError, match=r"\$\.server\.rate_limit_http_status"):
        Config.from_dict({"server": {"rate_limit_http_status": 503}})
