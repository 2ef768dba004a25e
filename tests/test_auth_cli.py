"""Authentication through the real CLI (after integration): `guardian serve` with an `authentication`
block and TLS flags, `guardian keys`, `guardian check-config`; identities reach the audit log.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest

from tests.support.auth import ACCEPT, INITIALIZE, make_pki
from tests.support.gateway import GUARDIAN, config_file, demo_server_stdio_argv, gateway_http
from tests.support.peers import REPO_ROOT, free_port, http_server_process

pytestmark = pytest.mark.anyio

CALL = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "hi"}}}


def keys_create(path: Path, *extra: str) -> str:
    done = subprocess.run([*GUARDIAN, "keys", "create", "--file", str(path), *extra], capture_output=True,
                          text=True, cwd=REPO_ROOT, timeout=60, check=True)
    return done.stdout.strip()


async def call_echo(http: httpx2.AsyncClient, url: str, headers: dict[str, str]) -> httpx2.Response:
    opened = await http.post(url, json=INITIALIZE, headers={**ACCEPT, **headers})
    assert opened.status_code == 200, opened.text
    session = {"Mcp-Session-Id": opened.headers["mcp-session-id"]}
    await http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                    headers={**ACCEPT, **headers, **session})
    return await http.post(url, json=CALL, headers={**ACCEPT, **headers, **session})


async def test_serve_with_api_keys_puts_the_identity_in_the_audit_log(tmp_path: Path) -> None:
    key_file, audit = tmp_path / "keys.yaml", tmp_path / "audit.jsonl"
    key = keys_create(key_file, "--subject", "ci-bot", "--tenant", "acme", "--scope", "mcp:tools")
    config = {
        "authentication": {"required_scopes": ["mcp:tools"], "api_keys": {"file": str(key_file)}},
        "monitoring": {"audit_log": str(audit), "audit_all_messages": True},
    }
    async with gateway_http(upstream=demo_server_stdio_argv(), config=config) as gw, \
            httpx2.AsyncClient(timeout=30) as http:
        assert (await http.post(gw.url, json=INITIALIZE, headers=ACCEPT)).status_code == 401
        assert (await http.get(gw.base_url + "/health")).status_code == 200
        answer = await call_echo(http, gw.url, {"X-API-Key": key})
        assert answer.json()["result"]["content"][0]["text"] == "hi"
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    calls = [r for r in records if r.get("method") == "tools/call"]
    assert calls and all(r["identity"] == "ci-bot" and r["tenant"] == "acme" for r in calls)


async def test_serve_with_tls_flags_and_client_certificates(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    config = {"authentication": {"mtls": {"identities": {"cn:agent-1": {"subject": "agent-one"}}}}}
    port = free_port()
    with config_file(config) as path:
        argv = [*GUARDIAN, "serve", "--port", str(port), "--config", path, "--tls-cert", str(pki.server_cert),
                "--tls-key", str(pki.server_key), "--client-ca", str(pki.ca), "--", *demo_server_stdio_argv()]
        async with http_server_process(argv, port, "/mcp") as gw:
            context = ssl.create_default_context(cafile=str(pki.ca))
            context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
            async with httpx2.AsyncClient(verify=context, timeout=30) as http:
                answer = await call_echo(http, f"https://127.0.0.1:{port}/mcp", {})
                assert answer.json()["result"]["content"][0]["text"] == "hi"
            async with httpx2.AsyncClient(verify=ssl.create_default_context(cafile=str(pki.ca)), timeout=30) as http:
                with pytest.raises(httpx2.TransportError):
                    await http.get(f"https://127.0.0.1:{port}/health")
            assert "https://127.0.0.1" in gw.stderr_text()


def test_check_config_names_authentication_problems(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("authentication:\n  oauth:\n    issuer: https://idp.example.test\n"
                   "    jwks_uri: http://idp.example.test/jwks\n")
    done = subprocess.run([*GUARDIAN, "check-config", str(bad)], capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=60)
    assert done.returncode == 1
    assert "authentication.resource: required with oauth" in done.stderr
    assert "authentication.oauth.jwks_uri: must use https" in done.stderr
    assert sys.executable  # the CLI ran under this interpreter
