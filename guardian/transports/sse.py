"""Downstream legacy SSE (`GET /sse` + `POST /messages/?session_id=`), over the SDK transport.

Each SSE connection is one session with its own upstream. When the session ends from
the upstream side, the event stream is closed too, so the client notices instead of
waiting on a stream that will never speak again.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from mcp.server.sse import SseServerTransport
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import Receive, Scope, Send

from guardian.auth.identity import identity_of
from guardian.transports.http import BodyLimit

if TYPE_CHECKING:
    from guardian.gateway import Guardian

logger = logging.getLogger("guardian.sse")


class SSESessions:
    """Two ASGI apps: `connect` for the event stream, `post` for the client's messages."""

    def __init__(self, guardian: Guardian, security: TransportSecuritySettings, endpoint: str = "/messages/") -> None:
        self.guardian = guardian
        limit = guardian.config.security.limits.max_message_bytes
        # Our own limit answers first, with a JSON-RPC error; the SDK's is a backstop.
        self.transport = SseServerTransport(endpoint, security_settings=security, max_request_body_size=limit + 1)
        self.post = BodyLimit(self.transport.handle_post_message, limit)

    async def connect(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with self.transport.connect_sse(scope, receive, send) as streams:
                await self.guardian.run_session(streams, "sse", identity=identity_of(scope))
                await streams[1].aclose()
        except ValueError as exc:  # refused by the transport's Host/Origin check; already answered
            logger.warning("SSE connection refused: %s", exc)
