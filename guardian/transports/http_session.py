"""The server half of one handshake-era streamable HTTP session, built for relaying.

Why not the SDK's `StreamableHTTPServerTransport`: it answers every request POST with
an SSE stream (an `EventSourceResponse`, a ping task, a task group and two memory
streams per request), which is most of a gateway's per-call cost on HTTP. The spec
lets the server pick per request: here a request whose answer comes back with nothing
before it (the common case) is answered with a plain JSON body, and the response turns
into an SSE stream only when the server sends something first (progress, logs,
sampling, elicitation, roots), which then all travel on it, in order.

Routing of server→client messages: an answer goes to the POST that asked; a message
tied to an open request (`related_request_id`) goes to that request's stream; anything
else goes to the standalone `GET` stream, or is dropped with a log line when the client
has none open (as the spec allows, and as the SDK does).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.server.transport_security import TransportSecurityMiddleware
from mcp.shared.message import ServerMessageMetadata, SessionMessage
from mcp_types import JSONRPCError, JSONRPCMessage, JSONRPCNotification, JSONRPCRequest, JSONRPCResponse, RequestId
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from guardian import errors
from guardian.auth.identity import Identity
from guardian.transports.codec import DECODED_KEY, decode_message, encode_message, sse_frame

logger = logging.getLogger("guardian.http")

SESSION_HEADER = "mcp-session-id"
PING_INTERVAL = 15.0
"""Seconds between SSE comment pings on a quiet stream, so proxies keep it open."""
_CHANNEL_BUFFER = 64


class _ToClient:
    """The relay's write stream: routes each server→client message to its HTTP response."""

    def __init__(self, session: HttpSession) -> None:
        self._session = session

    async def send(self, item: SessionMessage, /) -> None:
        await self._session.route(item)

    async def aclose(self) -> None:
        await self._session.terminate()

    async def __aenter__(self) -> _ToClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class HttpSession:
    """One session: a read stream of client messages for the relay, and HTTP handlers."""

    def __init__(
        self,
        session_id: str,
        security: TransportSecurityMiddleware,
        identity: Identity | None = None,
        rate_limit_status: int = 200,
        path: str = "/mcp",
    ) -> None:
        self.session_id = session_id
        self.path = path
        """The endpoint that opened the session (`/mcp/<upstream>`): requests elsewhere don't find it."""
        self._security = security
        self.identity = identity
        """Who opened the session (when authentication is on); only they may use it."""
        self.rate_limit_status = rate_limit_status
        """HTTP status of a plain-JSON `RATE_LIMITED` answer (`server.rate_limit_http_status`)."""
        self._inbound_send, self.read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](
            _CHANNEL_BUFFER
        )
        self.write_stream = _ToClient(self)
        self._requests: dict[RequestId, MemoryObjectSendStream[JSONRPCMessage]] = {}
        self._standalone: MemoryObjectSendStream[JSONRPCMessage] | None = None
        self.terminated = False
        self.last_activity = anyio.current_time()

    def admits(self, identity: Identity | None, path: str) -> bool:
        """Whether a request by `identity` on `path` may use this session: a session id is not a
        credential, and it belongs to one upstream's endpoint."""
        if path != self.path:
            return False
        return self.identity is None or (identity is not None and identity.principal == self.identity.principal)

    @property
    def busy(self) -> bool:
        """A request is being answered or a GET stream is open: the session is not idle."""
        return bool(self._requests) or self._standalone is not None

    # --- server → client -------------------------------------------------------------------

    async def route(self, item: SessionMessage) -> None:
        message = item.message
        channel: MemoryObjectSendStream[JSONRPCMessage] | None = None
        if isinstance(message, JSONRPCResponse | JSONRPCError) and message.id is not None:
            channel = self._requests.pop(message.id, None)
        else:
            metadata = item.metadata
            related = metadata.related_request_id if isinstance(metadata, ServerMessageMetadata) else None
            channel = self._requests.get(related) if related is not None else None
            if channel is None:
                channel = self._standalone
        if channel is None:
            logger.info("session %s: no open stream for a server %s; not delivered", self.session_id,
                        type(message).__name__)
            return
        try:
            await channel.send(message)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            logger.info("session %s: client left before a server message arrived", self.session_id)
        if isinstance(message, JSONRPCResponse | JSONRPCError):
            channel.close()

    def _abandon(self, request_id: object) -> None:
        """The client cancelled this request: its POST ends now; a late answer is dropped."""
        channel = self._requests.pop(request_id, None) if isinstance(request_id, int | str) else None
        if channel is not None:
            channel.close()

    async def terminate(self) -> None:
        """End the session: the relay's read stream ends, open streams finish what they hold."""
        if self.terminated:
            return
        self.terminated = True
        self._inbound_send.close()
        for channel in self._requests.values():
            channel.close()
        self._requests.clear()
        if self._standalone is not None:
            self._standalone.close()

    # --- HTTP handlers ------------------------------------------------------------------------

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        self.last_activity = anyio.current_time()
        method = scope["method"]
        refusal = await self._security.validate_request(request, is_post=method == "POST")
        if refusal is not None:
            await refusal(scope, receive, send)
        elif self.terminated:
            await _error(send, 404, errors.INVALID_REQUEST, "session terminated")
        elif method == "POST":
            await self._post(scope, request, send)
        elif method == "GET":
            await self._get(request, send)
        elif method == "DELETE":
            await self.terminate()
            await _respond(send, 200, b"", [])
        else:
            await _respond(send, 405, b"", [(b"allow", b"GET, POST, DELETE")])

    async def _post(self, scope: Scope, request: Request, send: Send) -> None:
        accept = request.headers.get("accept", "")
        if "application/json" not in accept and "*/*" not in accept:
            await _error(send, 406, errors.INVALID_REQUEST, "client must accept application/json")
            return
        decoded = scope.get(DECODED_KEY) or decode_message(await request.body())
        if isinstance(decoded, errors.InvalidMessage):
            await _error(send, 400, decoded.code, str(decoded), decoded.request_id)
            return
        message = decoded.message
        item = SessionMessage(message, metadata=ServerMessageMetadata(request_context=request))
        if not isinstance(message, JSONRPCRequest):
            await self._inbound_send.send(item)
            if isinstance(message, JSONRPCNotification) and message.method == "notifications/cancelled":
                self._abandon((message.params or {}).get("requestId"))
            await _respond(send, 202, b"", self._headers())
            return
        channel_send, channel = anyio.create_memory_object_stream[JSONRPCMessage](_CHANNEL_BUFFER)
        self._requests[message.id] = channel_send
        try:
            await self._inbound_send.send(item)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self._requests.pop(message.id, None)
            await _error(send, 404, errors.INVALID_REQUEST, "session terminated")
            return
        sse = "text/event-stream" in request.headers.get("accept", "")
        await self._answer(message.id, channel, send, sse)

    async def _answer(
        self,
        request_id: RequestId,
        channel: MemoryObjectReceiveStream[JSONRPCMessage],
        send: Send,
        sse_allowed: bool,
    ) -> None:
        """JSON if the answer comes first; otherwise an SSE stream of everything up to it.

        A client that goes away mid-request is not watched for: the answer (or the relay's
        timeout error) still arrives and is written into the void, which costs less than a
        watcher task on every request.
        """
        streaming = False
        try:
            while True:
                with anyio.move_on_after(PING_INTERVAL) as quiet:
                    message = await channel.receive()
                if quiet.cancelled_caught:
                    if streaming:
                        await send({"type": "http.response.body", "body": b": ping\r\n\r\n", "more_body": True})
                    continue
                final = isinstance(message, JSONRPCResponse | JSONRPCError)
                if final and not streaming:
                    status, extra = rate_limit_http(message, self.rate_limit_status)
                    await _respond(send, status, encode_message(message), self._headers(b"application/json") + extra)
                    return
                if not streaming:
                    if not sse_allowed:
                        logger.info("session %s: client accepts no SSE; %s for request %r not delivered",
                                    self.session_id, type(message).__name__, request_id)
                        continue
                    streaming = True
                    await send({"type": "http.response.start", "status": 200,
                                "headers": self._headers(b"text/event-stream", sse=True)})
                await send({"type": "http.response.body", "body": sse_frame(message), "more_body": not final})
                if final:
                    return
        except anyio.EndOfStream:
            # No answer will come: the client cancelled the request, or ended the session.
            # (When the upstream fails, the relay answers every pending request before this.)
            # An event stream that ends without an answer is how the wire says so.
            if not streaming:
                await send({"type": "http.response.start", "status": 200,
                            "headers": self._headers(b"text/event-stream", sse=True)})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            self._requests.pop(request_id, None)

    async def _get(self, request: Request, send: Send) -> None:
        if "text/event-stream" not in request.headers.get("accept", ""):
            await _error(send, 406, errors.INVALID_REQUEST, "client must accept text/event-stream")
            return
        if self._standalone is not None:
            await _error(send, 409, errors.INVALID_REQUEST, "only one GET stream per session")
            return
        stream_send, stream = anyio.create_memory_object_stream[JSONRPCMessage](_CHANNEL_BUFFER)
        self._standalone = stream_send
        await send({"type": "http.response.start", "status": 200,
                    "headers": self._headers(b"text/event-stream", sse=True)})
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(cancel_on_disconnect, request.receive, tg.cancel_scope)
                while True:
                    with anyio.move_on_after(PING_INTERVAL) as quiet:
                        try:
                            message = await stream.receive()
                        except anyio.EndOfStream:
                            break
                    frame = b": ping\r\n\r\n" if quiet.cancelled_caught else sse_frame(message)
                    await send({"type": "http.response.body", "body": frame, "more_body": True})
                tg.cancel_scope.cancel()
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            if self._standalone is stream_send:
                self._standalone = None

    def _headers(self, content_type: bytes | None = None, sse: bool = False) -> list[tuple[bytes, bytes]]:
        headers = [(SESSION_HEADER.encode(), self.session_id.encode())]
        if content_type is not None:
            headers.append((b"content-type", content_type))
        if sse:
            headers += [(b"cache-control", b"no-cache, no-transform"), (b"x-accel-buffering", b"no")]
        return headers


