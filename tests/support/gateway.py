"""The gateway under test, run the way users run it: the real CLI, as a subprocess.

    async with gateway_http(upstream=demo_server_stdio_argv()) as gw:
        async with open_client(gw.url) as client: ...

    async with open_client(wrap_params(demo_server_stdio_argv())) as client: ...
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from mcp import StdioServerParameters
from mcp.client.stdio import get_default_environment

from tests.support.peers import DEMO_SERVER, REPO_ROOT, ServerProcess, free_port, http_server_process

GUARDIAN = [sys.executable, "-m", "guardian"]

DEMO_TOOLS = (
    "echo", "add", "slow", "slow_stats", "crash", "sample", "ask", "roots",
    "progress", "add_tool", "big", "report", "secret_note",
)  # fmt: skip
"""The demo server's tools, in the order it lists them."""


def demo_server_stdio_argv(*extra: str) -> list[str]:
    """The demo upstream as a stdio command line."""
    return [sys.executable, str(DEMO_SERVER), *extra]


@contextlib.contextmanager
def config_file(config: Mapping[str, Any] | None) -> Any:
    """A temporary JSON config file for `config` (None: no file)."""
    if config is None:
        yield None
        return
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(config, handle)
    try:
        yield handle.name
    finally:
        Path(handle.name).unlink(missing_ok=True)


def gateway_env() -> dict[str, str]:
    """The environment of a stdio-launched gateway: the SDK's default (it passes only HOME, PATH,
    SHELL, TERM) plus our `MCP_GUARDIAN_*` settings, so the pin store a test isolated is used."""
    ours = {k: v for k, v in os.environ.items() if k.startswith("MCP_GUARDIAN_")}
    return {**get_default_environment(), **ours}


def _config_args(path: str | None) -> list[str]:
    return ["--config", path] if path else []


@contextlib.contextmanager
def wrap_params(
    upstream: Sequence[str], config: Mapping[str, Any] | None = None, *extra: str
) -> Any:
    """`guardian wrap [--config F] -- UPSTREAM…` as stdio launch parameters."""
    with config_file(config) as path:
        yield StdioServerParameters(
            command=GUARDIAN[0],
            args=[*GUARDIAN[1:], "wrap", *_config_args(path), *extra, "--", *upstream],
            env=gateway_env(),
            cwd=REPO_ROOT,
        )


@contextlib.contextmanager
def connect_params(url: str, config: Mapping[str, Any] | None = None, *extra: str) -> Any:
    """`guardian connect [--config F] URL` as stdio launch parameters."""
    with config_file(config) as path:
        yield StdioServerParameters(
            command=GUARDIAN[0],
            args=[*GUARDIAN[1:], "connect", *_config_args(path), *extra, url],
            env=gateway_env(),
            cwd=REPO_ROOT,
        )


@contextlib.asynccontextmanager
async def gateway_http(
    *,
    upstream: Sequence[str] | None = None,
    upstream_url: str | None = None,
    config: Mapping[str, Any] | None = None,
    extra: Sequence[str] = (),
) -> AsyncIterator[ServerProcess]:
    """`guardian serve` on a free loopback port, in front of a command or a URL; `.url` is `/mcp`."""
    port = free_port()
    with config_file(config) as path:
        argv = [*GUARDIAN, "serve", "--port", str(port), *_config_args(path), *extra]
        if upstream_url is not None:
            argv += ["--upstream", upstream_url]
        if upstream is not None:
            argv += ["--", *upstream]
        async with http_server_process(argv, port, "/mcp") as server:
            yield server
