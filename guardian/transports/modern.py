"""Downstream streamable HTTP at protocol 2026-07-28: one POST, one request, one answer.

The 2026-07-28 era has no sessions and no server→client requests; each POST carries a
request with its own `_meta` envelope, and its routing headers must agree with the body.
So these requests need no per-client upstream: they share one upstream connection,
opened on first use and reopened after a failure, with request ids rewritten so two
clients that both use id 1 never see each other's answers.

The answer is a JSON body, or an SSE stream if the upstream sends notifications
(progress, logs) for the request before answering it; the choice is made when the
first message for the request arrives.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import ObjectSendStream, TaskGroup
from mcp.shared.inbound import (
    ERROR_CODE_HTTP_STATUS,
    InboundLadderRejection,
    classify_inbound_request,
)
from mcp.shared.message import ClientMessageMetadata, SessionMessage
from mcp_types import (
    JSONRPCError,
    JSONRPCMessage,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
    RequestId,
    jsonrpc_message_adapter,
)
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from guardian import errors
from guardian.decision import Action
from guardian.events import Direction, Event, SessionInfo
from guardian.relay import WriteStream
from guardian.transports.upstream import UpstreamStartError, http_headers, open_upstream

if TYPE_CHECKING:
    from guardian.gateway import Guardian

logger = logging.getLogger("guardian.modern")

_SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
]


def _dump(message: JSONRPCMessage) -> bytes:
    return message.model_dump_json(by_alias=True, exclude_unset=True).encode()


def _json_response(message: JSONRPCMessage, status: int = 200) -> Response:
    return Response(_dump(message), status_code=status, media_type="application/json")


class _SharedUpstream:
    """One upstream connection carrying many clients' independent requests."""

    def __init__(self, guardian: Guardian, task_group: TaskGroup) -> None:
        self.guardian = guardian
        self._tg = task_group
        self._ids = itertools.count(1)
        self._waiters: dict[RequestId, ObjectSendStream[JSONRPCMessage]] = {}
        self._progress: dict[Any, RequestId] = {}
        self._write: WriteStream | None = None
        self._ready: anyio.Event | None = None
        self._failure: str | None = None

    async def _connection(self) -> WriteStream:
        if self._write is not None:
            return self._write
        if self._ready is None:
            self._ready = anyio.Event()
            self._failure = None
            self._tg.start_soon(self._run)
        await self._ready.wait()
        if self._write is None:
            raise UpstreamStartError(self._failure or "upstream connection closed")
        return self._write

    async def _run(self) -> None:
        ready = self._ready
        assert ready is not None
        cause = "upstream closed the connection"
        try:
            async with open_upstream(self.guardian.require_upstream()) as (read, write):
                self._write = write
                ready.set()
                async for item in read:
                    if isinstance(item, SessionMessage):
                        await self._dispatch(item.message, write)
        except Exception as exc:
            cause = str(exc) if isinstance(exc, UpstreamStartError) else f"upstream failed: {exc!r}"
            logger.error("2026-07-28 upstream link: %s", cause)
        finally:
            self._write, self._ready, self._failure = None, None, cause
            ready.set()
            waiters, self._waiters = self._waiters, {}
            for upstream_id, stream in waiters.items():
                with anyio.CancelScope(shield=True):
                    error = errors.error_response(upstream_id, errors.UPSTREAM_UNAVAILABLE, cause)
                    with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                        await stream.send(error)

    async def _dispatch(self, message: JSONRPCMessage, write: WriteStream) -> None:
        if isinstance(message, JSONRPCResponse | JSONRPCError):
            target = self._waiters.pop(message.id, None) if message.id is not None else None
        elif isinstance(message, JSONRPCNotification):
            token = (message.params or {}).get("progressToken")
            owner = self._progress.get(token) if token is not None else None
            if owner is None and self._waiters:
                owner = next(reversed(self._waiters))
            target = self._waiters.get(owner) if owner is not None else None
        else:
            # This era has no server→client requests; say so rather than leave the server waiting.
            refusal = errors.error_response(message.id, errors.METHOD_NOT_FOUND, "no back-channel at 2026-07-28")
            await write.send(SessionMessage(refusal))
            return
        if target is None:
            logger.warning("2026-07-28 upstream link: %s with no open request; not delivered",
                           type(message).__name__)
            return
        with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):  # the client went away
            await target.send(message)

    @asynccontextmanager
    async def exchange(
        self, request: JSONRPCRequest, headers: dict[str, str] | None
    ) -> AsyncIterator[anyio.abc.ObjectReceiveStream[JSONRPCMessage]]:
        """Send `request` upstream under a fresh id; yield the stream of messages for it."""
        write = await self._connection()
        upstream_id = next(self._ids)
        send, receive = anyio.create_memory_object_stream[JSONRPCMessage](16)
        self._waiters[upstream_id] = send
        meta = (request.params or {}).get("_meta")
        token = meta.get("progressToken") if isinstance(meta, dict) else None
        if token is not None:
            self._progress[token] = upstream_id
        outbound = request.model_copy(update={"id": upstream_id})
        answered = False
        try:
            metadata = ClientMessageMetadata(headers=headers) if headers else None
            await write.send(SessionMessage(outbound, metadata=metadata))
            yield receive
            answered = upstream_id not in self._waiters
        finally:
            self._waiters.pop(upstream_id, None)
            if token is not None:
                self._progress.pop(token, None)
            if not answered and self._write is not None:
                cancel = JSONRPCNotification(
                    jsonrpc="2.0",
                    method="notifications/cancelled",
                    params={"requestId": upstream_id, "reason": "client went away"},
                )
                with anyio.CancelScope(shield=True), anyio.move_on_after(1):
                    await self._write.send(SessionMessage(cancel))


