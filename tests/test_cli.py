"""What the CLI promises beyond relaying: stderr passthrough and the start-up banner."""

from __future__ import annotations

import subprocess
import sys

import anyio
import httpx2
import pytest

from tests.support.gateway import GUARDIAN, demo_server_stdio_argv
from tests.support.peers import REPO_ROOT, free_port

pytestmark = pytest.mark.anyio


async def test_wrapped_server_stderr_reaches_the_gateway_stderr() -> None:
    """Server logs on stderr are how people debug a wrapped server; they must not vanish."""
    child = "import sys, time; sys.stderr.write('upstream-says-hello\\n'); sys.stderr.flush(); time.sleep(30)"
    process = await anyio.open_process(
        [*GUARDIAN, "wrap", "--", sys.executable, "-c", child],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO_ROOT,
    )
    assert process.stderr is not None and process.stdin is not None
    seen = b""
    with anyio.fail_after(20):
        async for chunk in process.stderr:
            seen += chunk
            if b"upstream-says-hello" in seen:
                break
    await process.stdin.aclose()  # stdin EOF ends the session, and the child with it
    with anyio.fail_after(20):
        assert await process.wait() == 0


async def test_serve_prints_where_to_point_a_client_and_answers_health() -> None:
    port = free_port()
    process = await anyio.open_process(
        [*GUARDIAN, "serve", "--port", str(port), "--", *demo_server_stdio_argv()],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO_ROOT,
    )
    assert process.stderr is not None
    try:
        banner = b""
        with anyio.fail_after(20):
            async for chunk in process.stderr:
                banner += chunk
                if b"/health" in banner:
                    break
        assert f"http://127.0.0.1:{port}/mcp".encode() in banner
        assert f"http://127.0.0.1:{port}/sse".encode() in banner
        async with httpx2.AsyncClient(timeout=10) as http:
            with anyio.fail_after(20):
                while True:
                    try:
                        health = await http.get(f"http://127.0.0.1:{port}/health")
                        break
                    except httpx2.ConnectError:
                        await anyio.sleep(0.05)  # polling for the port, bounded by fail_after
        assert health.status_code == 200
        assert health.json()["status"] == "ok" and health.json()["sessions"] == 0
    finally:
        process.terminate()
        with anyio.fail_after(20):
            await process.wait()


def test_bad_config_file_is_a_one_line_error_naming_the_path(tmp_path: object) -> None:
    from pathlib import Path

    config = Path(str(tmp_path)) / "bad.yaml"
    config.write_text("server:\n  bind_port: eighty\n")
    result = subprocess.run(
        [*GUARDIAN, "wrap", "--config", str(config), "--", "true"],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "$.server.bind_port" in lines[0] and str(config) in lines[0]
