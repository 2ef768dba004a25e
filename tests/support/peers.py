"""Reusable peers for tests: the demo upstream as a process, and an SDK client that records.

Plain functions and async context managers (no pytest fixtures), so any test, fixture or
benchmark can compose them. Typical use::

    recorder = ClientRecorder()
    async with demo_http_server("streamable-http") as server:
        async with open_client(server.url, recorder=recorder) as client:
            await client.call_tool("progress", {"steps": 2}, progress_callback=recorder.progress_callback)
            await recorder.wait_for_notification("notifications/message")

Nothing here sleeps to synchronise: servers are awaited by polling their TCP port (bounded by a
timeout) and notifications by `ClientRecorder.wait_for`, which wakes on each arrival.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, TypeVar, cast
from urllib.parse import urlsplit

import anyio
import anyio.abc
from mcp import Client, StdioServerParameters
from mcp.client import ClientRequestContext, IncomingMessage, Transport
from mcp.client.client import ConnectMode
from mcp.client.sse import sse_client
from mcp.server import Server
from mcp.server.mcpserver import MCPServer
from mcp.types import (
    CreateMessageRequestParams,
    CreateMessageResult,
    ElicitRequestParams,
    ElicitResult,
    Implementation,
    ListRootsResult,
    LoggingLevel,
    LoggingMessageNotificationParams,
    Root,
    ServerNotification,
    TextContent,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The repository root (tests/support/peers.py -> ../../)."""

DEMO_SERVER = REPO_ROOT / "examples" / "demo_server.py"
"""The bundled example upstream."""

LOOPBACK = "127.0.0.1"

# --- fixed answers the client callbacks give, so tests can assert on them ---------------------

SAMPLING_REPLY = "This is the fixed test completion."
"""Text of every sampling (`sampling/createMessage`) answer."""

SAMPLING_MODEL = "guardian-test-model"
"""`model` of every sampling answer."""

ELICITATION_CONTENT: dict[str, str | int | float | bool | list[str] | None] = {"answer": "forty-two"}
"""`content` of every accepted elicitation; matches the demo server's `ask` form (`answer: str`)."""

TEST_ROOTS: tuple[Root, ...] = (
    Root(uri="file:///guardian/project-a", name="project-a"),  # type: ignore[arg-type]  # FileUrl coerces str
    Root(uri="file:///guardian/project-b", name="project-b"),  # type: ignore[arg-type]
)
"""Roots every `roots/list` answer lists."""

TEST_ROOT_URIS: tuple[str, ...] = tuple(str(root.uri) for root in TEST_ROOTS)

DEFAULT_START_TIMEOUT = 15.0
DEFAULT_STOP_TIMEOUT = 3.0
DEFAULT_WAIT_TIMEOUT = 5.0

HttpTransport = Literal["streamable-http", "sse"]
ClientTarget = StdioServerParameters | str | Transport | MCPServer | Server[Any]
"""What `open_client` connects to: stdio params, an HTTP(S) URL, any SDK `Transport`, or an
in-process `MCPServer`/`Server` (the SDK connects to those without a subprocess)."""

_T = TypeVar("_T")


