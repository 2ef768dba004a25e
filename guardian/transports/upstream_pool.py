"""A pool of upstream connections, each lent to one sessionless request at a time.

2026-07-28 requests carry no session, but the notifications a server sends while
handling one (progress, logs) carry no request id either: on a connection shared by
several clients' requests, nothing says whose log line is whose. Lending each request a
connection of its own for its lifetime makes that attribution exact, and keeps one
client's traffic off another's stream. Connections are reused once their request is
answered, so the pool only grows to the number of requests in flight at once.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import anyio
from anyio.abc import ObjectReceiveStream, TaskGroup
from mcp.shared.message import ClientMessageMetadata, SessionMessage
from mcp_types import JSONRPCError, JSONRPCMessage, JSONRPCNotification, JSONRPCRequest, JSONRPCResponse

from guardian import errors
from guardian.config import UpstreamConfig
from guardian.relay import WriteStream
from guardian.transports.upstream import UpstreamStartError, open_upstream

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
        try:
            self.inbox_send.send_nowait(message)
        except anyio.WouldBlock:
            logger.warning("upstream sent more than its request's client reads; %s not delivered", message)


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
