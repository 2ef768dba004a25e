"""Upstream stdio: the wrapped server as a child process, newline-delimited JSON on its pipes.

The same framing as the downstream side (`LineReadStream` / `LineWriteStream`): lines
are read and written by whoever awaits them, with no pump tasks in between, and a line
over the size limit is skipped and reported rather than buffered. The SDK's
`stdio_client` hops through two tasks and two memory streams per message, which was
half of what a stdio→stdio relay added to a call.

Shutdown follows the spec's sequence, whatever ends the session (client EOF, SIGTERM,
an HTTP session closing): close the child's stdin, give it a moment to exit, then
SIGTERM and finally SIGKILL its whole process group (servers started through `npx` or a
shell are a tree), all under a cancel shield so no orphan is left behind. The child's
stderr is ours: its logs go where the gateway's go.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager, suppress

import anyio
from anyio.abc import ByteReceiveStream, ByteSendStream, Process

from guardian.errors import UpstreamStartError
from guardian.relay import ReadStream, WriteStream
from guardian.transports.stdio import LineReadStream, LineWriteStream

logger = logging.getLogger("guardian.upstream")

EXIT_GRACE = 2.0
"""Seconds a server gets to exit after its stdin closes, and again after SIGTERM."""


class _ChildOutput:
    def __init__(self, stream: ByteReceiveStream) -> None:
        self._stream = stream

    async def read(self, n: int) -> bytes:
        try:
            return await self._stream.receive(n)
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            return b""


class _ChildInput:
    def __init__(self, stream: ByteSendStream) -> None:
        self._stream = stream

    async def write(self, data: bytes) -> None:
        try:
            await self._stream.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise BrokenPipeError from exc

    async def flush(self) -> None:
        pass  # anyio's process pipes write through


@asynccontextmanager
async def stdio_upstream(
    command: Sequence[str], env: Mapping[str, str], cwd: str | None, max_message_bytes: int
) -> AsyncIterator[tuple[ReadStream, WriteStream]]:
    """Run `command` and yield its stdout/stdin as the relay's stream pair."""
    try:
        process = await anyio.open_process(
            list(command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )
    except OSError as exc:
        raise UpstreamStartError(f"cannot start {command[0]!r}: {exc.strerror or exc}") from exc
    assert process.stdout is not None and process.stdin is not None
    read_stream = LineReadStream(_ChildOutput(process.stdout), max_message_bytes)
    write_stream = LineWriteStream(_ChildInput(process.stdin))
    try:
        yield read_stream, write_stream
    finally:
        with anyio.CancelScope(shield=True):
            await _stop(process)


async def _stop(process: Process) -> None:
    """stdin EOF, then SIGTERM, then SIGKILL to the process group; never leaves an orphan."""
    assert process.stdin is not None
    with suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
        await process.stdin.aclose()
    for sig in (None, signal.SIGTERM, signal.SIGKILL):
        if sig is not None:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, sig)
        if await _exited(process, EXIT_GRACE):
            break
    else:
        logger.warning("upstream process %d survived SIGKILL", process.pid)
    if process.stdout is not None:
        with suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            await process.stdout.aclose()


async def _exited(process: Process, timeout: float) -> bool:
    # Poll the return code rather than `wait()`: a grandchild that inherited the pipes
    # would keep `wait()` (which also waits for pipe EOF) from returning.
    with anyio.move_on_after(timeout):
        while process.returncode is None:
            await anyio.sleep(0.01)
        return True
    return False
