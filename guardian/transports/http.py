"""Downstream streamable HTTP: one SDK server transport, and one upstream, per session.

The SDK's `StreamableHTTPSessionManager` is tied to its own `Server`; a relay needs
the raw message streams instead, so this manager creates each session's
`StreamableHTTPServerTransport` itself and hands its streams to
`Guardian.run_session`. Sessions are isolated by construction: each has its own
transport, relay and upstream connection, found only by its unguessable id.

Requests carrying a 2026-07-28 `MCP-Protocol-Version` have no session; they are served
by `ModernExchange` (single request, single answer).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING
from uuid import uuid4

import anyio
from anyio.abc import TaskGroup, TaskStatus
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER, StreamableHTTPServerTransport
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from mcp_types import RequestId
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from guardian import errors
from guardian.transports.codec import decode_message

if TYPE_CHECKING:
    from guardian.gateway import Guardian

logger = logging.getLogger("guardian.http")

_SESSION_HEADER = MCP_SESSION_ID_HEADER.lower().encode("latin-1")
_VERSION_HEADER = MCP_PROTOCOL_VERSION_HEADER.encode("latin-1")

ModernHandler = Callable[[Scope, Receive, Send], Awaitable[None]]


def jsonrpc_error_response(status: int, code: int, message: str, request_id: RequestId | None = None) -> Response:
    """An HTTP error whose body is a JSON-RPC error: clients can act on either."""
    body = errors.error_response(request_id, code, message).model_dump_json(by_alias=True, exclude_unset=True)
    return Response(body, status_code=status, media_type="application/json")


class BodyLimit:
    """Refuse request bodies over `max_bytes` with 413 and a JSON-RPC error, before parsing.

    With `validate`, a body that is not JSON-RPC is answered here too (400, with -32700 or
    -32600 and the id when readable): the SDK transport would answer -32602 without the id.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, validate: bool = False) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.validate = validate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
        # Read the whole (bounded) body up front, then replay it: the transport reads it once anyway.
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body.extend(message.get("body", b""))
            if len(body) > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        if self.validate:
            decoded = decode_message(bytes(body))
            if isinstance(decoded, errors.InvalidMessage):
                answer = jsonrpc_error_response(400, decoded.code, str(decoded), decoded.request_id)
                await answer(scope, receive, send)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"message exceeds {self.max_bytes} bytes"
        await jsonrpc_error_response(413, errors.MESSAGE_TOO_LARGE, message)(scope, receive, send)


class _Session:
    """One session's transport, and how many of its POSTs are still being answered.

    When the upstream side ends a session, its last answers (errors for pending requests)
    are still on their way out through those POSTs' streams; terminating the transport
    before they drain would cut them off.
    """

    def __init__(self, transport: StreamableHTTPServerTransport) -> None:
        self.transport = transport
        self._posts = 0
        self._drained = anyio.Event()

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        is_post = scope["method"] == "POST"
        self._posts += is_post
        try:
            await self.transport.handle_request(scope, receive, send)
        finally:
            if is_post:
                self._posts -= 1
                if self._posts == 0:
                    self._drained.set()
                    self._drained = anyio.Event()

    async def drain(self, timeout: float) -> None:
        with anyio.move_on_after(timeout):
            while self._posts:
                await self._drained.wait()



class StreamableHTTPSessions:
    """ASGI app for `/mcp`: routes each request to its session's transport."""

    def __init__(
        self,
        guardian: Guardian,
        security: TransportSecuritySettings,
        modern: ModernHandler | None = None,
    ) -> None:
        self.guardian = guardian
        self.security = security
        self.modern = modern
        server = guardian.config.server
        self.max_sessions = server.max_sessions
        self.idle_timeout = server.session_idle_timeout
        self._sessions: dict[str, _Session] = {}
        self._task_group: TaskGroup | None = None
        self.app = BodyLimit(self._route, guardian.config.security.limits.max_message_bytes, validate=True)

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    @asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            self._task_group = tg
            try:
                yield
            finally:
                tg.cancel_scope.cancel()
                self._task_group = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        version = headers.get(_VERSION_HEADER)
        if version is not None and version.decode("latin-1") not in HANDSHAKE_PROTOCOL_VERSIONS:
            if self.modern is None:
                await jsonrpc_error_response(
                    400, -32022, "unsupported protocol version"
                )(scope, receive, send)
                return
            await self.modern(scope, receive, send)
            return
        session_id = headers.get(_SESSION_HEADER)
        if session_id is not None:
            session = self._sessions.get(session_id.decode("latin-1"))
            if session is None:
                await jsonrpc_error_response(404, errors.INVALID_REQUEST, "session not found")(
                    scope, receive, send
                )
                return
            await session.handle(scope, receive, send)
            if session.transport.is_terminated:
                self._forget(session.transport)
            return
        if scope["method"] != "POST":
            await jsonrpc_error_response(400, errors.INVALID_REQUEST, "missing Mcp-Session-Id header")(
                scope, receive, send
            )
            return
        if len(self._sessions) >= self.max_sessions:
            await jsonrpc_error_response(503, errors.GATEWAY_OVERLOADED, "too many open sessions")(
                scope, receive, send
            )
            return
        await self._open_session(scope, receive, send)

    async def _open_session(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Start a session for an opening request; discard it again if the request fails."""
        transport = StreamableHTTPServerTransport(
            mcp_session_id=uuid4().hex,
            security_settings=self.security,
            idle_timeout=self.idle_timeout,
        )
        session_id = transport.mcp_session_id
        assert session_id is not None and self._task_group is not None
        session = self._sessions[session_id] = _Session(transport)

        async def serve(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
            try:
                async with transport.connect() as streams:
                    task_status.started()
                    idle = transport.idle_scope or anyio.CancelScope()
                    with idle:
                        await self.guardian.run_session(streams, "streamable-http", session_id)
                    if idle.cancelled_caught:
                        logger.info("session %s closed after %gs idle", session_id, self.idle_timeout)
                    else:
                        await session.drain(timeout=5)
            finally:
                self._forget(transport)
                with anyio.CancelScope(shield=True):
                    await transport.terminate()

        status: int | None = None

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self._task_group.start(serve)
        try:
            await session.handle(scope, receive, watch)
        finally:
            if status is None or status >= 400:
                self._forget(transport)
                with anyio.CancelScope(shield=True):
                    await transport.terminate()

    def _forget(self, transport: StreamableHTTPServerTransport) -> None:
        if transport.mcp_session_id is not None:
            self._sessions.pop(transport.mcp_session_id, None)
