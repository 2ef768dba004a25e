"""Node peers for the tests: server-everything, `client.mjs` (TS SDK v1) and the MCP Inspector CLI.

They live under `tests/node` (installed by `npm ci`, which `make test` runs). A test that needs
them calls `require_node_peers()` first: a missing `node` or `node_modules` is a test FAILURE
with the command to fix it, never a silent skip.

    async with everything_http("streamableHttp") as server:      # http://127.0.0.1:P/mcp
        ...
    run = await run_client_mjs("--tool", "echo", "--args", '{"message":"hi"}', "--url", url)
    assert run.json["call"]["content"][0]["text"] == "Echo: hi"

Processes are real and get their own process group; their output goes to temporary files (Node
writes to pipes synchronously and stalls when nobody drains them), and the whole group is killed
when the run ends, so a wrapper's child never outlives a test.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import anyio
import pytest

from tests.support.peers import REPO_ROOT, ServerProcess, free_port, http_server_process

NODE_DIR = REPO_ROOT / "tests" / "node"
NODE_MODULES = NODE_DIR / "node_modules"
EVERYTHING_JS = NODE_MODULES / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
INSPECTOR = NODE_MODULES / ".bin" / "mcp-inspector"
CLIENT_MJS = NODE_DIR / "client.mjs"
LOOPBACK_PRELOAD = NODE_DIR / "loopback.cjs"

DEFAULT_RUN_TIMEOUT = 30.0

EverythingTransport = Literal["streamableHttp", "sse"]


def node_executable() -> str | None:
    """The `node` on PATH, or None."""
    return shutil.which("node")


def require_node_peers() -> str:
    """Return the `node` executable; FAIL the calling test (not skip) if node or the npm peers are missing."""
    node = node_executable()
    if node is None:
        pytest.fail("`node` is not on PATH: the npm peer tests need Node.js >= 20 (see tests/node/README.md)")
    missing = [p for p in (EVERYTHING_JS, INSPECTOR, CLIENT_MJS, LOOPBACK_PRELOAD) if not p.exists()]
    if missing:
        pytest.fail(
            "npm peers are not installed (missing: "
            + ", ".join(str(p) for p in missing)
            + "); run `make install` or `npm ci --prefix tests/node`"
        )
    return node


def everything_stdio_argv() -> list[str]:
    """server-everything over stdio, as a command line."""
    return [require_node_peers(), str(EVERYTHING_JS), "stdio"]


@contextlib.asynccontextmanager
async def everything_http(transport: EverythingTransport = "streamableHttp") -> AsyncIterator[ServerProcess]:
    """server-everything over HTTP, bound to 127.0.0.1 by the loopback preload, on a free port.

    `.url` is `/mcp` (streamable HTTP) or `/sse` (SSE). Its request logging goes to a temporary
    file (see `http_server_process`), never to an undrained pipe.
    """
    node = require_node_peers()
    port = free_port()
    argv = [node, "--require", str(LOOPBACK_PRELOAD), str(EVERYTHING_JS), transport]
    path = "/mcp" if transport == "streamableHttp" else "/sse"
    async with http_server_process(argv, port, path, env={"PORT": str(port)}) as server:
        yield server


@dataclass
class NodeRun:
    """The outcome of one `client.mjs` or inspector run."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        """stdout parsed as one JSON document (both tools print exactly one)."""
        try:
            return json.loads(self.stdout)
        except ValueError as exc:
            raise AssertionError(f"{self.describe()}\nstdout is not JSON: {exc}") from exc

    @property
    def error_json(self) -> Any:
        """The inspector's `{"error": …}` envelope from stderr (its last JSON line)."""
        for line in reversed(self.stderr.splitlines()):
            line = line.strip()
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    return json.loads(line)
        raise AssertionError(f"{self.describe()}\nno JSON error envelope on stderr")

    def describe(self) -> str:
        return (
            f"command {self.argv!r} exited {self.returncode}\n"
            f"--- stdout ---\n{self.stdout[-4000:]}\n--- stderr ---\n{self.stderr[-4000:]}"
        )


async def run_node_tool(
    argv: Sequence[str],
    *,
    timeout: float = DEFAULT_RUN_TIMEOUT,
    env: Mapping[str, str] | None = None,
) -> NodeRun:
    """Run `argv` to completion in its own process group; stdout/stderr via temporary files.

    Fails the test if it has not exited within `timeout` (the group is killed either way).
    """
    child_env = {**os.environ, **(env or {})}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = await anyio.open_process(
            list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=REPO_ROOT, env=child_env,
            start_new_session=True,
        )
        timed_out = False
        try:
            with anyio.move_on_after(timeout) as scope:
                await process.wait()
            timed_out = scope.cancelled_caught
        finally:
            with anyio.CancelScope(shield=True):
                # The tool may leave grandchildren (a wrapped server): end the whole group.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        out.seek(0)
        err.seek(0)
        run = NodeRun(
            list(argv), process.returncode or 0, out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
        )
    if timed_out:
        pytest.fail(f"timed out after {timeout}s: {run.describe()}")
    return run


async def run_client_mjs(*args: str, timeout: float = DEFAULT_RUN_TIMEOUT) -> NodeRun:
    """`node tests/node/client.mjs ARGS…`; its own `--timeout` is set a little below ours."""
    node = require_node_peers()
    inner = max(1.0, timeout - 8.0)  # client.mjs cleanup adds at most grace + 5 s
    return await run_node_tool([node, str(CLIENT_MJS), "--timeout", f"{inner:g}", *args], timeout=timeout)


async def run_inspector(
    *options: str, target: Sequence[str], home: Path, timeout: float | None = None
) -> NodeRun:
    """`mcp-inspector --cli OPTIONS… --format json -q -- TARGET…` (TARGET: a URL or a stdio command).

    Options go before the target so a target command may itself contain `--`. `home` becomes
    `$HOME`, so the inspector's `~/.mcp-inspector` storage lands in a test directory.
    `timeout` defaults to 15 s for a URL and 40 s for a stdio command (which starts Python
    processes); a run takes about 0.6 s and 2.5 s respectively on an idle machine.
    """
    require_node_peers()
    if timeout is None:
        timeout = 15.0 if "://" in target[0] else 40.0
    argv = [str(INSPECTOR), "--cli", *options, "--format", "json", "-q", "--", *target]
    return await run_node_tool(argv, timeout=timeout, env={"HOME": str(home)})
