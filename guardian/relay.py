"""The message pump between one downstream session and its upstream connection.

Two pumps, one per direction, each strictly in order: read a message, build its
`Event`, run the pipeline, then forward it (or a redacted copy), or answer the sender
with a JSON-RPC error in its place. Nothing is dropped without a decision saying so,
and nothing is reordered: a slow inspection holds back later messages in the same
direction rather than letting them overtake.

Each side has an in-flight table of the requests it sent (id → request), so a response
is inspected together with the request it answers, requests that outlive
`request_timeout` are answered and cancelled upstream, and when the upstream goes away
every request still waiting gets an error naming the cause.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from mcp.shared._stream_protocols import ReadStream as _ReadStream
from mcp.shared._stream_protocols import WriteStream as _WriteStream
from mcp.shared.message import ClientMessageMetadata, ServerMessageMetadata, SessionMessage
from mcp_types import (
    JSONRPCError,
    JSONRPCMessage,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
    RequestId,
)
from pydantic import ValidationError

from guardian import errors
from guardian.decision import Action, Decision
from guardian.events import Direction, Event, SessionInfo
from guardian.observability.audit import AuditLog
from guardian.pipeline import Pipeline

logger = logging.getLogger("guardian.relay")

# The SDK's structural stream types: every SDK transport and anyio memory stream fits them.
ReadStream = _ReadStream[SessionMessage | Exception]
WriteStream = _WriteStream[SessionMessage]
HeaderStamp = Callable[[JSONRPCMessage, SessionMessage | None, str | None], dict[str, str] | None]


@dataclass(slots=True)
class _InFlight:
    request: JSONRPCRequest
    deadline: float


@dataclass(slots=True)
class _Side:
    """One peer: the streams to it and the requests it sent that await an answer."""

    name: str
    read: ReadStream
    write: WriteStream
    pending: dict[RequestId, _InFlight] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RelayOptions:
    max_in_flight: int = 64
    """Requests a client may have waiting on the upstream at once."""
    request_timeout: float = 120.0
    """Seconds a client request may wait for its answer; progress restarts the clock."""
    answer_invalid: bool = True
    """Answer unparseable client input with an error (HTTP transports already do)."""
    relate_to_requests: bool = False
    """Tag server→client messages with the client request they belong to (streamable HTTP)."""
    upstream_headers: HeaderStamp | None = None
    """Per-message HTTP headers for an HTTP upstream (protocol version, method, name)."""


class Relay:
    """Pumps one session's messages through the pipeline, both ways."""

    def __init__(
        self,
        pipeline: Pipeline,
        session: SessionInfo,
        options: RelayOptions | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.session = session
        self.options = options or RelayOptions()
        self.audit = audit
        self._expired: set[RequestId] = set()
        self._progress: dict[Any, RequestId] = {}
        self.protocol_version: str | None = None
        """Negotiated in the handshake era (from the `initialize` result)."""
        self._trace = logger.isEnabledFor(logging.DEBUG)  # decided once: the hot path skips the call

    async def run(
        self,
        client: tuple[ReadStream, WriteStream],
        server: tuple[ReadStream, WriteStream],
        upstream_label: str = "upstream",
    ) -> str | None:
        """Relay until either side closes; then answer whatever is still pending.

        Returns None when the client ended the session, or why the upstream ended it.
        """
        self._client = _Side("client", *client)
        self._server = _Side(upstream_label, *server)
        cause: str | None = None
        async with anyio.create_task_group() as tg:

            async def client_to_server() -> None:
                await self._pump(self._client, self._server, Direction.CLIENT_TO_SERVER)
                tg.cancel_scope.cancel()

            async def server_to_client() -> None:
                nonlocal cause
                try:
                    await self._pump(self._server, self._client, Direction.SERVER_TO_CLIENT)
                    cause = f"{upstream_label} closed the connection"
                except Exception as exc:  # a transport failure, not a message problem
                    cause = f"{upstream_label} failed: {errors.describe(exc)}"
                    logger.warning("session %s: %s", self.session.session_id, cause)
                await self.fail_pending(cause)
                tg.cancel_scope.cancel()

            tg.start_soon(client_to_server)
            tg.start_soon(server_to_client)
            if math.isfinite(self.options.request_timeout):
                tg.start_soon(self._watch_deadlines)
        return cause

    async def fail_pending(self, cause: str) -> None:
        """Answer every client request still waiting on the upstream (it will never answer)."""
        if not hasattr(self, "_client"):
            return  # the relay never started: nothing can be pending
        pending, self._client.pending = self._client.pending, {}
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            for request_id in pending:
                await self._send(self._client, errors.error_response(request_id, errors.UPSTREAM_UNAVAILABLE, cause))

    async def _pump(self, source: _Side, dest: _Side, direction: Direction) -> None:
        try:
            async for item in source.read:
                if isinstance(item, Exception):
                    await self._invalid(source, item, direction)
                    continue
                await self._handle(item, source, dest, direction)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass  # the transport closed its end under us: same as end of stream

    async def _handle(self, item: SessionMessage, source: _Side, dest: _Side, direction: Direction) -> None:
        message = item.message
        answered: JSONRPCRequest | None = None
        if isinstance(message, JSONRPCResponse | JSONRPCError):
            in_flight = dest.pending.pop(message.id, None) if message.id is not None else None
            if in_flight is None and message.id in self._expired:
                self._expired.discard(message.id)
                return  # already answered with a timeout error
            answered = in_flight.request if in_flight is not None else None
            if answered is not None and answered.method == "initialize" and isinstance(message, JSONRPCResponse):
                version = message.result.get("protocolVersion")
                self.protocol_version = version if isinstance(version, str) else None
        elif (
            isinstance(message, JSONRPCRequest)
            and direction is Direction.CLIENT_TO_SERVER
            and len(source.pending) >= self.options.max_in_flight
        ):
            reason = f"more than {self.options.max_in_flight} requests in flight"
            await self._send(source, errors.error_response(message.id, errors.GATEWAY_OVERLOADED, reason))
            return
        event = Event(self.session, direction, message, request=answered, protocol_version=self.protocol_version)
        decision = await self.pipeline.run(event)
        if self.audit is not None and self.audit.wants(decision):
            self.audit.record(event, decision)
        if decision.action is not Action.ALLOW:
            if decision.action is Action.BLOCK:
                await self._block(event, decision, source, dest)
                return
            if decision.patched is not None:
                message = decision.patched
        if isinstance(message, JSONRPCRequest):
            source.pending[message.id] = _InFlight(message, anyio.current_time() + self.options.request_timeout)
            self._track_progress(message)
        elif isinstance(message, JSONRPCNotification):
            self._observe_notification(message, source)
        await self._send(dest, message, item)

    async def _block(self, event: Event, decision: Decision, source: _Side, dest: _Side) -> None:
        message = event.message
        if isinstance(message, JSONRPCRequest):
            await self._send(source, decision.block_error(message.id))
            await self.pipeline.abandon(event)
        elif isinstance(message, JSONRPCResponse | JSONRPCError) and message.id is not None:
            # The requester gets an error in place of the answer; the responder is done either way.
            await self._send(dest, decision.block_error(message.id, "response blocked by gateway policy"))
        else:
            logger.info("session %s: dropped %s notification (event %s)", self.session.session_id,
                        event.method, decision.event_id)

    async def _invalid(self, source: _Side, exc: Exception, direction: Direction) -> None:
        if isinstance(exc, errors.InvalidMessage):
            code, request_id, text = exc.code, exc.request_id, str(exc)
        elif isinstance(exc, ValidationError):
            parse = any(e.get("type") == "json_invalid" for e in exc.errors())
            code = errors.PARSE_ERROR if parse else errors.INVALID_REQUEST
            request_id, text = None, "parse error" if parse else "not a JSON-RPC 2.0 message"
        else:
            code, request_id, text = errors.INVALID_REQUEST, None, errors.describe(exc)
        logger.warning("session %s: invalid message from %s: %s", self.session.session_id, source.name, text)
        if direction is Direction.CLIENT_TO_SERVER and self.options.answer_invalid:
            await self._send(source, errors.error_response(request_id, code, text))
        elif direction is Direction.SERVER_TO_CLIENT and request_id in self._client.pending:
            # An answer we could not pass on (too large): its requester hears so now, not at the timeout.
            self._client.pending.pop(request_id)
            await self._send(self._client, errors.error_response(request_id, code, f"upstream answer refused: {text}"))

    def _track_progress(self, request: JSONRPCRequest) -> None:
        meta = (request.params or {}).get("_meta")
        token = meta.get("progressToken") if isinstance(meta, dict) else None
        if token is not None:
            self._progress[token] = request.id

    def _observe_notification(self, message: JSONRPCNotification, source: _Side) -> None:
        params = message.params or {}
        if message.method == "notifications/cancelled" and source is self._client:
            request_id = params.get("requestId")
            if isinstance(request_id, int | str):
                self._client.pending.pop(request_id, None)
        elif message.method == "notifications/progress":
            request_id = self._progress.get(params.get("progressToken"))
            in_flight = self._client.pending.get(request_id) if request_id is not None else None
            if in_flight is not None:
                in_flight.deadline = anyio.current_time() + self.options.request_timeout

    def _related_request(self, message: JSONRPCMessage) -> RequestId | None:
        """The client request a server→client message belongs to, for HTTP stream routing."""
        pending = self._client.pending
        if not pending or isinstance(message, JSONRPCResponse | JSONRPCError):
            return None
        if isinstance(message, JSONRPCNotification) and message.method == "notifications/progress":
            request_id = self._progress.get((message.params or {}).get("progressToken"))
            if request_id in pending:
                return request_id
        # The newest request still open: servers send logs, sampling and elicitation
        # while handling a request, and the stdio wire does not say which.
        return next(reversed(pending))

    async def _send(self, side: _Side, message: JSONRPCMessage, original: SessionMessage | None = None) -> None:
        metadata: ServerMessageMetadata | ClientMessageMetadata | None = None
        if side is self._client:
            if self.options.relate_to_requests:
                related = self._related_request(message)
                if related is not None:
                    metadata = ServerMessageMetadata(related_request_id=related)
            if isinstance(message, JSONRPCResponse | JSONRPCError) and message.id is not None:
                self._progress_done(message.id)
        elif self.options.upstream_headers is not None:
            headers = self.options.upstream_headers(message, original, self.protocol_version)
            if headers:
                metadata = ClientMessageMetadata(headers=headers)
        if self._trace:
            logger.debug("session %s: to %s: %s %s id=%r", self.session.session_id, side.name,
                         type(message).__name__, getattr(message, "method", ""), getattr(message, "id", None))
        try:
            await side.write.send(SessionMessage(message, metadata=metadata))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            logger.debug("session %s: %s is gone; message not delivered", self.session.session_id, side.name)

    def _progress_done(self, request_id: RequestId) -> None:
        if self._progress:
            for token in [t for t, rid in self._progress.items() if rid == request_id]:
                del self._progress[token]

    async def _watch_deadlines(self) -> None:
        """Answer and cancel client requests the upstream has not answered in time."""
        period = min(1.0, self.options.request_timeout / 4)
        while True:
            await anyio.sleep(period)
            now = anyio.current_time()
            expired = [rid for rid, f in self._client.pending.items() if f.deadline <= now]
            for request_id in expired:
                in_flight = self._client.pending.pop(request_id)
                if len(self._expired) > 4096:  # answers that never came: forget the oldest wholesale
                    self._expired.clear()
                self._expired.add(request_id)
                reason = f"{self._server.name} did not answer {in_flight.request.method} within " \
                         f"{self.options.request_timeout:g}s"
                await self._send(self._client, errors.error_response(request_id, errors.UPSTREAM_TIMEOUT, reason))
                if in_flight.request.method == "initialize":
                    continue  # the spec forbids cancelling initialize
                cancel = JSONRPCNotification(
                    jsonrpc="2.0",
                    method="notifications/cancelled",
                    params={"requestId": request_id, "reason": "gateway request timeout"},
                )
                await self._send(self._server, cancel)
