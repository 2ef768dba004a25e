"""Downstream legacy SSE (`GET /sse` + `POST /messages/?session_id=`), over the SDK transport.

Each SSE connection is one session with its own upstream. When the session ends from
the upstream side, the event stream is closed too, so the client notices instead of
waiting on a stream that will never speak again.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.sse import SseServerTransport
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send

from guardian.auth.identity import identity_of
from guardian.tenancy import AccessRefused
from guardian.transports.http import BodyLimit, jsonrpc_error_response, upstream_in_path

if TYPE_CHECKING:
    from guardian.gateway import Guardian

logger = logging.getLogger("guardian.sse")


class SSESessions:
    """Two ASGI apps: `connect` for the event stream (`/sse`, `/sse/<upstream>`), `post` for the
    client's messages.

    Each session is bound to the caller that opened it: the caller's identity is handed to
    the SDK transport as its authenticated user, and the SDK refuses (404) a POST to the
    session by anyone else, exactly as for an unknown session id.
    """

    def __init__(self, guardian: Guardian, security: TransportSecuritySettings, endpoint: str = "/messages/") -> None:
        self.guardian = guardian
        limit = guardian.config.security.limits.max_message_bytes
        # Our own limit answers first, with a JSON-RPC error; the SDK's is a backstop.
        self.transport = SseServerTransport(endpoint, security_settings=security, max_request_body_size=limit + 1)
        self.post = BodyLimit(_as_owner(self.transport.handle_post_message), limit)

    async def connect(self, scope: Scope, receive: Receive, send: Send) -> None:
        identity = identity_of(scope)
        try:
            route = self.guardian.route(identity, upstream_in_path(scope["path"], "/sse"))
        except AccessRefused as refused:
            await jsonrpc_error_response(refused.status, refused.code, str(refused))(scope, receive, send)
            return
        try:
            async with self.transport.connect_sse(_owned(scope), receive, send) as streams:
                await self.guardian.run_session(streams, "sse", identity=identity, route=route)
                await streams[1].aclose()
        except ValueError as exc:  # refused by the transport's Host/Origin check; already answered
            logger.warning("SSE connection refused: %s", exc)


def _owned(scope: Scope) -> Scope:
    """`scope` with the caller as the SDK's authenticated user (its session-owner check)."""
    identity = identity_of(scope)
    if identity is None:
        return scope
    token = AccessToken(token="", client_id=identity.tenant or "", subject=identity.subject, scopes=[])
    return {**scope, "user": AuthenticatedUser(token)}


def _as_owner(app: ASGIApp) -> ASGIApp:
    async def owned(scope: Scope, receive: Receive, send: Send) -> None:
        await app(_owned(scope), receive, send)

    return owned
