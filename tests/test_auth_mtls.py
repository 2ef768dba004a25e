"""mTLS with real TLS on loopback: a CA, server and client certificates generated per run.

The server is uvicorn with `uvicorn_options(TLSSettings(...))` (our protocol hook fills the
ASGI TLS extension) in front of `AuthMiddleware` and an app that reports the identity.
"""

from __future__ import annotations

import contextlib
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest
from starlette.types import Receive, Scope, Send

from guardian.auth.api_keys import digest, generate_key
from guardian.auth.identity import identity_of
from guardian.auth.middleware import AuthMiddleware
from guardian.auth.mtls import TLSSettings, uvicorn_options
from guardian.auth.settings import AuthSettings
from guardian.errors import ConfigError
from tests.support.auth import PKI, make_pki, quiet_logger, uvicorn_server

pytestmark = pytest.mark.anyio

KEY_ID, API_KEY = generate_key()


async def reporter(scope: Scope, receive: Receive, send: Send) -> None:
    identity = identity_of(scope)
    tls = scope.get("extensions", {}).get("tls", {})
    body = json.dumps({
        "subject": identity.subject if identity else None,
        "method": identity.method if identity else None,
        "tenant": identity.tenant if identity else None,
        "scopes": sorted(identity.scopes) if identity else [],
        "client_cert_name": tls.get("client_cert_name"),
    }).encode()  # fmt: skip
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


def auth(pki: PKI, allow_unmapped: bool = False) -> AuthSettings:
    return AuthSettings.from_dict({
        "required_scopes": ["mcp:tools"],
        "mtls": {
            "allow_unmapped": allow_unmapped,
            "identities": {
                "uri:spiffe://example.test/agent-1": {"subject": "agent-one", "tenant": "acme",
                                                      "scopes": ["mcp:tools"], "roles": ["agent"]},
            },
        },
        "api_keys": {"keys": [{"id": KEY_ID, "hash": digest(API_KEY), "subject": "key-holder",
                               "scopes": ["mcp:tools"]}]},
    })  # fmt: skip


@contextlib.asynccontextmanager
async def serve(pki: PKI, mode: str, settings: AuthSettings, loop: str = "auto") -> AsyncIterator[str]:
    tls = TLSSettings.from_dict({"cert": str(pki.server_cert), "key": str(pki.server_key),
                                 "client_ca": str(pki.ca), "client_cert": mode})
    async with uvicorn_server(AuthMiddleware(reporter, settings), loop=loop, **uvicorn_options(tls)) as port:
        yield f"https://127.0.0.1:{port}/mcp"


@pytest.fixture
async def required(pki: PKI) -> AsyncIterator[str]:
    async with serve(pki, "required", auth(pki)) as url:
        yield url


@pytest.fixture
async def optional(pki: PKI) -> AsyncIterator[str]:
    async with serve(pki, "optional", auth(pki)) as url:
        yield url


def client(pki: PKI, cert: Path | None = None, key: Path | None = None) -> httpx2.AsyncClient:
    context = ssl.create_default_context(cafile=str(pki.ca))
    if cert is not None:
        context.load_cert_chain(str(cert), str(key))
    return httpx2.AsyncClient(verify=context, timeout=10)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])  # the peer certificate is read from either loop's transport
async def test_required_mode_maps_the_certificate_to_an_identity(pki: PKI, loop: str) -> None:
    async with serve(pki, "required", auth(pki), loop) as url, client(pki, pki.client_cert, pki.client_key) as http:
        response = await http.post(url, json={})
    assert response.status_code == 200
    seen = response.json()
    assert (seen["subject"], seen["method"], seen["tenant"]) == ("agent-one", "mtls", "acme")
    assert seen["client_cert_name"] == "CN=agent-1,O=Guardian Tests"


async def test_required_mode_refuses_the_handshake_without_a_good_certificate(pki: PKI, required: str) -> None:
    with quiet_logger("uvicorn.error"):
        for cert, key in ((None, None), (pki.rogue_cert, pki.rogue_key)):
            async with client(pki, cert, key) as http:
                with pytest.raises(httpx2.TransportError):
                    await http.post(required, json={})


async def test_optional_mode_lets_other_credentials_stand_in(pki: PKI, optional: str) -> None:
    async with client(pki) as http:
        bare = await http.post(optional, json={})
        assert bare.status_code == 401
        keyed = await http.post(optional, json={}, headers={"X-API-Key": API_KEY})
        assert keyed.status_code == 200 and keyed.json()["method"] == "api_key"
    async with client(pki, pki.client_cert, pki.client_key) as http:
        mapped = await http.post(optional, json={})
        assert mapped.status_code == 200 and mapped.json()["subject"] == "agent-one"
        # A credential header, when given, is what is checked (and a bad one is refused).
        wrong = await http.post(optional, json={}, headers={"X-API-Key": API_KEY[:-4] + "AAAA"})
        assert wrong.status_code == 401
    # A verified certificate that no rule maps gives no identity...
    async with client(pki, pki.other_client_cert, pki.other_client_key) as http:
        assert (await http.post(optional, json={})).status_code == 401
    # ...and a certificate from another CA never gets past the handshake.
    with quiet_logger("uvicorn.error"):
        async with client(pki, pki.rogue_cert, pki.rogue_key) as http:
            with pytest.raises(httpx2.TransportError):
                await http.post(optional, json={})


async def test_unmapped_certificates_when_allowed_get_their_cn_and_no_scopes(pki: PKI) -> None:
    permissive = auth(pki, allow_unmapped=True)
    async with serve(pki, "optional", permissive) as url:
        async with client(pki, pki.other_client_cert, pki.other_client_key) as http:
            response = await http.post(url, json={})
        # It is authenticated (agent-2) but lacks the required scope: 403, not 401.
        assert response.status_code == 403


async def test_fingerprint_selector_pins_one_certificate(pki: PKI) -> None:
    pinned = AuthSettings.from_dict({"mtls": {"identities": {
        f"sha256:{pki.client_fingerprint.upper()}": {"subject": "pinned-agent", "scopes": ["mcp:tools"]},
    }}})  # fmt: skip
    async with serve(pki, "required", pinned) as url:
        async with client(pki, pki.client_cert, pki.client_key) as http:
            response = await http.post(url, json={})
        assert response.status_code == 200 and response.json()["subject"] == "pinned-agent"


def test_tls_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        TLSSettings.from_dict({"cert": str(tmp_path / "missing.pem"), "client_cert": "sometimes", "extra": 1})
    problems = caught.value.problems
    assert "server.tls.extra: unknown key" in problems
    assert any(p.startswith("server.tls.cert: not a readable file") for p in problems)
    assert "server.tls.client_cert: must be one of none, optional, required" in problems
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    with pytest.raises(ConfigError) as caught:
        TLSSettings.from_dict({"cert": str(cert), "client_cert": "required"})
    assert caught.value.problems == ["server.tls.client_ca: required when client_cert is 'required'"]
    options = uvicorn_options(TLSSettings.from_dict({"cert": str(cert)}))
    assert options["ssl_cert_reqs"] == ssl.CERT_NONE and "http" not in options
