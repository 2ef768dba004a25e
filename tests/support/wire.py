"""Raw wire clients for tests that must send what no SDK client would: broken JSON, oversize lines.

* `open_stdio_wire(argv)` runs a stdio process (e.g. `guardian wrap -- …`) and speaks
  newline-delimited bytes to it: `send_raw` writes exactly the given bytes, `receive` reads
  one JSON line, `request` sends a request and waits for the answer with the same id.
* `HttpSession` does the streamable-HTTP handshake with plain POSTs and returns every
  JSON-RPC message a POST produced (JSON body or `text/event-stream`).
* `open_sse_session(base_url)` opens `GET /sse`, follows the `endpoint` event, and reads the
  event stream in the background.
* `marked_pids(marker)` finds the processes whose environment carries a test marker (the
  gateway passes its environment to the upstream it spawns), so tests can prove no
  process was left behind.

Nothing here sleeps to synchronise: reads wait on the stream (bounded by a timeout), and
process exit is polled with a bound.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import anyio
import anyio.abc
import httpx2

from tests.support.peers import REPO_ROOT

JSON = dict[str, Any]

MARKER_ENV = "GUARDIAN_TEST_MARKER"
"""Environment variable carrying a per-test unique value into the gateway and its upstream."""

PROTOCOL_VERSION = "2025-11-25"
"""The handshake-era version the raw clients ask for."""

ACCEPT = "application/json, text/event-stream"

DEFAULT_TIMEOUT = 20.0
"""Upper bound on any single wait; generous because a loaded 2-core machine starts processes slowly."""


def new_marker() -> str:
    return f"guardian-test-{uuid.uuid4().hex}"


# --- processes -----------------------------------------------------------------------------------


def marked_pids(marker: str) -> list[int]:
    """Live (non-zombie) processes whose environment has `GUARDIAN_TEST_MARKER=marker`."""
    needle = f"{MARKER_ENV}={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone, or not ours
        state = stat.rsplit(")", 1)[-1].split()[0]
        if state == "Z":
            continue  # exited, only waiting to be reaped by its parent
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


async def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll `condition` until it holds or `timeout` passes; return whether it held."""
    with anyio.move_on_after(timeout):
        while not condition():
            await anyio.sleep(interval)  # poll interval of a bounded wait, not a synchronisation sleep
        return True
    return condition()


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


# --- stdio ---------------------------------------------------------------------------------------


class WireClosed(Exception):
    """The process closed its stdout before the awaited message arrived."""


@dataclass
class StdioWire:
    """One newline-delimited JSON-RPC conversation with a subprocess."""

    process: anyio.abc.Process
    marker: str
    _stderr: IO[bytes] = field(repr=False)
    _buffer: bytes = b""
    received: list[JSON] = field(default_factory=list)
    """Every message read so far, in arrival order."""

    @property
    def pid(self) -> int:
        return self.process.pid

    def stderr_text(self) -> str:
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    async def send_raw(self, data: bytes) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send(data)

    async def send(self, message: JSON) -> None:
        await self.send_raw(json.dumps(message).encode() + b"\n")

    async def receive(self, timeout: float = DEFAULT_TIMEOUT) -> JSON:
        """The next message the process writes (any kind)."""
        assert self.process.stdout is not None
        with anyio.fail_after(timeout):
            while b"\n" not in self._buffer:
                try:
                    chunk = await self.process.stdout.receive()
                except (anyio.EndOfStream, anyio.ClosedResourceError):
                    raise WireClosed(f"stdout closed; stderr:\n{self.stderr_text()}") from None
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        message: JSON = json.loads(line)
        self.received.append(message)
        return message

    async def receive_response(self, timeout: float = DEFAULT_TIMEOUT) -> JSON:
        """The next response or error, skipping notifications and server requests."""
        with anyio.fail_after(timeout):
            while True:
                message = await self.receive(timeout)
                if "method" not in message:
                    return message

    async def answer_for(self, request_id: Any, timeout: float = DEFAULT_TIMEOUT) -> JSON:
        """The response/error with `id == request_id` (others read meanwhile stay in `received`)."""
        for message in self.received:
            if "method" not in message and message.get("id") == request_id:
                return message
        with anyio.fail_after(timeout):
            while True:
                message = await self.receive(timeout)
                if "method" not in message and message.get("id") == request_id:
                    return message

    async def request(
        self, request_id: Any, method: str, params: JSON | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> JSON:
        message: JSON = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        await self.send(message)
        return await self.answer_for(request_id, timeout)

    async def initialize(self) -> JSON:
        # The first answer waits for the gateway and its upstream to start: allow more time.
        answer = await self.request(0, "initialize", initialize_params(), timeout=2 * DEFAULT_TIMEOUT)
        assert "result" in answer, answer
        await self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return answer

    async def echo(self, request_id: Any, text: str) -> str:
        """Call the demo server's `echo`; return its text (asserts it succeeded)."""
        answer = await self.request(request_id, "tools/call", {"name": "echo", "arguments": {"text": text}})
        assert "result" in answer, answer
        return "".join(block.get("text", "") for block in answer["result"]["content"])

    async def close_stdin(self) -> None:
        assert self.process.stdin is not None
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            await self.process.stdin.aclose()

    async def wait_exit(self, timeout: float = DEFAULT_TIMEOUT) -> int:
        with anyio.fail_after(timeout):
            return await self.process.wait()


def initialize_params() -> JSON:
    return {
        "protocolVersion": PROTOCOL_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "raw-wire-test", "version": "0"},
    }


