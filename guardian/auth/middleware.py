"""Authentication in front of the gateway's HTTP app: every request proves who it is, or is refused.

Credentials, in order:

1. `Authorization: Bearer <token>`: an API key if it starts with `mcpg_`, else a JWT.
2. `X-API-Key: mcpg_…`.
3. No credential header: the verified TLS client certificate, if it maps to an identity.

A credential that is presented and fails is refused even when a client certificate would
map (the client said who it is, and that was false). Two credential headers at once are
a bad request (RFC 6750 §2). The credential headers are removed from the scope once
checked, so nothing behind this middleware (transports, the relay, upstream header
stamping) can pass a client's token on to an upstream server.

Refusals follow RFC 6750 and the MCP authorization spec: 401 with
`WWW-Authenticate: Bearer resource_metadata="…"` (plus `error="invalid_token"` when a
credential failed), 403 with `error="insufficient_scope", scope="…"` when the identity
lacks a required scope, 503 when the issuer's keys cannot be fetched. The Protected
Resource Metadata document (RFC 9728) is served here, unauthenticated, as are
`public_paths` (`/health` by default; `/metrics` too when `protect_metrics` is off).

The authenticated `Identity` goes into the scope under `IDENTITY_KEY`.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from guardian.auth.api_keys import ApiKeyStore, looks_like_key
from guardian.auth.errors import AuthFailure, KeysUnavailable
from guardian.auth.identity import IDENTITY_KEY, Identity
from guardian.auth.metadata import challenge, metadata_paths, protected_resource_metadata
from guardian.auth.mtls import CertificateMapper, client_certificate
from guardian.auth.settings import AuthSettings
from guardian.auth.tokens import TokenValidator

logger = logging.getLogger("guardian.auth")

_CREDENTIAL_HEADERS = (b"authorization", b"x-api-key")


class AuthMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        settings: AuthSettings,
        *,
        validator: TokenValidator | None = None,
        keys: ApiKeyStore | None = None,
        certificates: CertificateMapper | None = None,
    ) -> None:
        self.app = app
        self.settings = settings
        oauth, api_keys, mtls = settings.oauth, settings.api_keys, settings.mtls
        self.validator = validator or (TokenValidator(oauth) if oauth is not None else None)
        self.keys = keys or (
            ApiKeyStore(api_keys.keys, api_keys.file, api_keys.reload_interval) if api_keys is not None else None
        )
        self.certificates = certificates or (CertificateMapper(mtls) if mtls is not None else None)
        self._open = settings.paths_without_auth
        self._metadata_paths = metadata_paths(settings) if oauth is not None else frozenset()
        self._metadata = json.dumps(protected_resource_metadata(settings)).encode()
        self._required = settings.required_scopes
        self._scope_text = " ".join(sorted(settings.required_scopes)) or None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http":
            if kind == "websocket":  # nothing here speaks WebSocket; never let one through unchecked
                await send({"type": "websocket.close", "code": 1008})
                return
            await self.app(scope, receive, send)  # lifespan
            return
        path = scope["path"]
        if path in self._open:
            await self.app(scope, receive, send)
            return
        if path in self._metadata_paths:
            await self._serve_metadata(scope, send)
            return
        try:
            identity = await self.authenticate(scope)
            if not self._required <= identity.scopes:
                raise AuthFailure("insufficient_scope", "a required scope is missing", status=403)
        except AuthFailure as failure:
            await self._refuse(scope, send, failure)
            return
        except KeysUnavailable as exc:
            logger.error("refused %s %s: %s", scope["method"], path, exc)
            await _respond(send, 503, {"error": "temporarily_unavailable", "error_description": "cannot verify "
                                       "tokens right now"}, [(b"retry-after", b"%d" % self._retry_after())])
            return
        scope[IDENTITY_KEY] = identity
        await self.app(scope, receive, send)

    async def authenticate(self, scope: Scope) -> Identity:
        """The identity a request proves, with its credential headers removed from the scope."""
        authorization: bytes | None = None
        api_key: bytes | None = None
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        for name, value in headers:
            if name == b"authorization":
                if authorization is not None:
                    raise AuthFailure.invalid_request("more than one Authorization header")
                authorization = value
            elif name == b"x-api-key":
                if api_key is not None:
                    raise AuthFailure.invalid_request("more than one X-API-Key header")
                api_key = value
        if authorization is None and api_key is None:
            return self._certificate_identity(scope)
        scope["headers"] = [(n, v) for n, v in headers if n not in _CREDENTIAL_HEADERS]
        token: str | None = None
        if authorization is not None:
            scheme, _, credential = authorization.decode("latin-1").strip().partition(" ")
            if scheme.lower() != "bearer":
                if api_key is None:
                    raise AuthFailure.missing()  # another scheme (Basic, …): challenge for ours
            else:
                token = credential.strip()
                if not token:
                    raise AuthFailure.invalid_request("empty bearer token")
        if api_key is not None:
            if token is not None:
                raise AuthFailure.invalid_request("more than one credential")
            presented = api_key.decode("latin-1").strip()
            if not looks_like_key(presented):
                raise AuthFailure.invalid_token("malformed API key")
            token = presented
        assert token is not None
        if looks_like_key(token):
            if self.keys is None:
                raise AuthFailure.invalid_token("API keys are not accepted here")
            return self.keys.authenticate(token)
        if self.validator is None:
            raise AuthFailure.invalid_token("bearer tokens are not accepted here")
        return await self.validator.validate(token)

    def _certificate_identity(self, scope: Scope) -> Identity:
        if self.certificates is not None:
            pem = client_certificate(scope)
            identity = self.certificates.identity(pem) if pem is not None else None
            if identity is not None:
                return identity
        raise AuthFailure.missing()

    async def _refuse(self, scope: Scope, send: Send, failure: AuthFailure) -> None:
        client = scope.get("client")
        logger.info("refused %s %s from %s: %s", scope["method"], scope["path"],
                    client[0] if client else "?", failure.description)
        scope_hint = self._scope_text if failure.error in (None, "insufficient_scope") else None
        header = challenge(self.settings, failure.error, failure.description, scope_hint)
        body = {"error": failure.error or "unauthorized", "error_description": failure.description}
        await _respond(send, failure.status, body, [(b"www-authenticate", header.encode("latin-1"))])

    async def _serve_metadata(self, scope: Scope, send: Send) -> None:
        cors = [(b"access-control-allow-origin", b"*")]  # public document; browser clients fetch it cross-origin
        method = scope["method"]
        if method == "OPTIONS":
            await _send(send, 204, b"", [*cors, (b"access-control-allow-methods", b"GET, OPTIONS")])
        elif method in ("GET", "HEAD"):  # the server drops the body of a HEAD answer
            headers = [*cors, (b"content-type", b"application/json"), (b"cache-control", b"public, max-age=3600")]
            await _send(send, 200, self._metadata, headers)
        else:
            await _send(send, 405, b"", [(b"allow", b"GET, HEAD, OPTIONS")])

    def _retry_after(self) -> int:
        oauth = self.settings.oauth
        return max(1, round(oauth.jwks_refresh_interval)) if oauth is not None else 30


async def _respond(send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> None:
    await _send(send, status, json.dumps(body).encode(), [(b"content-type", b"application/json"), *headers])


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})
