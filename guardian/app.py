"""The HTTP face of the gateway: a Starlette app with `/mcp`, `/sse`, `/messages/`, `/health`, `/metrics`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import Receive, Scope, Send

from guardian import __version__
from guardian.auth.settings import AuthSettings, is_loopback
from guardian.transports.http import StreamableHTTPSessions
from guardian.transports.modern import ModernExchange
from guardian.transports.sse import SSESessions

if TYPE_CHECKING:
    from guardian.gateway import Guardian

ASGIHandler = Callable[[Scope, Receive, Send], Awaitable[None]]


class _Endpoint:
    """Marks a bound ASGI handler as an ASGI app for Starlette's router (not a request handler)."""

    def __init__(self, handler: ASGIHandler) -> None:
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.handler(scope, receive, send)


def transport_security(guardian: Guardian) -> TransportSecuritySettings:
    """DNS-rebinding protection: on by default for loopback binds, or whenever hosts are configured."""
    server = guardian.config.server
    if server.allowed_hosts:
        return TransportSecuritySettings(
            allowed_hosts=list(server.allowed_hosts), allowed_origins=list(server.allowed_origins)
        )
    if is_loopback(server.bind_host):
        hosts = ["127.0.0.1", "localhost", "[::1]"]
        return TransportSecuritySettings(
            allowed_hosts=[f"{h}:*" for h in hosts] + hosts,
            allowed_origins=[f"http://{h}:*" for h in hosts] + list(server.allowed_origins),
        )
    return TransportSecuritySettings(enable_dns_rebinding_protection=False)


def create_app(guardian: Guardian, authentication: AuthSettings | None = None) -> ASGIHandler:
    """The app; with authentication enabled (`authentication`, else the config's), behind `AuthMiddleware`."""
    security = transport_security(guardian)
    modern = ModernExchange(guardian)
    sessions = StreamableHTTPSessions(guardian, security, modern=modern)
    sse = SSESessions(guardian, security)

    async def health(request: Request) -> JSONResponse:
        upstream = guardian.config.upstream
        return JSONResponse(
            {
                "status": "ok",
                "version": __version__,
                "upstream": upstream.label if upstream else None,
                "sessions": sessions.session_count,
            }
        )

    async def metrics(request: Request) -> Response:
        # Behind AuthMiddleware like every route: public only with `authentication.protect_metrics: false`.
        if guardian.metrics is None:  # `monitoring.metrics: false`
            return Response(status_code=404)
        body, content_type = guardian.metrics.exposition(request.headers.get("accept"))
        return Response(body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with sessions.run(), modern.run(), guardian.background():
            yield

    routes = Starlette(
        routes=[
            Route("/mcp", endpoint=_Endpoint(sessions), methods=["GET", "POST", "DELETE"]),
            Route("/sse", endpoint=_Endpoint(sse.connect), methods=["GET"]),
            Route("/sse/{upstream}", endpoint=_Endpoint(sse.connect), methods=["GET"]),
            Mount("/messages/", app=sse.post),
            Route("/health", endpoint=health, methods=["GET"]),
            Route("/metrics", endpoint=metrics, methods=["GET"]),
        ],
        lifespan=lifespan,
    )

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        # The hot path skips Starlette's middleware stack and router: /mcp is one exact path.
        if scope["type"] == "http" and (scope["path"] == "/mcp" or scope["path"].startswith("/mcp/")):
            await sessions(scope, receive, send)
        else:
            await routes(scope, receive, send)

    auth = authentication if authentication is not None else getattr(guardian.config, "authentication", None)
    if isinstance(auth, AuthSettings) and auth.enabled:
        from guardian.auth.middleware import AuthMiddleware  # PyJWT and friends load only when used

        return AuthMiddleware(app, auth)
    return app
