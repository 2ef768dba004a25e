"""The gateway's own streamable HTTP session transport, on the wire.

Raw HTTP (no SDK client) against `guardian serve`, to pin what clients rely on: the answer
format per request, session life cycle, the standalone GET stream, and the Host/Origin
checks that stop DNS rebinding.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest

from tests.support.gateway import demo_server_stdio_argv, gateway_http
from tests.support.peers import ServerProcess

pytestmark = pytest.mark.anyio

ACCEPT_BOTH = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def gateway() -> AsyncIterator[ServerProcess]:
    async with gateway_http(upstream=demo_server_stdio_argv()) as server:
        yield server


def rpc(request_id: int | None, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if request_id is not None:
        message["id"] = request_id
    if params is not None:
        message["params"] = params
    return message


INITIALIZE = rpc(1, "initialize", {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"},
})  # fmt: skip


async def open_session(http: httpx2.AsyncClient, url: str) -> str:
    response = await http.post(url, json=INITIALIZE, headers=ACCEPT_BOTH)
    assert response.status_code == 200
    session_id = response.headers["mcp-session-id"]
    await http.post(url, json=rpc(None, "notifications/initialized"),
                    headers={**ACCEPT_BOTH, "Mcp-Session-Id": session_id})
    return session_id


def sse_messages(body: str) -> list[dict[str, Any]]:
    return [json.loads(line[len("data: "):]) for line in body.splitlines() if line.startswith("data: ")]


async def test_plain_answer_is_json_and_chatty_answer_is_an_sse_stream(gateway: ServerProcess) -> None:
    async with httpx2.AsyncClient(timeout=30) as http:
        session_id = await open_session(http, gateway.url)
        headers = {**ACCEPT_BOTH, "Mcp-Session-Id": session_id}

        echo = await http.post(gateway.url, headers=headers,
                               json=rpc(2, "tools/call", {"name": "echo", "arguments": {"text": "plain"}}))
        assert echo.headers["content-type"].startswith("application/json")
        assert echo.json()["result"]["content"][0]["text"] == "plain"

        progress_call = rpc(3, "tools/call", {
            "name": "progress", "arguments": {"steps": 2}, "_meta": {"progressToken": "tok"},
        })  # fmt: skip
        chatty = await http.post(gateway.url, headers=headers, json=progress_call)
        assert chatty.headers["content-type"].startswith("text/event-stream")
        messages = sse_messages(chatty.text)
        methods = [m.get("method") for m in messages]
        assert methods.count("notifications/progress") == 2
        assert messages[-1]["id"] == 3 and messages[-1]["result"]["content"][0]["text"] == "completed 2 steps"


async def test_session_lifecycle_and_the_standalone_stream(gateway: ServerProcess) -> None:
    async with httpx2.AsyncClient(timeout=30) as http:
        session_id = await open_session(http, gateway.url)
        headers = {**ACCEPT_BOTH, "Mcp-Session-Id": session_id}

        # A request without a session that is not `initialize` cannot open one.
        orphan = await http.post(gateway.url, headers=ACCEPT_BOTH, json=rpc(9, "tools/list"))
        assert orphan.status_code == 400 and orphan.json()["error"]["code"] == -32600

        get_headers = {"Accept": "text/event-stream", "Mcp-Session-Id": session_id}
        async with http.stream("GET", gateway.url, headers=get_headers) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            second = await http.get(gateway.url, headers=get_headers)
            assert second.status_code == 409
            # A notification sent while a call is open travels with that call's answer.
            call = rpc(4, "tools/call", {"name": "add_tool", "arguments": {}})
            answer = await http.post(gateway.url, headers=headers, json=call)
            methods = [m.get("method") for m in sse_messages(answer.text)]
            assert methods == ["notifications/tools/list_changed", None]
            # Ending the session ends the standalone stream too.
            deleted = await http.delete(gateway.url, headers={"Mcp-Session-Id": session_id})
            assert deleted.status_code == 200
            assert [line async for line in stream.aiter_lines() if line.startswith("data: ")] == []

        gone = await http.post(gateway.url, headers=headers, json=rpc(5, "tools/list"))
        assert gone.status_code == 404


async def test_foreign_host_and_origin_are_refused(gateway: ServerProcess) -> None:
    async with httpx2.AsyncClient(timeout=30) as http:
        rebinding = await http.post(gateway.url, json=INITIALIZE, headers={**ACCEPT_BOTH, "Host": "evil.example"})
        assert rebinding.status_code == 421
        cross_site = await http.post(
            gateway.url, json=INITIALIZE, headers={**ACCEPT_BOTH, "Origin": "http://evil.example"}
        )
        assert cross_site.status_code == 403
        allowed = await http.post(
            gateway.url, json=INITIALIZE, headers={**ACCEPT_BOTH, "Origin": f"http://127.0.0.1:{gateway.port}"}
        )
        assert allowed.status_code == 200


async def test_a_client_that_accepts_no_json_is_told_so(gateway: ServerProcess) -> None:
    async with httpx2.AsyncClient(timeout=30) as http:
        refused = await http.post(
            gateway.url, json=INITIALIZE, headers={"Accept": "text/html", "Content-Type": "application/json"}
        )
        assert refused.status_code == 406
