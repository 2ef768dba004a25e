"""Real credentials for the auth tests: signing keys behind a loopback JWKS endpoint, JWTs, a small PKI.

    with JWKSServer() as jwks:
        key = rsa_key("k1"); jwks.publish(key)
        token = key.sign(claims())

    async with uvicorn_server(app) as base_url: ...

Everything is generated per test run with `cryptography`; nothing is read from disk or the network.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

import anyio
import jwt
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ISSUER = "https://issuer.example.test"
RESOURCE = "https://gateway.example.test/mcp"
# Raw streamable-HTTP requests to the gateway: the headers it requires and a handshake to open a session.
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}


# --- signing keys and tokens ---------------------------------------------------------------------


@dataclass
class SigningKey:
    kid: str
    alg: str
    private: Any

    def jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        exporter = RSAAlgorithm if isinstance(public, rsa.RSAPublicKey) else ECAlgorithm
        document: dict[str, Any] = exporter.to_jwk(public, as_dict=True)
        return {**document, "kid": self.kid, "use": "sig"}

    def public_pem(self) -> bytes:
        return bytes(self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ))

    def sign(self, payload: dict[str, Any], **header: Any) -> str:
        return jwt.encode(payload, self.private, algorithm=self.alg, headers={"kid": self.kid, **header})


def rsa_key(kid: str, alg: str = "RS256") -> SigningKey:
    return SigningKey(kid, alg, rsa.generate_private_key(public_exponent=65537, key_size=2048))


def ec_key(kid: str) -> SigningKey:
    return SigningKey(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))


def claims(**overrides: Any) -> dict[str, Any]:
    """A valid access token's claims for `RESOURCE` from `ISSUER`; `None` values remove a claim."""
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": RESOURCE,
        "sub": "alice",
        "iat": now,
        "exp": now + 300,
        "scope": "mcp:tools mcp:read",
        "tenant": "acme",
        "roles": ["analyst"],
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def b64url(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unsigned_token(payload: dict[str, Any], alg: str = "none") -> str:
    """A token with `alg` in its header and no signature (the `alg: none` attack)."""
    header = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    return f"{header}.{b64url(json.dumps(payload).encode())}."


# --- a JWKS endpoint on loopback ---------------------------------------------------------------------


class JWKSServer:
    """Serves `document` at `/jwks.json` from a thread; counts the fetches."""

    def __init__(self) -> None:
        self.document: dict[str, Any] = {"keys": []}
        self.hits = 0
        self.status = 200
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits += 1
                body = json.dumps(server.document).encode()
                self.send_response(server.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/jwks.json"

    def publish(self, *keys: SigningKey) -> None:
        self.document = {"keys": [key.jwk() for key in keys]}

    def __enter__(self) -> JWKSServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


def jwks_fixture(*keys: SigningKey, scope: Literal["function", "module"] = "function") -> Any:
    """A `jwks` fixture: a `JWKSServer` publishing `keys`. In a test module: `jwks = jwks_fixture(KEY)`."""

    @pytest.fixture(scope=scope, name="jwks")
    def fixture() -> Iterator[JWKSServer]:
        with JWKSServer() as server:
            server.publish(*keys)
            yield server

    return fixture


# --- uvicorn on loopback, in a thread -----------------------------------------------------------------


@contextlib.asynccontextmanager
async def uvicorn_server(app: Any, **options: Any) -> AsyncIterator[int]:
    """Serve `app` with uvicorn on 127.0.0.1 (a free port) in a thread; yields the port."""
    options.setdefault("lifespan", "auto")  # apps without a lifespan handler are fine too
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        with anyio.fail_after(15):
            while not server.started:
                if not thread.is_alive():
                    raise RuntimeError("uvicorn exited before it started")
                await anyio.sleep(0.01)  # readiness poll, not synchronisation
        yield int(server.servers[0].sockets[0].getsockname()[1])
    finally:
        server.should_exit = True
        await anyio.to_thread.run_sync(thread.join, 10)


# --- a PKI for mTLS --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PKI:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    client_fingerprint: str
    other_client_cert: Path
    other_client_key: Path
    rogue_cert: Path
    rogue_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Guardian Tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(subject: str, key: Any, issuer: x509.Name, issuer_key: Any, *, ca: bool = False,
           sans: list[x509.GeneralName] | None = None, usage: Any = None) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                          encipher_only=False, decipher_only=False), critical=True)
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(directory: Path, stem: str, cert: x509.Certificate, key: Any) -> tuple[Path, Path]:
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def make_pki(directory: Path) -> PKI:
    """A CA; a server cert for 127.0.0.1; two client certs from it; a client cert from another CA."""
    import ipaddress

    def new_key() -> Any:
        return ec.generate_private_key(ec.SECP256R1())

    ca_key, rogue_ca_key = new_key(), new_key()
    ca = _issue("Guardian Test CA", ca_key, _name("Guardian Test CA"), ca_key, ca=True)
    rogue_ca = _issue("Rogue CA", rogue_ca_key, _name("Rogue CA"), rogue_ca_key, ca=True)
    server_key, client_key, other_key, rogue_key = new_key(), new_key(), new_key(), new_key()
    server = _issue("127.0.0.1", server_key, ca.subject, ca_key,
                    sans=[x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")],
                    usage=ExtendedKeyUsageOID.SERVER_AUTH)
    client = _issue("agent-1", client_key, ca.subject, ca_key,
                    sans=[x509.UniformResourceIdentifier("spiffe://example.test/agent-1")],
                    usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    other = _issue("agent-2", other_key, ca.subject, ca_key, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    rogue = _issue("agent-1", rogue_key, rogue_ca.subject, rogue_ca_key, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    ca_path = directory / "ca.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    server_paths = _write(directory, "server", server, server_key)
    client_paths = _write(directory, "client", client, client_key)
    other_paths = _write(directory, "other", other, other_key)
    rogue_paths = _write(directory, "rogue", rogue, rogue_key)
    return PKI(
        ca=ca_path,
        server_cert=server_paths[0], server_key=server_paths[1],
        client_cert=client_paths[0], client_key=client_paths[1],
        client_fingerprint=client.fingerprint(hashes.SHA256()).hex(),
        other_client_cert=other_paths[0], other_client_key=other_paths[1],
        rogue_cert=rogue_paths[0], rogue_key=rogue_paths[1],
    )


@contextlib.contextmanager
def quiet_logger(name: str) -> Iterator[None]:
    """Silence a logger for a block (uvicorn logs every refused TLS handshake as an error)."""
    import logging

    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)