@contextlib.asynccontextmanager
async def open_stdio_wire(
    argv: Sequence[str], *, marker: str | None = None, env: Mapping[str, str] | None = None
) -> AsyncIterator[StdioWire]:
    """Run `argv` with piped stdin/stdout (stderr kept in a temp file) in its own process group.

    The environment carries `GUARDIAN_TEST_MARKER=marker`; on exit the group is SIGKILLed and
    any process still carrying the marker (an escaped upstream) is killed too.
    """
    marker = marker or new_marker()
    child_env = {**os.environ, **(env or {}), MARKER_ENV: marker}
    with tempfile.TemporaryFile() as stderr:
        process = await anyio.open_process(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=REPO_ROOT,
            env=child_env,
            start_new_session=True,
        )
        wire = StdioWire(process=process, marker=marker, _stderr=stderr)
        try:
            yield wire
        finally:
            with anyio.CancelScope(shield=True):
                await wire.close_stdin()
                _kill_group(process.pid, signal.SIGKILL)
                for pid in marked_pids(marker):  # an upstream that escaped the group
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
                with anyio.move_on_after(5):
                    await process.wait()


# --- streamable HTTP -----------------------------------------------------------------------------


def parse_body(response: httpx2.Response) -> list[JSON]:
    """The JSON-RPC messages in a response: a JSON body, or the `data:` lines of an SSE body."""
    content_type = response.headers.get("content-type", "")
    text = response.text
    if content_type.startswith("text/event-stream"):
        return parse_sse_text(text)
    if not text.strip():
        return []
    body = json.loads(text)
    return body if isinstance(body, list) else [body]


def parse_sse_text(text: str) -> list[JSON]:
    messages = []
    for event in text.replace("\r\n", "\n").split("\n\n"):
        data = "\n".join(line[5:].lstrip(" ") for line in event.split("\n") if line.startswith("data:"))
        if data.strip():
            messages.append(json.loads(data))
    return messages


@dataclass
class HttpReply:
    status: int
    headers: httpx2.Headers
    messages: list[JSON]

    @property
    def answer(self) -> JSON:
        """The one response/error among the messages (asserts there is exactly one)."""
        answers = [m for m in self.messages if "method" not in m]
        assert len(answers) == 1, (self.status, self.messages)
        return answers[0]


class HttpSession:
    """A streamable-HTTP session driven by hand (`POST /mcp` with raw bodies)."""

    def __init__(self, client: httpx2.AsyncClient, url: str) -> None:
        self.client = client
        self.url = url
        self.session_id: str | None = None
        self.protocol_version: str | None = None

    def headers(self) -> dict[str, str]:
        headers = {"Accept": ACCEPT, "Content-Type": "application/json"}
        if self.session_id is not None:
            headers["Mcp-Session-Id"] = self.session_id
        if self.protocol_version is not None:
            headers["MCP-Protocol-Version"] = self.protocol_version
        return headers

    async def post_raw(self, body: bytes | AsyncIterator[bytes], timeout: float = DEFAULT_TIMEOUT) -> HttpReply:
        with anyio.fail_after(timeout):
            response = await self.client.post(self.url, content=body, headers=self.headers())
        return HttpReply(response.status_code, response.headers, parse_body(response))

    async def post(self, message: JSON, timeout: float = DEFAULT_TIMEOUT) -> HttpReply:
        return await self.post_raw(json.dumps(message).encode(), timeout)

    async def initialize(self) -> JSON:
        reply = await self.post(
            {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": initialize_params()},
            timeout=2 * DEFAULT_TIMEOUT,
        )
        assert reply.status == 200, (reply.status, reply.messages)
        answer = reply.answer
        assert "result" in answer, answer
        self.session_id = reply.headers.get("mcp-session-id")
        assert self.session_id, f"no Mcp-Session-Id in {dict(reply.headers)}"
        self.protocol_version = answer["result"]["protocolVersion"]
        notified = await self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        assert notified.status == 202, (notified.status, notified.messages)
        return answer

    async def echo(self, request_id: Any, text: str) -> str:
        reply = await self.post(
            {
                "jsonrpc": "2.0",
                "id": request_id,
                "method": "tools/call",
                "params": {"name": "echo", "arguments": {"text": text}},
            }
        )
        assert reply.status == 200, (reply.status, reply.messages)
        answer = reply.answer
        assert answer.get("id") == request_id and "result" in answer, answer
        return "".join(block.get("text", "") for block in answer["result"]["content"])


@contextlib.asynccontextmanager
async def http_session(url: str) -> AsyncIterator[HttpSession]:
    """An initialized raw streamable-HTTP session on its own HTTP client."""
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(30.0)) as client:
        session = HttpSession(client, url)
        await session.initialize()
        yield session