async def cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    """Cancel `scope` when the HTTP client goes away (for responses that can run long)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            scope.cancel()
            return


def rate_limit_http(message: JSONRPCMessage, status: int) -> tuple[int, list[tuple[bytes, bytes]]]:
    """The HTTP status and extra headers for a plain-JSON answer: 429 + `Retry-After` for a
    `RATE_LIMITED` error when `status` is 429, else 200 and none.

    200 is the default (`server.rate_limit_http_status`) because the TypeScript SDK client
    (1.x) throws on any non-2xx answer and drops the JSON-RPC body, so its callers would
    lose the code and `retry_after`; the Python SDK reads the body at any status.
    """
    if status != 429 or not isinstance(message, JSONRPCError) or message.error.code != errors.RATE_LIMITED:
        return 200, []
    return 429, [(b"retry-after", str(retry_after_seconds(message)).encode())]


def retry_after_seconds(message: JSONRPCError) -> int:
    """`error.data.guardian.retry_after` as whole seconds for `Retry-After`: rounded up, at least 1."""
    data = message.error.data
    guardian = data.get("guardian") if isinstance(data, dict) else None
    seconds = guardian.get("retry_after") if isinstance(guardian, dict) else None
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds):
        return 1
    return max(1, math.ceil(seconds))


async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _error(send: Send, status: int, code: int, message: str, request_id: Any = None) -> None:
    body = encode_message(errors.error_response(request_id, code, message))
    await _respond(send, status, body, [(b"content-type", b"application/json")])
