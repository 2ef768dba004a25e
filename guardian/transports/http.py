"""Downstream streamable HTTP: the `/mcp` endpoint, one `HttpSession` and one upstream per session.

The SDK's `StreamableHTTPSessionManager` is tied to its own `Server`; a relay needs the
raw message streams instead, so sessions are managed here and each one's streams go to
`Guardian.run_session`. Sessions are isolated by construction: each has its own
session object, relay and upstream connection, found only by its unguessable id.

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
from anyio.abc import TaskGroup
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from mcp.shared.message import SessionMessage
from mcp_types import JSONRPCRequest, RequestId
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from guardian import errors
from guardian.auth.identity import identity_of
from guardian.tenancy import AccessRefused, Route
from guardian.transports.codec import DECODED_KEY, decode_message, encode_message
from guardian.transports.http_session import HttpSession

if TYPE_CHECKING:
    from guardian.gateway import Guardian

logger = logging.getLogger("guardian.http")

_SESSION_HEADER = MCP_SESSION_ID_HEADER.lower().encode("latin-1")
_VERSION_HEADER = MCP_PROTOCOL_VERSION_HEADER.encode("latin-1")

ModernHandler = Callable[[Scope, Receive, Send], Awaitable[None]]


def upstream_in_path(path: str, endpoint: str) -> str | None:
    """The upstream a request names by its path: `/mcp/files` -> `files`; `/mcp` -> None (the
    caller's default)."""
    if not path.startswith(endpoint + "/"):
        return None
    return path[len(endpoint) + 1 :].rstrip("/") or None


def jsonrpc_error_response(status: int, code: int, message: str, request_id: RequestId | None = None) -> Response:
    """An HTTP error whose body is a JSON-RPC error: clients can act on either."""
    body = encode_message(errors.error_response(request_id, code, message))
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
            scope[DECODED_KEY] = decoded  # parsed once: handlers behind us reuse it
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


class StreamableHTTPSessions:
    """ASGI app for `/mcp`: routes each request to its session, opens sessions on `initialize`."""

    def __init__(
        self,
        guardian: Guardian,
        security: TransportSecuritySettings,
        modern: ModernHandler | None = None,
    ) -> None:
        self.guardian = guardian
        self.security = TransportSecurityMiddleware(security)
        self.modern = modern
        server = guardian.config.server
        self.max_sessions = server.max_sessions
        self.idle_timeout = server.session_idle_timeout
        self.rate_limit_status = server.rate_limit_http_status
        self._sessions: dict[str, HttpSession] = {}
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
                await jsonrpc_error_response(400, -32022, "unsupported protocol version")(scope, receive, send)
                return
            await self.modern(scope, receive, send)
            return
        session_id = headers.get(_SESSION_HEADER)
        path = scope["path"]
        if session_id is not None:
            session = self._sessions.get(session_id.decode("latin-1"))
            if session is None or not session.admits(identity_of(scope), path):  # another caller's: as if absent
                await jsonrpc_error_response(404, errors.INVALID_REQUEST, "session not found")(scope, receive, send)
                return
            await session.handle(scope, receive, send)
            if session.terminated:
                self._sessions.pop(session.session_id, None)
            return
        decoded = scope.get(DECODED_KEY)
        message = decoded.message if isinstance(decoded, SessionMessage) else None
        if not (isinstance(message, JSONRPCRequest) and message.method == "initialize"):
            await jsonrpc_error_response(400, errors.INVALID_REQUEST, "missing Mcp-Session-Id header")(
                scope, receive, send
            )
            return
        if len(self._sessions) >= self.max_sessions:
            await jsonrpc_error_response(503, errors.GATEWAY_OVERLOADED, "too many open sessions")(
                scope, receive, send
            )
            return
        identity = identity_of(scope)
        try:
            route = self.guardian.route(identity, upstream_in_path(path, "/mcp"))
        except AccessRefused as refused:
            await jsonrpc_error_response(refused.status, refused.code, str(refused), message.id)(scope, receive, send)
            return
        session = HttpSession(uuid4().hex, self.security, identity, self.rate_limit_status, path)
        self._sessions[session.session_id] = session
        assert self._task_group is not None
        self._task_group.start_soon(self._serve, session, route)
        await session.handle(scope, receive, send)

    async def _serve(self, session: HttpSession, route: Route) -> None:
        """Relay the session until it ends (DELETE, idle, upstream gone), then forget it."""
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._expire_when_idle, session)
                streams = (session.read_stream, session.write_stream)
                await self.guardian.run_session(
                    streams, "streamable-http", session.session_id, session.identity, route
                )
                tg.cancel_scope.cancel()
        finally:
            self._sessions.pop(session.session_id, None)
            await session.terminate()

    async def _expire_when_idle(self, session: HttpSession) -> None:
        while not session.terminated:
            await anyio.sleep(min(self.idle_timeout, 30.0))
            if not session.busy and anyio.current_time() - session.last_activity >= self.idle_timeout:
                logger.info("session %s closed after %gs idle", session.session_id, self.idle_timeout)
                await session.terminate()