# --- legacy SSE ----------------------------------------------------------------------------------


class SseSession:
    """`GET /sse` read in the background; messages POSTed to the announced endpoint."""

    def __init__(self, client: httpx2.AsyncClient, base_url: str) -> None:
        self.client = client
        self.base_url = base_url
        self.endpoint: str | None = None
        self.events: list[tuple[str, str]] = []
        self._changed = anyio.Event()
        self.closed = False

    def _record(self, event: str, data: str) -> None:
        self.events.append((event, data))
        self._changed.set()
        self._changed = anyio.Event()

    async def read_events(self, response: httpx2.Response, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Read the event stream into `events`; `started` once the `endpoint` event arrived."""
        event, data = "message", list[str]()
        started = False
        try:
            async for line in response.aiter_lines():
                if line == "":
                    if data:
                        self._record(event, "\n".join(data))
                        if event == "endpoint" and not started:
                            self.endpoint = self.events[-1][1]
                            started = True
                            task_status.started()
                    event, data = "message", []
                elif line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip(" "))
        finally:
            self.closed = True
            self._changed.set()

    @property
    def messages(self) -> list[JSON]:
        return [json.loads(data) for event, data in self.events if event == "message"]

    async def next_message(self, start: int, timeout: float = DEFAULT_TIMEOUT) -> tuple[JSON, int]:
        """The first JSON-RPC message at index >= `start` of `messages`; and the next index."""
        with anyio.fail_after(timeout):
            while True:
                messages = self.messages
                if len(messages) > start:
                    return messages[start], start + 1
                if self.closed:
                    raise WireClosed("the SSE stream closed")
                await self._changed.wait()

    async def answer_for(self, request_id: Any, timeout: float = DEFAULT_TIMEOUT) -> JSON:
        index = 0
        with anyio.fail_after(timeout):
            while True:
                message, index = await self.next_message(index, timeout)
                if "method" not in message and message.get("id") == request_id:
                    return message

    async def post_raw(self, body: bytes) -> httpx2.Response:
        assert self.endpoint is not None
        with anyio.fail_after(DEFAULT_TIMEOUT):
            return await self.client.post(
                self.base_url + self.endpoint, content=body, headers={"Content-Type": "application/json"}
            )

    async def post(self, message: JSON) -> httpx2.Response:
        return await self.post_raw(json.dumps(message).encode())

    async def request(self, request_id: Any, method: str, params: JSON | None = None) -> JSON:
        message: JSON = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        response = await self.post(message)
        assert response.status_code == 202, (response.status_code, response.text)
        return await self.answer_for(request_id)

    async def initialize(self) -> JSON:
        answer = await self.request(0, "initialize", initialize_params())
        assert "result" in answer, answer
        response = await self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        assert response.status_code == 202, (response.status_code, response.text)
        return answer

    async def echo(self, request_id: Any, text: str) -> str:
        answer = await self.request(request_id, "tools/call", {"name": "echo", "arguments": {"text": text}})
        assert "result" in answer, answer
        return "".join(block.get("text", "") for block in answer["result"]["content"])


@contextlib.asynccontextmanager
async def open_sse_session(base_url: str) -> AsyncIterator[SseSession]:
    """An initialized legacy-SSE session against `base_url` (`GET {base_url}/sse`)."""
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(30.0)) as client:
        session = SseSession(client, base_url)
        async with client.stream("GET", f"{base_url}/sse", headers={"Accept": "text/event-stream"}) as response:
            assert response.status_code == 200, response.status_code
            async with anyio.create_task_group() as tg:
                with anyio.fail_after(DEFAULT_TIMEOUT):
                    await tg.start(session.read_events, response)
                await session.initialize()
                try:
                    yield session
                finally:
                    tg.cancel_scope.cancel()
