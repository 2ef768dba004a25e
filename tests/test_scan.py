"""`guardian scan`: a real subprocess against real servers (stdio and streamable HTTP), its exit
status (0 clean, 1 findings, 2 could not scan), its report and JSON, and `--baseline`."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

import anyio
import pytest

from guardian.pins.fingerprint import canonical_json, fingerprint, instructions_fingerprint
from tests.support.node import EVERYTHING_JS, require_node_peers
from tests.support.peers import DEMO_SERVER, REPO_ROOT, demo_http_server, free_port

SCAN = [sys.executable, "-m", "guardian.scan"]
"""The command on its own; once `guardian/cli.py` registers it, `-m guardian scan` runs the same code."""
POISONED = [sys.executable, str(REPO_ROOT / "tests" / "support" / "poisoned_server.py")]
DEMO = [sys.executable, str(DEMO_SERVER)]


def scan(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SCAN, *args], capture_output=True, text=True, cwd=REPO_ROOT, timeout=timeout)


def test_poisoned_server_exits_1_naming_the_rules() -> None:
    result = scan("--", *POISONED)
    assert result.returncode == 1, result.stderr
    out = result.stdout
    assert 'tool "add"' in out and 'tool "lookup"' in out and 'prompt "review"' in out
    for rule in ("hidden_instructions", "sensitive_parameter", "concealment", "exfiltration",
                 "cross_tool_instruction", "invisible_characters"):
        assert rule in out
    assert 'tool "echo"' not in out  # the honest tool beside them is not reported
    assert "\u200b" not in out  # server text is escaped, never echoed raw to the terminal


def test_clean_servers_exit_0() -> None:
    for server in (DEMO, [*POISONED, "--clean"]):
        result = scan("--", *server)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "no findings" in result.stdout


def test_known_tool_of_another_server_is_shadowing() -> None:
    result = scan("--json", "--known-tool", "Echo", "--", *DEMO)
    assert result.returncode == 1
    found = {(f["definition"], f["kind"]) for f in json.loads(result.stdout)["findings"]}
    assert found == {('tool "echo"', "shadowing")}


def test_json_report_parses_and_follows_pagination() -> None:
    result = scan("--json", "--", *POISONED, "--pages", "1")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["counts"]["tools"] == 3 and report["counts"]["prompts"] == 1 and report["counts"]["instructions"] == 1
    assert [t["name"] for t in report["definitions"]["tools"]] == ["echo", "lookup", "add"]
    found = {(f["definition"], f["detector"], f["kind"]) for f in report["findings"]}
    assert ('tool "add"', "tool_poisoning", "hidden_instructions") in found
    assert ("server instructions", "hidden_characters", "invisible_characters") in found
    fields = {"detector", "kind", "action", "definition", "location", "message"}
    assert all(fields <= set(f) for f in report["findings"])


def test_unreachable_url_and_missing_command_exit_2_with_one_line() -> None:
    for target in ([f"http://127.0.0.1:{free_port()}/mcp"], ["--", "/nonexistent/guardian-test-server"]):
        result = scan("--timeout", "10", *target)
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("guardian scan: ") and result.stdout == ""


def test_no_target_exits_2() -> None:
    result = scan()
    assert result.returncode == 2 and "no server given" in result.stderr


@pytest.mark.anyio
@pytest.mark.parametrize("transport", ["streamable-http", "sse"])
async def test_http_servers(transport: Literal["streamable-http", "sse"]) -> None:
    async with demo_http_server(transport) as server:
        result = await anyio.to_thread.run_sync(lambda: scan("--json", server.url))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["server"]["name"] == "guardian-demo" and report["counts"]["tools"] >= 10


def test_server_everything_is_clean() -> None:
    """The npm reference server: no poisoning, shadowing, injection or hidden characters."""
    result = scan("--json", "--", require_node_peers(), str(EVERYTHING_JS), "stdio")
    assert result.returncode == 0, result.stdout
    assert json.loads(result.stdout)["counts"]["tools"] >= 10


def baseline_of(report: dict[str, Any], upstream: str) -> dict[str, Any]:
    """A pins baseline document (the `guardian pins export` format) for a scanned server."""
    pins = []
    for key, kind in (("tools", "tool"), ("prompts", "prompt"), ("resourceTemplates", "resource_template")):
        for item in report["definitions"].get(key, []):
            found = fingerprint(kind, item)  # type: ignore[arg-type]
            assert found is not None
            pins.append({"upstream": upstream, "tenant": None, "kind": kind, "name": found.name,
                         "hash": found.hash, "definition": found.definition})
    found = instructions_fingerprint(report["definitions"]["instructions"])
    pins.append({"upstream": upstream, "tenant": None, "kind": "instructions", "name": found.name,
                 "hash": found.hash, "definition": found.definition})
    document: dict[str, Any] = {"format": "mcp-guardian-pins-baseline", "version": 1, "pins": pins}
    document["sha256"] = hashlib.sha256(canonical_json(document).encode()).hexdigest()
    return document


def test_baseline_reports_changed_definitions(tmp_path: Path) -> None:
    clean = scan("--json", "--", *POISONED, "--clean")
    assert clean.returncode == 0
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(baseline_of(json.loads(clean.stdout), "poisoned-demo")))

    same = scan("--baseline", str(path), "--", *POISONED, "--clean")
    assert same.returncode == 0, same.stdout + same.stderr
    changed = scan("--json", "--no-injection", "--baseline", str(path), "--", *POISONED)
    assert changed.returncode == 1
    pins = {(f["definition"], f["kind"]) for f in json.loads(changed.stdout)["findings"] if f["detector"] == "pins"}
    assert pins == {('tool "add"', "pin_changed"), ('tool "lookup"', "pin_changed"),
                    ('prompt "review"', "pin_changed"), ("server instructions", "pin_changed")}

    path.write_text(path.read_text().replace('"poisoned-demo"', '"other"', 1))
    tampered = scan("--baseline", str(path), "--", *POISONED, "--clean")
    assert tampered.returncode == 2 and "hash" in tampered.stderr
