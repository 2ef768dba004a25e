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
import json
import os
import re
import sys
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Protocol

import anyio
from mcp.shared.message import SessionMessage

from guardian import errors
from guardian.relay import ReadStream, WriteStream
from guardian.transports.codec import decode_message, encode_message

CHUNK = 64 * 1024


class ByteReader(Protocol):
    async def read(self, n: int) -> bytes: ...


class ByteWriter(Protocol):
    async def write(self, data: bytes) -> None: ...

    async def flush(self) -> None: ...


async def read_lines(reader: ByteReader, max_bytes: int) -> AsyncGenerator[bytes | errors.InvalidMessage, None]:
    """Split a byte stream into lines; a line over `max_bytes` is skipped and reported.

    The report carries the message's id when its first bytes show one, so the request an
    oversize answer was meant for can be answered with an error instead of waiting forever.
    """
    buffer = bytearray()
    scanned = 0  # how much of `buffer` is known to hold no newline
    head: bytes | None = None  # the start of a line being skipped
    while True:
        chunk = await reader.read(CHUNK)
        if not chunk:
            return
        buffer += chunk
        while True:
            newline = buffer.find(b"\n", scanned)
            if newline < 0:
                scanned = len(buffer)
                break
            line = bytes(buffer[:newline])
            del buffer[: newline + 1]
            scanned = 0
            if head is not None:
                yield _too_large(head, max_bytes)
                head = None
            elif len(line) > max_bytes:
                yield _too_large(line, max_bytes)
            elif line.strip():
                yield line
        if len(buffer) > max_bytes:
            if head is None:
                head = bytes(buffer[:_ID_SNIFF])
            buffer.clear()
            scanned = 0


_ID_SNIFF = 256
_ID_PATTERN = re.compile(rb'"id"\s*:\s*(-?\d+|"(?:[^"\\]|\\.)*")')


def _too_large(head: bytes, max_bytes: int) -> errors.InvalidMessage:
    match = _ID_PATTERN.search(head[:_ID_SNIFF])
    request_id = json.loads(match.group(1)) if match else None
    return errors.InvalidMessage(errors.MESSAGE_TOO_LARGE, f"message exceeds {max_bytes} bytes", request_id)


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

    async def flush(self) -> None:
        """Wait until the event loop has handed everything to the pipe (drain only waits for room)."""
        self._writer.transport.set_write_buffer_limits(0)
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

    async def flush(self) -> None:
        pass  # unbuffered: every write went straight to the fd


async def _open_reader(fd: int) -> ByteReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=CHUNK)
    try:
        await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0, closefd=False)
        )
    except (ValueError, OSError):
        return _ThreadFile(fd, "rb")
    return _PipeReader(reader)


async def _open_writer(fd: int) -> ByteWriter:
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


class LineReadStream:
    """The client's messages, read straight off the pipe by whoever awaits them.

    No pump task and no memory stream in between: each hop between tasks costs an
    event-loop iteration per message, and the relay is the only reader anyway.
    """

    def __init__(self, reader: ByteReader, max_bytes: int) -> None:
        self._lines = read_lines(reader, max_bytes)

    async def receive(self) -> SessionMessage | Exception:
        try:
            line = await self._lines.__anext__()
        except StopAsyncIteration:
            raise anyio.EndOfStream from None
        return line if isinstance(line, errors.InvalidMessage) else decode_message(line)

    def __aiter__(self) -> LineReadStream:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        await self._lines.aclose()

    async def __aenter__(self) -> LineReadStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class LineWriteStream:
    """Messages to the client, written straight to the pipe (one line each, never interleaved)."""

    def __init__(self, writer: ByteWriter) -> None:
        self._writer = writer
        self._lock = anyio.Lock()  # the thread fallback could interleave two concurrent writes
        self._closed = False

    async def send(self, item: SessionMessage, /) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        data = encode_message(item.message) + b"\n"
        try:
            async with self._lock:
                await self._writer.write(data)
        except (BrokenPipeError, ConnectionResetError) as exc:
            self._closed = True  # the client is gone; its side of stdin reads EOF too
            raise anyio.BrokenResourceError from exc

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            # Answers already written (errors for pending requests) must reach the client.
            with anyio.CancelScope(shield=True), anyio.move_on_after(2), suppress(OSError):
                await self._writer.flush()

    async def __aenter__(self) -> LineWriteStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


@asynccontextmanager
async def stdio_downstream(
    max_message_bytes: int, fds: tuple[int, int] | None = None
) -> AsyncIterator[tuple[ReadStream, WriteStream]]:
    """The client's side of a stdio session as a read stream and a write stream.

    The read stream ends at stdin EOF, which is how a stdio client ends the session.
    """
    wire_in, wire_out = fds if fds is not None else _claim_std_fds()
    reader = await _open_reader(wire_in)
    writer = await _open_writer(wire_out)
    read_stream, write_stream = LineReadStream(reader, max_message_bytes), LineWriteStream(writer)
    try:
        yield read_stream, write_stream
    finally:
        await read_stream.aclose()
        await write_stream.aclose()
        with suppress(OSError):
            sys.stderr.flush()
