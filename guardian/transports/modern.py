"""Downstream streamable HTTP at protocol 2026-07-28: one POST, one request, one answer.

The 2026-07-28 era has no sessions and no server→client requests; each POST carries a
request with its own `_meta` envelope, and its routing headers must agree with the body.
Requests from all clients share the upstream through `UpstreamPool` (a URL upstream: a
connection lent per request) or `SharedUpstream` (a command upstream: one process,
multiplexed), so what the server sends while handling one reaches only its client.

The answer is a JSON body, or an SSE stream if the upstream sends notifications
(progress, logs) for the request before answering it; the choice is made when the
first message for the request arrives.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup
from mcp.shared.inbound import (
    ERROR_CODE_HTTP_STATUS,
    InboundLadderRejection,
    classify_inbound_request,
)
from mcp_types import (
    JSONRPCError,
    JSONRPCMessage,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from guardian import errors
from guardian.auth.identity import identity_of
from guardian.decision import Action
from guardian.errors import UpstreamStartError
from guardian.events import Direction, Event, SessionInfo
from guardian.pipeline import Pipeline
from guardian.tenancy import AccessRefused, Route
from guardian.transports.codec import DECODED_KEY, decode_message, encode_message, sse_frame
from guardian.transports.http import jsonrpc_error_response, upstream_in_path
from guardian.transports.http_session import PING_INTERVAL, cancel_on_disconnect, rate_limit_http
from guardian.transports.upstream import http_headers
from guardian.transports.upstream_pool import SharedUpstream, UpstreamPool

if TYPE_CHECKING:
    from guardian.gateway import Guardian

logger = logging.getLogger("guardian.modern")

_SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
]


def _json_response(message: JSONRPCMessage, status: int = 200) -> Response:
    return Response(encode_message(message), status_code=status, media_type="application/json")


def _answer_response(message: JSONRPCMessage, rate_limit_status: int) -> Response:
    """A request's whole answer as JSON: a rate-limit refusal may be a 429 with `Retry-After`."""
    status, headers = rate_limit_http(message, rate_limit_status)
    return Response(encode_message(message), status_code=status, media_type="application/json",
                    headers={k.decode(): v.decode() for k, v in headers})