# --- ports and processes ----------------------------------------------------------------------


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that was free on `host` a moment ago (the kernel picks it; tiny reuse race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    """A running HTTP server subprocess started by `http_server_process`."""

    process: anyio.abc.Process
    host: str
    port: int
    path: str
    _stderr: IO[bytes] = field(repr=False)

    @property
    def url(self) -> str:
        """`http://host:port/path`, e.g. the streamable-HTTP endpoint or the SSE GET endpoint."""
        return f"http://{self.host}:{self.port}{self.path}"

    @property
    def base_url(self) -> str:
        """`http://host:port` without the path."""
        return f"http://{self.host}:{self.port}"

    @property
    def returncode(self) -> int | None:
        """The exit status, or `None` while the process runs."""
        return self.process.returncode

    def stderr_text(self) -> str:
        """Everything the process wrote to stderr so far (kept in a temporary file)."""
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    async def wait(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> int:
        """Wait for the process to exit by itself (e.g. after the demo's `crash` tool)."""
        with anyio.fail_after(timeout):
            return await self.process.wait()


async def _port_accepts(host: str, port: int) -> bool:
    try:
        stream = await anyio.connect_tcp(host, port)
    except OSError:
        return False
    await stream.aclose()
    return True


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def _stop_process_group(process: anyio.abc.Process, timeout: float) -> None:
    """SIGTERM the process group, wait up to `timeout`, then SIGKILL it; always reap the leader."""
    pgid = process.pid  # start_new_session=True makes the child its own group leader
    with anyio.CancelScope(shield=True):
        _signal_group(pgid, signal.SIGTERM)
        with anyio.move_on_after(timeout):
            await process.wait()
        # Kill the whole group even if the leader exited: children it spawned may linger.
        _signal_group(pgid, signal.SIGKILL)
        await process.wait()


@contextlib.asynccontextmanager
async def http_server_process(
    argv: Sequence[str],
    port: int,
    path: str = "/mcp",
    *,
    host: str = LOOPBACK,
    start_timeout: float = DEFAULT_START_TIMEOUT,
    stop_timeout: float = DEFAULT_STOP_TIMEOUT,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
) -> AsyncIterator[ServerProcess]:
    """Run `argv` as a subprocess that serves HTTP on `host:port`; yield once the port accepts.

    The child gets its own session (process group). Readiness is polled on the TCP port until
    `start_timeout`; if the child exits first or the deadline passes, `RuntimeError` carries
    its stderr. On exit the whole group gets SIGTERM, then SIGKILL after `stop_timeout`.
    `env` is merged over `os.environ`. `path` only builds `ServerProcess.url`.
    """
    child_env = {**os.environ, **(env or {})}
    with tempfile.TemporaryFile() as stderr:
        process = await anyio.open_process(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
            cwd=cwd if cwd is not None else REPO_ROOT,
            env=child_env,
            start_new_session=True,
        )
        server = ServerProcess(process=process, host=host, port=port, path=path, _stderr=stderr)
        try:
            with anyio.move_on_after(start_timeout) as deadline:
                while process.returncode is None and not await _port_accepts(host, port):
                    await anyio.sleep(0.02)  # poll interval, not a synchronisation sleep
            if process.returncode is not None or deadline.cancelled_caught:
                why = f"exited with {process.returncode}" if process.returncode is not None else "timed out"
                raise RuntimeError(
                    f"server {list(argv)!r} {why} before {host}:{port} accepted connections; "
                    f"stderr:\n{server.stderr_text()}"
                )
            yield server
        finally:
            await _stop_process_group(process, stop_timeout)


def demo_server_stdio_params(*extra_args: str, env: Mapping[str, str] | None = None) -> StdioServerParameters:
    """Launch parameters for the demo server over stdio (this interpreter, repo-root cwd)."""
    return StdioServerParameters(
        command=sys.executable,
        args=[str(DEMO_SERVER), *extra_args],
        env=dict(env) if env is not None else None,
        cwd=REPO_ROOT,
    )


def demo_server_http_argv(
    transport: HttpTransport, port: int, *extra_args: str, host: str = LOOPBACK
) -> list[str]:
    """The demo server's command line for an HTTP transport (`streamable-http` or `sse`)."""
    return [sys.executable, str(DEMO_SERVER), transport, "--host", host, "--port", str(port), *extra_args]


def demo_server_path(transport: HttpTransport) -> str:
    """The endpoint path a client connects to: `/mcp` (streamable HTTP) or `/sse` (SSE GET)."""
    return "/mcp" if transport == "streamable-http" else "/sse"


@contextlib.asynccontextmanager
async def demo_http_server(
    transport: HttpTransport, *extra_args: str, start_timeout: float = DEFAULT_START_TIMEOUT
) -> AsyncIterator[ServerProcess]:
    """The demo server on a free loopback port over `transport`; `.url` is the client endpoint."""
    port = free_port()
    argv = demo_server_http_argv(transport, port, *extra_args)
    async with http_server_process(
        argv, port, demo_server_path(transport), start_timeout=start_timeout
    ) as server:
        yield server


# --- client callbacks that answer deterministically and record everything --------------------


@dataclass(frozen=True)
class ProgressUpdate:
    """One progress report delivered to `ClientRecorder.progress_callback`."""

    progress: float
    total: float | None
    message: str | None


@dataclass(frozen=True)
class ServerRequestRecord:
    """A server-to-client request the recorder answered (sampling, elicitation or roots)."""

    method: Literal["sampling/createMessage", "elicitation/create", "roots/list"]
    params: CreateMessageRequestParams | ElicitRequestParams | None


Recorded = ServerNotification | Exception | ProgressUpdate | ServerRequestRecord
"""Everything `ClientRecorder.received` can hold, in arrival order."""


class ClientRecorder:
    """Client-side callbacks for `Client`/`ClientSession` that answer fixed values and record.

    Answers: sampling -> `SAMPLING_REPLY`; elicitation -> accept with `ELICITATION_CONTENT`;
    roots -> `TEST_ROOTS`. Records, in arrival order in `received`: every server notification
    (via `message_handler`: progress, log, list_changed, ...), transport exceptions, progress
    updates (via `progress_callback`, which a caller passes to `call_tool`) and each
    server-to-client request answered. `wait_for` wakes on every arrival, so tests never sleep.

    Note: log messages reach both `logging_callback` (into `logs`) and `message_handler`
    (into `received`), as the SDK tees them.
    """

    def __init__(
        self,
        *,
        sampling_reply: str = SAMPLING_REPLY,
        elicitation_content: Mapping[str, str | int | float | bool | list[str] | None] | None = None,
        roots: Sequence[Root] = TEST_ROOTS,
    ) -> None:
        self.sampling_reply = sampling_reply
        self.elicitation_content = dict(
            elicitation_content if elicitation_content is not None else ELICITATION_CONTENT
        )
        self.roots = list(roots)
        self.received: list[Recorded] = []
        self.logs: list[LoggingMessageNotificationParams] = []
        self._changed: anyio.Event | None = None

    # -- recording ------------------------------------------------------------------------------

    def _record(self, item: Recorded) -> None:
        self.received.append(item)
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    @property
    def notifications(self) -> list[ServerNotification]:
        """The server notifications received so far (no exceptions, progress records or requests)."""
        return [
            item
            for item in self.received
            if not isinstance(item, Exception | ProgressUpdate | ServerRequestRecord)
        ]

    def notifications_named(self, method: str) -> list[ServerNotification]:
        """Received notifications whose JSON-RPC method is `method`."""
        return [n for n in self.notifications if n.method == method]

    @property
    def progress(self) -> list[ProgressUpdate]:
        """Progress updates delivered to `progress_callback`, in order."""
        return [item for item in self.received if isinstance(item, ProgressUpdate)]

    @property
    def server_requests(self) -> list[ServerRequestRecord]:
        """Server-to-client requests answered, in order."""
        return [item for item in self.received if isinstance(item, ServerRequestRecord)]

    @property
    def errors(self) -> list[Exception]:
        """Transport-level exceptions the session handed to `message_handler`."""
        return [item for item in self.received if isinstance(item, Exception)]

    async def wait_for(
        self, predicate: Callable[[Recorded], bool], timeout: float = DEFAULT_WAIT_TIMEOUT, *, start: int = 0
    ) -> Recorded:
        """Return the first item in `received[start:]` matching `predicate`, waiting if needed.

        Raises `TimeoutError` (listing what did arrive) after `timeout` seconds.
        """
        index = start
        with anyio.move_on_after(timeout):
            while True:
                while index < len(self.received):
                    item = self.received[index]
                    index += 1
                    if predicate(item):
                        return item
                if self._changed is None:
                    self._changed = anyio.Event()
                await self._changed.wait()
        arrived = [getattr(item, "method", type(item).__name__) for item in self.received]
        raise TimeoutError(f"nothing matching arrived within {timeout}s; received: {arrived}")

    async def wait_for_notification(
        self, method: str, timeout: float = DEFAULT_WAIT_TIMEOUT, *, start: int = 0
    ) -> ServerNotification:
        """Wait for a notification with JSON-RPC method `method` (e.g. `notifications/message`)."""
        item = await self.wait_for(has_method(method), timeout, start=start)
        return cast(ServerNotification, item)

    async def wait_for_count(
        self, predicate: Callable[[Recorded], bool], count: int, timeout: float = DEFAULT_WAIT_TIMEOUT
    ) -> list[Recorded]:
        """Wait until at least `count` items match `predicate`; return all matches."""
        with anyio.move_on_after(timeout):
            while True:
                matches = [item for item in self.received if predicate(item)]
                if len(matches) >= count:
                    return matches
                if self._changed is None:
                    self._changed = anyio.Event()
                await self._changed.wait()
        got = len([item for item in self.received if predicate(item)])
        raise TimeoutError(f"wanted {count} matching items within {timeout}s, got {got}")

    # -- SDK callbacks (signatures as mcp 2.3 `Client`/`ClientSession` call them) --------------

    async def sampling_callback(
        self, context: ClientRequestContext, params: CreateMessageRequestParams
    ) -> CreateMessageResult:
        """`sampling/createMessage`: answer the fixed completion."""
        self._record(ServerRequestRecord("sampling/createMessage", params))
        return CreateMessageResult(
            role="assistant",
            content=TextContent(type="text", text=self.sampling_reply),
            model=SAMPLING_MODEL,
            stop_reason="endTurn",
        )

    async def elicitation_callback(
        self, context: ClientRequestContext, params: ElicitRequestParams
    ) -> ElicitResult:
        """`elicitation/create`: accept with the fixed content."""
        self._record(ServerRequestRecord("elicitation/create", params))
        return ElicitResult(action="accept", content=dict(self.elicitation_content))

    async def list_roots_callback(self, context: ClientRequestContext) -> ListRootsResult:
        """`roots/list`: the fixed roots."""
        self._record(ServerRequestRecord("roots/list", None))
        return ListRootsResult(roots=list(self.roots))

    async def logging_callback(self, params: LoggingMessageNotificationParams) -> None:
        """`notifications/message`: keep the params (the notification itself also reaches `received`)."""
        self.logs.append(params)

    async def message_handler(self, message: IncomingMessage) -> None:
        """Every server notification and transport exception the session surfaces."""
        self._record(message)

    async def progress_callback(self, progress: float, total: float | None, message: str | None) -> None:
        """Pass as `call_tool(..., progress_callback=recorder.progress_callback)` to request progress."""
        self._record(ProgressUpdate(progress, total, message))


# --- building clients --------------------------------------------------------------------------


def _is_sse_url(url: str) -> bool:
    return urlsplit(url).path.rstrip("/").endswith("/sse")


def open_client(
    target: ClientTarget,
    *,
    mode: ConnectMode = "legacy",
    recorder: ClientRecorder | None = None,
    transport: Literal["auto", "streamable-http", "sse"] = "auto",
    read_timeout_seconds: float | None = 30.0,
    log_level: LoggingLevel | None = "debug",
    client_info: Implementation | None = None,
    **client_kwargs: Any,
) -> Client:
    """Build (not enter) an SDK `Client` for `target` with the recorder's callbacks and no cache.

    `target`: `StdioServerParameters` (spawns the command), a URL (`transport="auto"` picks SSE
    when the path ends in `/sse`, streamable HTTP otherwise), any SDK `Transport`, or an
    in-process `MCPServer`/`Server`.
    `mode`: `"legacy"` (initialize handshake, the default here), `"auto"` (probe
    `server/discover`, fall back to initialize) or `"2026-07-28"` (modern era, no probe).
    `log_level` is the modern-era per-request log opt-in (no effect on handshake connections).
    Extra keyword arguments go to `Client` unchanged. Use as ``async with open_client(...) as c``.
    """
    recorder = recorder if recorder is not None else ClientRecorder()
    server: ClientTarget = target
    if isinstance(target, str):
        use_sse = transport == "sse" or (transport == "auto" and _is_sse_url(target))
        if use_sse:
            server = cast(Transport, sse_client(target))
    return Client(
        server,
        mode=mode,
        cache=None,
        read_timeout_seconds=read_timeout_seconds,
        sampling_callback=recorder.sampling_callback,
        elicitation_callback=recorder.elicitation_callback,
        list_roots_callback=recorder.list_roots_callback,
        logging_callback=recorder.logging_callback,
        message_handler=recorder.message_handler,
        log_level=log_level,
        client_info=client_info,
        **client_kwargs,
    )


def has_method(method: str) -> Callable[[Recorded], bool]:
    """A `ClientRecorder.wait_for` predicate: an item whose `method` is `method`.

    Matches notifications (`notifications/message`, ...) and `ServerRequestRecord`s
    (`sampling/createMessage`, `elicitation/create`, `roots/list`).
    """

    def predicate(item: Recorded) -> bool:
        return getattr(item, "method", None) == method

    return predicate


def text_of(result: Any) -> str:
    """Concatenated text of a result's `content` (tool results) or `contents` (resource reads)."""
    blocks = getattr(result, "content", None)
    if blocks is None:
        blocks = getattr(result, "contents", [])
    return "".join(getattr(block, "text", "") for block in blocks)


async def first(items: AsyncIterator[_T], timeout: float = DEFAULT_WAIT_TIMEOUT) -> _T:
    """The next item of an async iterator within `timeout` (e.g. a `Client.listen()` event)."""
    with anyio.fail_after(timeout):
        return await items.__anext__()
