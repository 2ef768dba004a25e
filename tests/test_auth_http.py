"""The authentication middleware on the wire: challenges, metadata, API keys, public paths.

Requests go through `AuthMiddleware` in front of a small app that reports what it was
given (the identity, and whether any credential header reached it), over httpx's ASGI
transport; JWTs are verified against a real JWKS endpoint on loopback.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from starlette.types import Receive, Scope, Send

from guardian.auth.identity import identity_of
from guardian.auth.keys_cli import create_key, revoke_key
from guardian.auth.middleware import AuthMiddleware
from guardian.auth.settings import AuthSettings
from tests.support.auth import ISSUER, RESOURCE, JWKSServer, claims, jwks_fixture, rsa_key

pytestmark = pytest.mark.anyio

KEY = rsa_key("k1")
METADATA_URL = "https://gateway.example.test/.well-known/oauth-protected-resource/mcp"


async def reporter(scope: Scope, receive: Receive, send: Send) -> None:
    """The app behind the middleware: says who called and which credential headers it saw."""
    identity = identity_of(scope)
    seen = sorted(name.decode() for name, _ in scope["headers"] if name in (b"authorization", b"x-api-key"))
    body = json.dumps({
        "subject": identity.subject if identity else None,
        "method": identity.method if identity else None,
        "tenant": identity.tenant if identity else None,
        "scopes": sorted(identity.scopes) if identity else [],
        "credential_headers": seen,
    }).encode()  # fmt: skip
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


jwks = jwks_fixture(KEY)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return tmp_path / "keys.yaml"


def settings(jwks: JWKSServer, key_file: Path | None = None, **top: Any) -> AuthSettings:
    block: dict[str, Any] = {
        "resource": RESOURCE,
        "required_scopes": ["mcp:tools"],
        "resource_name": "Guardian test gateway",
        "oauth": {"issuer": ISSUER, "jwks_uri": jwks.url},
        **top,
    }
    if key_file is not None:
        block["api_keys"] = {"file": str(key_file), "reload_interval": 0}
    return AuthSettings.from_dict(block)


@pytest.fixture
async def client(jwks: JWKSServer, key_file: Path) -> AsyncIterator[httpx2.AsyncClient]:
    create_key(key_file, "ci-bot", tenant="acme", scopes=["mcp:tools"])  # the file must exist to be configured
    app = AuthMiddleware(reporter, settings(jwks, key_file))
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://gw") as http:
        yield http


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_no_credential_gets_a_challenge_pointing_at_the_metadata(client: httpx2.AsyncClient) -> None:
    response = await client.post("/mcp", json={})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == f'Bearer scope="mcp:tools", resource_metadata="{METADATA_URL}"'
    assert response.json()["error_description"] == "authentication required"
    # Another scheme is not a credential we take: the same bare challenge.
    basic = await client.post("/mcp", json={}, headers={"Authorization": "Basic YWxpY2U6c2VjcmV0"})
    assert basic.status_code == 401 and "error=" not in basic.headers["www-authenticate"]


async def test_a_failed_token_says_invalid_token(client: httpx2.AsyncClient) -> None:
    response = await client.post("/mcp", json={}, headers=bearer(KEY.sign(claims(aud="https://elsewhere.test"))))
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer error="invalid_token", error_description="token not issued for this resource"')
    assert f'resource_metadata="{METADATA_URL}"' in challenge
    assert response.json() == {"error": "invalid_token", "error_description": "token not issued for this resource"}


async def test_missing_scope_is_403_insufficient_scope(client: httpx2.AsyncClient) -> None:
    response = await client.post("/mcp", json={}, headers=bearer(KEY.sign(claims(scope="mcp:read"))))
    assert response.status_code == 403
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer error="insufficient_scope"')
    assert 'scope="mcp:tools"' in challenge and f'resource_metadata="{METADATA_URL}"' in challenge


async def test_a_good_token_passes_and_its_header_goes_no_further(client: httpx2.AsyncClient) -> None:
    response = await client.post("/mcp", json={}, headers=bearer(KEY.sign(claims())))
    assert response.status_code == 200
    seen = response.json()
    assert seen["subject"] == "alice" and seen["method"] == "jwt" and seen["tenant"] == "acme"
    assert seen["credential_headers"] == []


async def test_protected_resource_metadata(client: httpx2.AsyncClient) -> None:
    expected = {
        "resource": RESOURCE,
        "authorization_servers": [ISSUER],
        "scopes_supported": ["mcp:tools"],
        "bearer_methods_supported": ["header"],
        "resource_name": "Guardian test gateway",
    }
    for path in ("/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"):
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.json() == expected
        assert response.headers["access-control-allow-origin"] == "*"
    assert (await client.post("/.well-known/oauth-protected-resource")).status_code == 405


async def test_health_is_public_and_metrics_protected_unless_configured(
    jwks: JWKSServer, client: httpx2.AsyncClient
) -> None:
    assert (await client.get("/health")).status_code == 200
    assert (await client.get("/metrics")).status_code == 401
    open_metrics = AuthMiddleware(reporter, settings(jwks, protect_metrics=False))
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=open_metrics), base_url="http://gw") as http:
        assert (await http.get("/metrics")).status_code == 200
        assert (await http.get("/sse")).status_code == 401


async def test_two_credentials_at_once_are_a_bad_request(client: httpx2.AsyncClient, key_file: Path) -> None:
    key, _ = create_key(key_file, "second")
    headers = {**bearer(KEY.sign(claims())), "X-API-Key": key}
    response = await client.post("/mcp", json={}, headers=headers)
    assert response.status_code == 400
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_request"')


async def test_api_keys_by_either_header_wrong_and_revoked_keys(client: httpx2.AsyncClient, key_file: Path) -> None:
    key, record = create_key(key_file, "deploy-bot", tenant="acme", scopes=["mcp:tools", "deploy"], roles=["ops"])
    for headers in ({"X-API-Key": key}, bearer(key)):
        response = await client.post("/mcp", json={}, headers=headers)
        assert response.status_code == 200
        seen = response.json()
        assert (seen["subject"], seen["method"], seen["tenant"]) == ("deploy-bot", "api_key", "acme")
        assert seen["scopes"] == ["deploy", "mcp:tools"] and seen["credential_headers"] == []

    wrong = key[:-6] + ("AAAAAA" if not key.endswith("AAAAAA") else "BBBBBB")  # right id, wrong secret
    response = await client.post("/mcp", json={}, headers={"X-API-Key": wrong})
    assert response.status_code == 401 and 'error="invalid_token"' in response.headers["www-authenticate"]
    assert response.json()["error_description"] == "unknown API key"
    response = await client.post("/mcp", json={}, headers={"X-API-Key": "mcpg_" + "0" * 12 + "_" + "x" * 43})
    assert response.json()["error_description"] == "unknown API key"
    response = await client.post("/mcp", json={}, headers={"X-API-Key": "not-a-guardian-key"})
    assert response.json()["error_description"] == "malformed API key"

    revoke_key(key_file, record.key_id)  # the running middleware re-reads the file
    response = await client.post("/mcp", json={}, headers={"X-API-Key": key})
    assert response.status_code == 401 and response.json()["error_description"] == "API key revoked"


async def test_a_key_without_a_required_scope_is_403(client: httpx2.AsyncClient, key_file: Path) -> None:
    key, _ = create_key(key_file, "reader", scopes=["mcp:read"])
    response = await client.post("/mcp", json={}, headers={"X-API-Key": key})
    assert response.status_code == 403 and 'error="insufficient_scope"' in response.headers["www-authenticate"]


async def test_unreachable_issuer_keys_are_503_not_401(jwks: JWKSServer) -> None:
    jwks.status = 500
    app = AuthMiddleware(reporter, settings(jwks))
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://gw") as http:
        response = await http.post("/mcp", json={}, headers=bearer(KEY.sign(claims())))
    assert response.status_code == 503 and "retry-after" in response.headers
