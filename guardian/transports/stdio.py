"""Downstream stdio: newline-delimited JSON-RPC on our own stdin/stdout.

Not the SDK's `stdio_server`, for two reasons that matter to a gateway: it reads lines
of any length (a hostile client could make us buffer gigabytes before any limit
applies), and a line it cannot parse reaches the reader as a bare exception, with the
request id lost. Here oversize lines are discarded as they stream in, and every bad
line becomes an `InvalidMessage` carrying the right code and, when it can be read,
the id, so the relay can answer it.

Pipes are driven by the event loop directly (no thread hop per line), which is most of
the per-message cost of a stdio hop; regular files and other non-pipes fall back to
threads.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Protocol

import anyio
from mcp.shared.message import SessionMessage

from guardian import errors
from guardian.relay import ReadStream, WriteStream
from guardian.transports.codec import decode_message

CHUNK = 64 * 1024


class _ByteReader(Protocol):
    async def read(self, n: int) -> bytes: ...


class _ByteWriter(Protocol):
    async def write(self, data: bytes) -> None: ...


async def read_lines(reader: _ByteReader, max_bytes: int) -> AsyncIterator[bytes | errors.InvalidMessage]:
    """Split a byte stream into lines; a line over `max_bytes` is skipped and reported."""
    buffer = b""
    discarding = False
    while True:
        chunk = await reader.read(CHUNK)
        if not chunk:
            return
        buffer += chunk
        while True:
            newline = buffer.find(b"\n")
            if newline < 0:
                break
            line, buffer = buffer[:newline], buffer[newline + 1 :]
            if discarding:
                discarding = False
                yield errors.InvalidMessage(errors.MESSAGE_TOO_LARGE, f"message exceeds {max_bytes} bytes")
            elif len(line) > max_bytes:
                yield errors.InvalidMessage(errors.MESSAGE_TOO_LARGE, f"message exceeds {max_bytes} bytes")
            elif line.strip():
                yield line
        if len(buffer) > max_bytes:
            discarding, buffer = True, b""


class _PipeReader:
    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    async def read(self, n: int) -> bytes:
        return await self._reader.read(n)


class _PipeWriter:
    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    async def write(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()


class _ThreadFile:
    """Fallback for stdin/stdout that are not pipes (files, some terminals)."""

    def __init__(self, fd: int, mode: str) -> None:
        self._file = anyio.wrap_file(os.fdopen(fd, mode, buffering=0, closefd=False))

    async def read(self, n: int) -> bytes:
        data: bytes = await self._file.read(n)
        return data

    async def write(self, data: bytes) -> None:
        await self._file.write(data)


async def _open_reader(fd: int) -> _ByteReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=CHUNK)
    try:
        await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0, closefd=False)
        )
    except (ValueError, OSError):
        return _ThreadFile(fd, "rb")
    return _PipeReader(reader)


async def _open_writer(fd: int) -> _ByteWriter:
    loop = asyncio.get_running_loop()
    try:
        transport, protocol = await loop.connect_write_pipe(
            asyncio.streams.FlowControlMixin, os.fdopen(fd, "wb", buffering=0, closefd=False)
        )
    except (ValueError, OSError):
        return _ThreadFile(fd, "wb")
    return _PipeWriter(asyncio.StreamWriter(transport, protocol, None, loop))


def _claim_std_fds() -> tuple[int, int]:
    """Private copies of fds 0/1 for the wire; 0 becomes /dev/null and 1 becomes stderr.

    Anything else in the process (a library that prints, a child that inherits fds)
    then cannot read our input or corrupt our output framing.
    """
    wire_in, wire_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    return wire_in, wire_out


@asynccontextmanager
async def stdio_downstream(
    max_message_bytes: int, fds: tuple[int, int] | None = None
) -> AsyncIterator[tuple[ReadStream, WriteStream]]:
    """The client's side of a stdio session as a pair of anyio streams.

    The read stream ends at stdin EOF, which is how a stdio client ends the session.
    """
    wire_in, wire_out = fds if fds is not None else _claim_std_fds()
    reader = await _open_reader(wire_in)
    writer = await _open_writer(wire_out)
    read_send, read_recv = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_send, write_recv = anyio.create_memory_object_stream[SessionMessage](0)

    async def pump_in() -> None:
        async with read_send:
            async for line in read_lines(reader, max_message_bytes):
                await read_send.send(line if isinstance(line, errors.InvalidMessage) else decode_message(line))

    flushed = anyio.Event()

    async def pump_out() -> None:
        try:
            async with write_recv:
                async for item in write_recv:
                    data = item.message.model_dump_json(by_alias=True, exclude_unset=True)
                    await writer.write(data.encode() + b"\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client is gone; the read side sees EOF too
        finally:
            flushed.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(pump_in)
        tg.start_soon(pump_out)
        try:
            yield read_recv, write_send
        finally:
            # Let answers already queued (errors for pending requests) reach the client.
            write_send.close()
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                await flushed.wait()
            tg.cancel_scope.cancel()
    with suppress(OSError):
        sys.stderr.flush()
