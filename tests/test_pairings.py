"""Every downstream x upstream transport pairing, against the real demo server, through the real CLI.

Each pairing runs the same tour of the protocol: tools, resources (static and templated),
prompts, and the server→client traffic a lazy bridge drops (sampling, elicitation, roots,
progress, logs, `list_changed`). The answers must be what the demo server gives directly.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import pytest
from mcp import Client

from tests.support.gateway import connect_params, demo_server_stdio_argv, gateway_http, wrap_params
from tests.support.peers import (
    ELICITATION_CONTENT,
    SAMPLING_REPLY,
    TEST_ROOT_URIS,
    ClientRecorder,
    demo_http_server,
    has_method,
    open_client,
    text_of,
)

pytestmark = pytest.mark.anyio

Side = Literal["stdio", "streamable-http", "sse"]
SIDES: list[Side] = ["stdio", "streamable-http", "sse"]


@asynccontextmanager
async def through_gateway(downstream: Side, upstream: Side, recorder: ClientRecorder) -> AsyncIterator[Client]:
    """A connected client: client ─downstream→ guardian ─upstream→ demo server."""
    async with _upstream(upstream) as target:
        if downstream == "stdio":
            params_cm = wrap_params(target) if isinstance(target, list) else connect_params(target)
            with params_cm as params:
                async with open_client(params, recorder=recorder) as client:
                    yield client
            return
        kwargs: dict[str, Any] = {"upstream": target} if isinstance(target, list) else {"upstream_url": target}
        async with gateway_http(**kwargs) as gateway:
            url = gateway.url if downstream == "streamable-http" else f"{gateway.base_url}/sse"
            async with open_client(url, recorder=recorder) as client:
                yield client


@asynccontextmanager
async def _upstream(kind: Side) -> AsyncIterator[list[str] | str]:
    if kind == "stdio":
        yield demo_server_stdio_argv()
        return
    async with demo_http_server(kind) as server:
        yield server.url


async def protocol_tour(client: Client, recorder: ClientRecorder) -> None:
    echoed = await client.call_tool("echo", {"text": "héllo ✓ \"quoted\"\nline"})
    assert text_of(echoed) == "héllo ✓ \"quoted\"\nline"

    added = await client.call_tool("add", {"a": 2, "b": 3.5})
    assert added.structured_content == {"result": 5.5}

    readme = await client.read_resource("demo://readme")
    assert "static text" in text_of(readme)
    item = await client.read_resource("demo://items/42")
    assert json.loads(text_of(item)) == {"id": "42", "name": "Item 42"}

    prompt = await client.get_prompt("greet", {"name": "Ada"})
    assert "Ada" in prompt.messages[0].content.text  # type: ignore[union-attr]

    sampled = await client.call_tool("sample", {"prompt": "Say something"})
    assert text_of(sampled) == SAMPLING_REPLY
    asked = await client.call_tool("ask", {"question": "What is the answer?"})
    assert text_of(asked) == ELICITATION_CONTENT["answer"]
    roots = await client.call_tool("roots", {})
    assert all(uri in text_of(roots) for uri in TEST_ROOT_URIS)
    assert [r.method for r in recorder.server_requests] == ["sampling/createMessage", "elicitation/create",
                                                           "roots/list"]

    done = await client.call_tool("progress", {"steps": 3}, progress_callback=recorder.progress_callback)
    assert text_of(done) == "completed 3 steps"
    await recorder.wait_for_count(lambda item: type(item).__name__ == "ProgressUpdate", 3)
    assert [p.progress for p in recorder.progress] == [1, 2, 3]
    await recorder.wait_for_count(has_method("notifications/message"), 3)

    new_tool = text_of(await client.call_tool("add_tool", {}))
    await recorder.wait_for_notification("notifications/tools/list_changed")
    listed = {tool.name for tool in (await client.list_tools()).tools}
    assert {"echo", "sample", "ask", new_tool} <= listed


@pytest.mark.parametrize("upstream", SIDES)
@pytest.mark.parametrize("downstream", SIDES)
async def test_pairing_carries_the_whole_protocol(downstream: Side, upstream: Side) -> None:
    recorder = ClientRecorder()
    async with through_gateway(downstream, upstream, recorder) as client:
        await protocol_tour(client, recorder)
    assert recorder.errors == []
