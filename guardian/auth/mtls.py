"""Mutual TLS: serving HTTPS with client certificates, and turning a verified certificate into an identity.

Three parts:

- `uvicorn_options(TLSSettings)`: what `guardian serve --tls-cert --tls-key --client-ca`
  hands to uvicorn: the server certificate, the CA that client certificates must chain
  to, and whether a client certificate is `required` (the handshake fails without one)
  or `optional` (a client without one must authenticate otherwise).
- A uvicorn protocol hook. ASGI has a TLS extension (`scope["extensions"]["tls"]`, with
  `client_cert_chain` as PEM strings and `client_cert_name` as an RFC 4514 DN), but
  uvicorn (0.54, the newest here) does not fill it (pull requests to do so are open): the
  peer certificate is only on the connection's `ssl_object`. `tls_protocol(base)` subclasses uvicorn's HTTP protocol so
  that, once per connection, the extension is built from the `ssl_object` and added to
  every request's scope. The certificate is included only when the server asked for one
  (`optional`/`required`), in which case OpenSSL has already verified it against the CA:
  a presented certificate that does not verify fails the handshake.
- `CertificateMapper`: certificate → `Identity`, by selectors in config (`cn:`, `dns:`,
  `uri:`, `email:`, `sha256:`), most specific first. CN and SAN are trusted only because
  the chain was verified against the configured client CA.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from guardian.auth.identity import Identity
from guardian.auth.settings import ClientCertMode, MTLSSettings, TLSSettings

__all__ = ["CertificateMapper", "TLSSettings", "client_certificate", "tls_protocol", "uvicorn_options"]

ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]

_TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}
_CERT_REQS: dict[ClientCertMode, ssl.VerifyMode] = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}
_TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
"""Forward-secret AEAD suites for TLS 1.2 clients (TLS 1.3 suites are all fine)."""
_CACHE_LIMIT = 1024


def uvicorn_options(tls: TLSSettings, http: type[asyncio.Protocol] | None = None) -> dict[str, Any]:
    """Keyword arguments for `uvicorn.run` / `uvicorn.Config` serving HTTPS, with client certs if set."""
    options: dict[str, Any] = {
        "ssl_certfile": tls.certfile,
        "ssl_keyfile": tls.keyfile,
        "ssl_ciphers": _TLS12_CIPHERS,
        "ssl_cert_reqs": _CERT_REQS[tls.client_cert],
    }
    if tls.client_ca is not None:
        options["ssl_ca_certs"] = tls.client_ca
    if tls.client_cert != "none":
        options["http"] = tls_protocol(http or _default_protocol())
    return options


def _default_protocol() -> type[asyncio.Protocol]:
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    protocol: type[asyncio.Protocol] = AutoHTTPProtocol
    return protocol


# --- the uvicorn hook --------------------------------------------------------------------------


def tls_extension(transport: asyncio.BaseTransport) -> dict[str, Any] | None:
    """The ASGI TLS extension for a connection, or None when it is not TLS."""
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    chain: list[str] = []
    name: str | None = None
    # With CERT_NONE the server never asked, so a certificate here would be unverified.
    if ssl_object.context.verify_mode != ssl.CERT_NONE:
        # The leaf only: before Python 3.13 the verified chain is not reachable, and the
        # leaf is what identifies the client.
        der = ssl_object.getpeercert(binary_form=True)
        if der:
            chain.append(ssl.DER_cert_to_PEM_cert(der))
            name = x509.load_der_x509_certificate(der).subject.rfc4514_string()
    return {
        "server_cert": None,
        "client_cert_chain": chain,
        "client_cert_name": name,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(ssl_object.version() or ""),
        "cipher_suite": None,  # Python's ssl does not expose the IANA suite number
    }


_PROTOCOLS: dict[type[asyncio.Protocol], type[asyncio.Protocol]] = {}


def tls_protocol(base: type[asyncio.Protocol]) -> type[asyncio.Protocol]:
    """`base` (a uvicorn HTTP protocol class) filling `scope["extensions"]["tls"]` on every request."""
    made = _PROTOCOLS.get(base)
    if made is None:
        made = _PROTOCOLS[base] = _subclass(base)
    return made


def _subclass(base: type[asyncio.Protocol]) -> type[asyncio.Protocol]:

    def connection_made(self: Any, transport: asyncio.BaseTransport) -> None:
        base.connection_made(self, transport)
        extension = tls_extension(transport)
        if extension is not None:
            self.app = _with_tls(self.app, extension)  # uvicorn reads `self.app` per request

    return type(f"TLS{base.__name__}", (base,), {"connection_made": connection_made})


def _with_tls(app: ASGIApp, extension: dict[str, Any]) -> ASGIApp:
    async def with_tls(scope: Any, receive: Any, send: Any) -> None:
        extensions = scope.get("extensions")
        if extensions is None:
            scope["extensions"] = {"tls": extension}
        else:
            extensions["tls"] = extension
        await app(scope, receive, send)

    return with_tls


def client_certificate(scope: Mapping[str, Any]) -> str | None:
    """The verified client certificate (PEM) of a request, from the ASGI TLS extension."""
    extensions = scope.get("extensions")
    tls = extensions.get("tls") if extensions else None
    chain = tls.get("client_cert_chain") if tls else None
    return chain[0] if chain else None


# --- certificate -> identity ---------------------------------------------------------------------


class CertificateMapper:
    def __init__(self, settings: MTLSSettings) -> None:
        self.settings = settings
        self._cache: dict[str, Identity | None] = {}

    def identity(self, pem: str) -> Identity | None:
        """The identity a certificate maps to, or None (unmapped and `allow_unmapped` is off)."""
        if pem in self._cache:
            return self._cache[pem]
        identity = self._map(x509.load_pem_x509_certificate(pem.encode("ascii")))
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[pem] = identity
        return identity

    def _map(self, cert: x509.Certificate) -> Identity | None:
        selectors = certificate_selectors(cert)
        claims = {
            "subject_dn": cert.subject.rfc4514_string(),
            "fingerprint_sha256": selectors[0].partition(":")[2],
        }
        for selector in selectors:
            rule = self.settings.identities.get(selector)
            if rule is not None:
                return Identity(
                    subject=rule.subject or selector.partition(":")[2],
                    method="mtls",
                    tenant=rule.tenant,
                    scopes=rule.scopes,
                    roles=rule.roles,
                    claims={**claims, "selector": selector},
                )
        if self.settings.allow_unmapped and len(selectors) > 1:
            return Identity(subject=selectors[-1].partition(":")[2], method="mtls", claims=claims)
        return None


def certificate_selectors(cert: x509.Certificate) -> list[str]:
    """Every selector a certificate answers to, most specific first: fingerprint, SAN URI/DNS/email, CN."""
    selectors = ["sha256:" + hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()]
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        selectors += [f"uri:{v}" for v in san.get_values_for_type(x509.UniformResourceIdentifier)]
        selectors += [f"dns:{v}" for v in san.get_values_for_type(x509.DNSName)]
        selectors += [f"email:{v}" for v in san.get_values_for_type(x509.RFC822Name)]
    selectors += [f"cn:{a.value}" for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
                  if isinstance(a.value, str)]
    return selectors