class ModernExchange:
    """ASGI handler for 2026-07-28 POSTs on `/mcp`."""

    def __init__(self, guardian: Guardian) -> None:
        self.guardian = guardian
        self._upstream: _SharedUpstream | None = None
        self._sequence = itertools.count(1)

    @asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            self._upstream = _SharedUpstream(self.guardian, tg)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        if request.method != "POST":
            await Response(status_code=405, headers={"Allow": "POST"})(scope, receive, send)
            return
        body = await request.body()
        try:
            decoded = json.loads(body)
        except (ValueError, RecursionError):
            await _json_response(errors.error_response(None, errors.PARSE_ERROR, "parse error"), 400)(
                scope, receive, send
            )
            return
        message: JSONRPCMessage | None
        try:
            message = jsonrpc_message_adapter.validate_python(decoded, by_name=False)
        except ValidationError:
            message = None
        if not isinstance(message, JSONRPCRequest | JSONRPCNotification):
            invalid = errors.error_response(None, errors.INVALID_REQUEST, "body must be one request or notification")
            await _json_response(invalid, 400)(scope, receive, send)
            return
        session = SessionInfo(
            session_id=f"modern-{next(self._sequence)}",
            transport="streamable-http",
            upstream=self.guardian.require_upstream().label,
        )
        if isinstance(message, JSONRPCNotification):
            # No client→server notifications exist at this revision; inspect, then acknowledge.
            await self.guardian.pipeline.run(Event(session, Direction.CLIENT_TO_SERVER, message))
            await Response(status_code=202)(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in request.headers.items()}
        version = headers.get("mcp-protocol-version", "")
        verdict = classify_inbound_request(decoded, headers=headers, supported_modern_versions=[version])
        if isinstance(verdict, InboundLadderRejection):
            rejection = errors.error_response(message.id, verdict.code, verdict.message, verdict.data)
            status = ERROR_CODE_HTTP_STATUS.get(verdict.code, 400)
            await _json_response(rejection, status)(scope, receive, send)
            return
        await self._exchange(session, message, request, scope, receive, send)

    async def _exchange(
        self, session: SessionInfo, message: JSONRPCRequest, request: Request, scope: Scope, receive: Receive,
        send: Send,
    ) -> None:
        guardian = self.guardian
        event = Event(session, Direction.CLIENT_TO_SERVER, message)
        decision = await guardian.pipeline.run(event)
        if decision.action is not Action.ALLOW:
            guardian.audit.record(event, decision)
        if decision.action is Action.BLOCK:
            data = {"guardian": {"decision": "block", "reasons": decision.reasons, "request_id": decision.event_id}}
            blocked = errors.error_response(message.id, errors.BLOCKED, "blocked by gateway policy", data)
            await _json_response(blocked)(scope, receive, send)
            return
        outbound = decision.patched if isinstance(decision.patched, JSONRPCRequest) else message
        assert self._upstream is not None
        headers = http_headers(outbound, None, None) if guardian.config.upstream and \
            guardian.config.upstream.transport == "streamable-http" else None
        streaming = False
        timeout = guardian.config.server.request_timeout
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_cancel_on_disconnect, receive, tg.cancel_scope)
                async with self._upstream.exchange(outbound, headers) as replies:
                    while True:
                        with anyio.fail_after(timeout):
                            received = await replies.receive()
                        reply = await self._inspect_reply(session, received, message)
                        if reply is None:
                            continue
                        if isinstance(reply, JSONRPCResponse | JSONRPCError):
                            reply = reply.model_copy(update={"id": message.id})
                            if streaming:
                                await _sse_send(send, reply)
                                await send({"type": "http.response.body", "body": b"", "more_body": False})
                            else:
                                await _json_response(reply)(scope, receive, send)
                            break
                        if not streaming:
                            streaming = True
                            await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
                        await _sse_send(send, reply)
                tg.cancel_scope.cancel()
        except UpstreamStartError as exc:
            failure = errors.error_response(message.id, errors.UPSTREAM_UNAVAILABLE, f"upstream unavailable: {exc}")
            await _json_response(failure)(scope, receive, send)
        except TimeoutError:
            late = errors.error_response(
                message.id, errors.UPSTREAM_TIMEOUT, f"upstream did not answer within {timeout:g}s"
            )
            if streaming:
                await _sse_send(send, late)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            else:
                await _json_response(late)(scope, receive, send)

    async def _inspect_reply(
        self, session: SessionInfo, reply: JSONRPCMessage, request: JSONRPCRequest
    ) -> JSONRPCMessage | None:
        answers = isinstance(reply, JSONRPCResponse | JSONRPCError)
        event = Event(session, Direction.SERVER_TO_CLIENT, reply, request=request if answers else None)
        decision = await self.guardian.pipeline.run(event)
        if decision.action is Action.ALLOW:
            return reply
        self.guardian.audit.record(event, decision)
        if decision.action is Action.BLOCK:
            if not answers:
                return None
            data = {"guardian": {"decision": "block", "reasons": decision.reasons, "request_id": decision.event_id}}
            return errors.error_response(request.id, errors.BLOCKED, "response blocked by gateway policy", data)
        return decision.patched or reply


async def _sse_send(send: Send, message: JSONRPCMessage) -> None:
    frame = b"event: message\r\ndata: " + _dump(message) + b"\r\n\r\n"
    await send({"type": "http.response.body", "body": frame, "more_body": True})


async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    """Closing the response stream is how a 2026-07-28 client cancels its request."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            scope.cancel()
            return

