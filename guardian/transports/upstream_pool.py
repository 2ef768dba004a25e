"""Upstream connections for sessionless (2026-07-28) requests, from many clients at once.

Two strategies, because the two kinds of upstream differ in what a connection is:

- A URL upstream is one server whatever the connection: `UpstreamPool` lends each request
  a connection of its own for its lifetime. What the server sends while handling it
  (progress, logs) then reaches exactly its client, since on a shared connection
  nothing would say whose log line is whose.
- A command upstream is a process, and its state (tools added at run time, subscriptions)
  lives in that process: a second connection would be a second server. `SharedUpstream`
  multiplexes every request over the one process, rewriting request ids, progress tokens
  and subscription ids so no two clients collide, and routes notifications back by
  them. A log line names no request: it goes to the only request in flight that asked
  for logs, and when several did it is not delivered (and says so in our log) rather
  than risk showing one client another's output.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.abc import ObjectReceiveStream, TaskGroup
from anyio.streams.memory import MemoryObjectSendStream
from mcp.shared.message import ClientMessageMetadata, SessionMessage
from mcp_types import (
    LOG_LEVEL_META_KEY,
    JSONRPCError,
    JSONRPCMessage,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
    RequestId,
)

from guardian import errors
from guardian.config import UpstreamConfig
from guardian.errors import UpstreamStartError
from guardian.relay import WriteStream
from guardian.transports.upstream import open_upstream

logger = logging.getLogger("guardian.pool")


class _Link:
    """One upstream connection, run by its own task until closed or broken."""

    def __init__(self) -> None:
        self.write: WriteStream | None = None
        self.inbox_send, self.inbox = anyio.create_memory_object_stream[JSONRPCMessage](32)
        self.ready = anyio.Event()
        self.closing = anyio.Event()
        self.failure: str | None = None

    @property
    def alive(self) -> bool:
        return self.write is not None and self.failure is None and not self.closing.is_set()

    async def run(self, config: UpstreamConfig) -> None:
        try:
            async with open_upstream(config) as (read, write), anyio.create_task_group() as tg:
                self.write = write
                self.ready.set()

                async def close_when_asked() -> None:
                    await self.closing.wait()
                    tg.cancel_scope.cancel()

                tg.start_soon(close_when_asked)
                async for item in read:
                    if isinstance(item, SessionMessage):
                        await self._deliver(item.message, write)
                self.failure = "upstream closed the connection"
                tg.cancel_scope.cancel()
        except UpstreamStartError as exc:
            self.failure = str(exc)
        except Exception as exc:
            self.failure = f"upstream failed: {exc!r}"
        finally:
            self.write = None
            self.ready.set()
            self.inbox_send.close()

    async def _deliver(self, message: JSONRPCMessage, write: WriteStream) -> None:
        if isinstance(message, JSONRPCRequest):
            # This era has no server→client requests; refuse rather than leave the server waiting.
            refusal = errors.error_response(message.id, errors.METHOD_NOT_FOUND, "no back-channel at 2026-07-28")
            await write.send(SessionMessage(refusal))
            return
        await self.inbox_send.send(message)


class UpstreamPool:
    """Lends upstream connections to single requests; see the module docstring."""

    def __init__(self, config: UpstreamConfig, task_group: TaskGroup, size: int = 8) -> None:
        self.config = config
        self._tg = task_group
        self._idle: list[_Link] = []
        # Bounds connections (leased + idle), so a burst of requests queues instead of
        # spawning a process each.
        self._slots = anyio.Semaphore(size)

    async def _lease(self) -> _Link:
        await self._slots.acquire()
        try:
            return await self._connect()
        except BaseException:
            self._slots.release()
            raise

    async def _connect(self) -> _Link:
        while self._idle:
            link = self._idle.pop()
            if link.alive:
                return link
        link = _Link()
        self._tg.start_soon(link.run, self.config)
        await link.ready.wait()
        if not link.alive:
            raise UpstreamStartError(link.failure or "upstream connection closed")
        return link

    def _release(self, link: _Link, reusable: bool) -> None:
        if reusable and link.alive:
            self._idle.append(link)
        else:
            link.closing.set()
        self._slots.release()

    def close(self) -> None:
        for link in self._idle:
            link.closing.set()
        self._idle.clear()

    @asynccontextmanager
    async def exchange(
        self, request: JSONRPCRequest, headers: dict[str, str] | None
    ) -> AsyncIterator[ObjectReceiveStream[JSONRPCMessage]]:
        """Send `request` on a leased connection; yield what the upstream sends for it.

        The stream ends with the answer, or with an error naming why the connection
        broke. A request abandoned before its answer costs its connection (the server
        may still answer late, and the next borrower must not see that).
        """
        link = await self._lease()
        answered = anyio.Event()
        send, receive = anyio.create_memory_object_stream[JSONRPCMessage](32)

        async def forward() -> None:
            async with send:
                async for message in link.inbox:
                    await send.send(message)
                    if isinstance(message, JSONRPCResponse | JSONRPCError) and message.id == request.id:
                        answered.set()
                        return
                cause = link.failure or "upstream connection closed"
                await send.send(errors.error_response(request.id, errors.UPSTREAM_UNAVAILABLE, cause))

        assert link.write is not None
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(forward)
                metadata = ClientMessageMetadata(headers=headers) if headers else None
                await link.write.send(SessionMessage(request, metadata=metadata))
                yield receive
                tg.cancel_scope.cancel()
        finally:
            if not answered.is_set() and link.alive and link.write is not None:
                cancel = JSONRPCNotification(
                    jsonrpc="2.0",
                    method="notifications/cancelled",
                    params={"requestId": request.id, "reason": "client went away"},
                )
                with anyio.CancelScope(shield=True), anyio.move_on_after(1), suppress(anyio.BrokenResourceError):
                    await link.write.send(SessionMessage(cancel))
            self._release(link, reusable=answered.is_set())


SUBSCRIPTION_META_KEY = "io.modelcontextprotocol/subscriptionId"


@dataclass(slots=True)
class _Waiter:
    original_id: RequestId
    original_token: Any
    wants_logs: bool
    send: MemoryObjectSendStream[JSONRPCMessage]


class SharedUpstream:
    """Many clients' requests over one upstream connection; see the module docstring."""

    def __init__(self, config: UpstreamConfig, task_group: TaskGroup) -> None:
        self.config = config
        self._tg = task_group
        self._link: _Link | None = None
        self._connecting = anyio.Lock()
        self._ids = itertools.count(1)
        self._waiters: dict[int, _Waiter] = {}
        self._tokens: dict[str, int] = {}

    def close(self) -> None:
        if self._link is not None:
            self._link.closing.set()

    async def _connection(self) -> _Link:
        async with self._connecting:
            if self._link is None or not self._link.alive:
                link = _Link()
                self._tg.start_soon(link.run, self.config)
                await link.ready.wait()
                if not link.alive:
                    raise UpstreamStartError(link.failure or "upstream connection closed")
                self._link = link
                self._tg.start_soon(self._dispatch, link)
            return self._link

    async def _dispatch(self, link: _Link) -> None:
        async for message in link.inbox:
            target, message = self._route(message)
            if target is None:
                continue
            with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.WouldBlock):
                target.send.send_nowait(message)  # per-request buffers: one slow client stalls no other
        cause = link.failure or "upstream connection closed"
        for gateway_id, waiter in list(self._waiters.items()):
            if self._waiters.pop(gateway_id, None) is not None:
                failure = errors.error_response(waiter.original_id, errors.UPSTREAM_UNAVAILABLE, cause)
                with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.WouldBlock):
                    waiter.send.send_nowait(failure)

    def _route(self, message: JSONRPCMessage) -> tuple[_Waiter | None, JSONRPCMessage]:
        """Whose message this is, and the message as that client must see it."""
        if isinstance(message, JSONRPCResponse | JSONRPCError):
            waiter = self._waiters.pop(message.id, None) if isinstance(message.id, int) else None
            if waiter is None:
                return None, message
            return waiter, _restore_response(message, waiter.original_id)
        assert isinstance(message, JSONRPCNotification)
        params = message.params or {}
        raw_meta = params.get("_meta")
        meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
        token = params.get("progressToken")
        subscription = meta.get(SUBSCRIPTION_META_KEY)
        if isinstance(token, str) and token in self._tokens:
            waiter = self._waiters.get(self._tokens[token])
            if waiter is not None:
                return waiter, message.model_copy(update={"params": {**params, "progressToken": waiter.original_token}})
        elif isinstance(subscription, int) and subscription in self._waiters:
            waiter = self._waiters[subscription]
            restored = {**params, "_meta": {**meta, SUBSCRIPTION_META_KEY: waiter.original_id}}
            return waiter, message.model_copy(update={"params": restored})
        else:
            candidates = [w for w in self._waiters.values() if w.wants_logs] or list(self._waiters.values())
            if len(candidates) == 1:
                return candidates[0], message
        logger.warning("%s from the shared upstream cannot be attributed to one request; not delivered",
                       message.method)
        return None, message

    @asynccontextmanager
    async def exchange(
        self, request: JSONRPCRequest, headers: dict[str, str] | None
    ) -> AsyncIterator[ObjectReceiveStream[JSONRPCMessage]]:
        link = await self._connection()
        gateway_id = next(self._ids)
        params = dict(request.params or {})
        meta = dict(params.get("_meta") or {})
        original_token = meta.get("progressToken")
        if original_token is not None:
            meta["progressToken"] = token = f"guardian-{gateway_id}"
            params["_meta"] = meta
            self._tokens[token] = gateway_id
        send, receive = anyio.create_memory_object_stream[JSONRPCMessage](256)
        self._waiters[gateway_id] = _Waiter(request.id, original_token, bool(meta.get(LOG_LEVEL_META_KEY)), send)
        outbound = request.model_copy(update={"id": gateway_id, "params": params})
        try:
            assert link.write is not None
            metadata = ClientMessageMetadata(headers=headers) if headers else None
            await link.write.send(SessionMessage(outbound, metadata=metadata))
            yield receive
        finally:
            abandoned = self._waiters.pop(gateway_id, None) is not None
            self._tokens = {t: g for t, g in self._tokens.items() if g != gateway_id}
            if abandoned and link.alive and link.write is not None:
                cancel = JSONRPCNotification(
                    jsonrpc="2.0",
                    method="notifications/cancelled",
                    params={"requestId": gateway_id, "reason": "client went away"},
                )
                with anyio.CancelScope(shield=True), anyio.move_on_after(1), suppress(anyio.BrokenResourceError):
                    await link.write.send(SessionMessage(cancel))


def _restore_response(message: JSONRPCResponse | JSONRPCError, original_id: RequestId) -> JSONRPCMessage:
    if isinstance(message, JSONRPCResponse):
        meta = message.result.get("_meta")
        if isinstance(meta, dict) and SUBSCRIPTION_META_KEY in meta:
            result = {**message.result, "_meta": {**meta, SUBSCRIPTION_META_KEY: original_id}}
            return message.model_copy(update={"id": original_id, "result": result})
    return message.model_copy(update={"id": original_id})