class ModernExchange:
    """ASGI handler for 2026-07-28 POSTs on `/mcp`."""

    def __init__(self, guardian: Guardian) -> None:
        self.guardian = guardian
        self._pools: dict[tuple[str | None, str], UpstreamPool | SharedUpstream] = {}
        self._task_group: TaskGroup | None = None
        self._sequence = itertools.count(1)

    @asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            self._task_group = tg
            try:
                yield
            finally:
                for pool in self._pools.values():
                    pool.close()
                self._pools.clear()
                tg.cancel_scope.cancel()

    def _pool(self, route: Route) -> UpstreamPool | SharedUpstream:
        """The shared upstream of one (tenant, upstream), made on first use: tenants never share
        a connection, a process or a subscription id space."""
        key = (route.context.name, route.upstream_name)
        pool = self._pools.get(key)
        if pool is None:
            assert self._task_group is not None
            upstream = route.upstream
            if upstream.transport == "stdio":
                pool = SharedUpstream(upstream, self._task_group)
            else:
                pool = UpstreamPool(upstream, self._task_group, size=self.guardian.config.server.upstream_pool_size)
            self._pools[key] = pool
        return pool

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        if request.method != "POST":
            await Response(status_code=405, headers={"Allow": "POST"})(scope, receive, send)
            return
        decoded = scope.get(DECODED_KEY) or decode_message(await request.body())
        if isinstance(decoded, errors.InvalidMessage):
            await jsonrpc_error_response(400, decoded.code, str(decoded), decoded.request_id)(scope, receive, send)
            return
        message = decoded.message
        if not isinstance(message, JSONRPCRequest | JSONRPCNotification):
            invalid = "body must be one request or notification"
            await jsonrpc_error_response(400, errors.INVALID_REQUEST, invalid)(scope, receive, send)
            return
        identity = identity_of(scope)
        try:
            route = self.guardian.route(identity, upstream_in_path(scope["path"], "/mcp"))
        except AccessRefused as refused:
            request_id = message.id if isinstance(message, JSONRPCRequest) else None
            await jsonrpc_error_response(refused.status, refused.code, str(refused), request_id)(scope, receive, send)
            return
        session = SessionInfo(
            session_id=f"modern-{next(self._sequence)}",
            transport="streamable-http",
            upstream=route.upstream.label,
            identity=identity.subject if identity else None,
            tenant=route.context.tenant_of(identity),
            principal=identity,
        )
        if isinstance(message, JSONRPCNotification):
            # No client→server notifications exist at this revision; inspect, then acknowledge.
            await route.pipeline.run(Event(session, Direction.CLIENT_TO_SERVER, message))
            await Response(status_code=202)(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in request.headers.items()}
        version = headers.get("mcp-protocol-version", "")
        body = {"method": message.method, "params": message.params or {}}
        verdict = classify_inbound_request(body, headers=headers, supported_modern_versions=[version])
        if isinstance(verdict, InboundLadderRejection):
            rejection = errors.error_response(message.id, verdict.code, verdict.message, verdict.data)
            status = ERROR_CODE_HTTP_STATUS.get(verdict.code, 400)
            await _json_response(rejection, status)(scope, receive, send)
            return
        await self._exchange(route, session, message, scope, receive, send)

    async def _exchange(
        self, route: Route, session: SessionInfo, message: JSONRPCRequest, scope: Scope, receive: Receive,
        send: Send,
    ) -> None:
        guardian = self.guardian
        pipeline = route.pipeline
        rate_limit_status = guardian.config.server.rate_limit_http_status
        event = Event(session, Direction.CLIENT_TO_SERVER, message)
        decision = await pipeline.run(event)
        if guardian.audit.wants(decision):
            guardian.audit.record(event, decision)
        if decision.action is Action.BLOCK:
            await pipeline.abandon(event)
            await _answer_response(decision.block_error(message.id), rate_limit_status)(scope, receive, send)
            return
        outbound = decision.patched if isinstance(decision.patched, JSONRPCRequest) else message
        pool = self._pool(route)
        headers = http_headers(outbound, None, None) if route.upstream.transport == "streamable-http" else None
        streaming = False
        timeout = guardian.config.server.request_timeout
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(cancel_on_disconnect, receive, tg.cancel_scope)
                async with pool.exchange(outbound, headers) as replies:
                    # A subscription stream is meant to stay open and quiet; anything else must be answered in time.
                    deadline = math.inf if message.method == "subscriptions/listen" else anyio.current_time() + timeout
                    while True:
                        with anyio.move_on_after(min(PING_INTERVAL, deadline - anyio.current_time())) as quiet:
                            received = await replies.receive()
                        if quiet.cancelled_caught:
                            if anyio.current_time() >= deadline:
                                raise TimeoutError
                            if streaming:
                                await send({"type": "http.response.body", "body": b": ping\r\n\r\n", "more_body": True})
                            continue
                        reply = await self._inspect_reply(pipeline, session, received, message)
                        if reply is None:
                            continue
                        if isinstance(reply, JSONRPCResponse | JSONRPCError):
                            reply = reply.model_copy(update={"id": message.id})
                            if streaming:
                                await _sse_send(send, reply)
                                await send({"type": "http.response.body", "body": b"", "more_body": False})
                            else:
                                await _answer_response(reply, rate_limit_status)(scope, receive, send)
                            break
                        if not streaming:
                            streaming = True
                            await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
                        await _sse_send(send, reply)
                tg.cancel_scope.cancel()
        except UpstreamStartError as exc:
            await pipeline.abandon(event)
            failure = errors.error_response(message.id, errors.UPSTREAM_UNAVAILABLE, f"upstream unavailable: {exc}")
            await _json_response(failure)(scope, receive, send)
        except TimeoutError:
            await pipeline.abandon(event)
            late = errors.error_response(
                message.id, errors.UPSTREAM_TIMEOUT, f"upstream did not answer within {timeout:g}s"
            )
            if streaming:
                await _sse_send(send, late)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            else:
                await _json_response(late)(scope, receive, send)

    async def _inspect_reply(
        self, pipeline: Pipeline, session: SessionInfo, reply: JSONRPCMessage, request: JSONRPCRequest
    ) -> JSONRPCMessage | None:
        answers = isinstance(reply, JSONRPCResponse | JSONRPCError)
        event = Event(session, Direction.SERVER_TO_CLIENT, reply, request=request if answers else None)
        decision = await pipeline.run(event)
        if self.guardian.audit.wants(decision):
            self.guardian.audit.record(event, decision)
        if decision.action is Action.ALLOW:
            return reply
        if decision.action is Action.BLOCK:
            if not answers:
                return None
            return decision.block_error(request.id, "response blocked by gateway policy")
        return decision.patched or reply


async def _sse_send(send: Send, message: JSONRPCMessage) -> None:
    await send({"type": "http.response.body", "body": sse_frame(message), "more_body": True})
