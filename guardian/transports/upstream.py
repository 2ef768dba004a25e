"""Upstream connections: the gateway as an MCP client, over stdio, streamable HTTP or SSE.

Each yields the same pair of message streams, so the relay does not care which one it
talks to: our own stdio (`stdio_client`) and streamable HTTP (`http_client`) clients,
built for relaying, and the SDK's `sse_client` for legacy SSE.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from mcp.client.sse import sse_client
from mcp.shared.inbound import (
    MCP_METHOD_HEADER,
    MCP_NAME_HEADER,
    MCP_PROTOCOL_VERSION_HEADER,
    NAME_BEARING_METHODS,
    encode_header_value,
)
from mcp.shared.message import ServerMessageMetadata, SessionMessage
from mcp_types import PROTOCOL_VERSION_META_KEY, JSONRPCMessage, JSONRPCRequest

from guardian.auth.upstream_oauth import bearer_auth
from guardian.config import UpstreamConfig
from guardian.errors import UpstreamStartError, describe
from guardian.relay import ReadStream, WriteStream
from guardian.transports.http_client import http_upstream
from guardian.transports.stdio_client import stdio_upstream

_ROUTING_HEADERS = (MCP_PROTOCOL_VERSION_HEADER, MCP_METHOD_HEADER, MCP_NAME_HEADER)
_PARAM_HEADER_PREFIX = "mcp-param-"


@asynccontextmanager
async def open_upstream(
    config: UpstreamConfig, max_message_bytes: int = 4 * 1024 * 1024
) -> AsyncIterator[tuple[ReadStream, WriteStream]]:
    """Connect to the configured upstream; raises `UpstreamStartError` if it cannot start."""
    if config.transport == "stdio":
        # A wrapper is transparent: the server sees the environment its client gave us.
        env = {**os.environ, **config.env}
        async with stdio_upstream(config.command, env, config.cwd, max_message_bytes) as streams:
            yield streams
        return
    assert config.url is not None
    if config.transport == "sse":
        try:
            transport = sse_client(
                config.url,
                headers=dict(config.headers),
                timeout=config.connect_timeout,
                sse_read_timeout=config.read_timeout,
                auth=bearer_auth(config.oauth),
            )
            streams = await transport.__aenter__()
        except Exception as exc:
            raise UpstreamStartError(f"cannot connect to {config.url}: {describe(exc)}") from exc
        try:
            yield streams
        finally:
            await transport.__aexit__(None, None, None)
        return
    async with http_upstream(config) as streams:
        yield streams



def http_headers(
    message: JSONRPCMessage, original: SessionMessage | None, negotiated: str | None
) -> dict[str, str] | None:
    """The per-message headers a streamable HTTP upstream expects.

    Routing headers a downstream HTTP client sent are passed on verbatim (they were
    validated against the body on the way in); otherwise they are derived from the
    message: the `_meta` protocol version of a 2026-07-28 request, or the version
    negotiated by `initialize`.
    """
    metadata = original.metadata if original is not None else None
    request = getattr(metadata, "request_context", None) if isinstance(metadata, ServerMessageMetadata) else None
    if request is not None and hasattr(request, "headers"):
        copied = {
            name: value
            for name, value in request.headers.items()
            if name in _ROUTING_HEADERS or name.startswith(_PARAM_HEADER_PREFIX)
        }
        if copied:
            return copied
    params = message.params if isinstance(message, JSONRPCRequest) else None
    meta = params.get("_meta") if params else None
    version = meta.get(PROTOCOL_VERSION_META_KEY) if isinstance(meta, dict) else None
    if isinstance(version, str) and isinstance(message, JSONRPCRequest):
        headers = {MCP_PROTOCOL_VERSION_HEADER: version, MCP_METHOD_HEADER: message.method}
        key = NAME_BEARING_METHODS.get(message.method)
        name = params.get(key) if key and params else None
        if isinstance(name, str):
            headers[MCP_NAME_HEADER] = encode_header_value(name)
        return headers
    if negotiated is not None:
        return {MCP_PROTOCOL_VERSION_HEADER: negotiated}
    return None
