"""The gateway's own credentials for a URL upstream: OAuth 2.0 client credentials (RFC 6749 §4.4).

Why: a remote MCP server that wants a bearer token wants the gateway's, not the client's
(the client's `Authorization` is for the gateway and is never passed on). With
`upstream_mcp_server.oauth` the gateway asks the token endpoint for an access token
(`grant_type=client_credentials`, the client authenticated with HTTP Basic by default or
in the form body, `scope`/`audience` and the RFC 8707 `resource` when configured), sends
it as `Authorization: Bearer` on every upstream request, reuses it until shortly before
its `expires_in`, and fetches a new one when it expires or when the upstream answers 401
(then retries that request once).

The hook is an `httpx2.Auth` on the upstream's HTTP client, so the streamable HTTP
client, the SSE client and every session and pooled connection share it. One token cache
per distinct `oauth` block per process: sessions reuse one token instead of each
fetching its own. Neither the client secret nor a token is ever logged or put into an
error message (`UpstreamOAuth`'s repr leaves the secret out).
"""

from __future__ import annotations

import base64
import logging
import math
import os
import re
import time
from collections.abc import AsyncGenerator, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote_plus

import anyio
import httpx2

from guardian.errors import describe

logger = logging.getLogger("guardian.upstream.oauth")

ClientAuth = Literal["client_secret_basic", "client_secret_post"]

MAX_REFRESH_MARGIN = 30.0
"""A token is replaced this many seconds before it expires (or a tenth of its lifetime, if less)."""

_ERROR_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class UpstreamTokenError(httpx2.HTTPError):
    """No access token could be had from the token endpoint; the message never holds a secret.

    An `httpx2.HTTPError`, so every place that handles a failed upstream request handles it.
    """


@dataclass(frozen=True, slots=True)
class UpstreamOAuth:
    """`upstream_mcp_server.oauth`: how the gateway gets its access token (validated by the schema)."""

    token_url: str
    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    client_secret_env: str | None = None
    """The name of an environment variable holding the secret, read at each token fetch."""
    scope: str | None = None
    audience: str | None = None
    resource: str | None = None
    """RFC 8707 resource indicator: the upstream the token is for."""
    client_auth: ClientAuth = "client_secret_basic"
    timeout: float = 10.0

    @classmethod
    def from_dict(cls, block: Mapping[str, Any]) -> UpstreamOAuth:
        scope = block.get("scope")
        return cls(
            token_url=block["token_url"],
            client_id=block["client_id"],
            client_secret=block.get("client_secret"),
            client_secret_env=block.get("client_secret_env"),
            scope=" ".join(scope) if isinstance(scope, list | tuple) else scope,
            audience=block.get("audience"),
            resource=block.get("resource"),
            client_auth=block.get("client_auth", "client_secret_basic"),
            timeout=float(block.get("timeout", 10.0)),
        )

    def secret(self) -> str:
        if self.client_secret is not None:
            return self.client_secret
        value = os.environ.get(self.client_secret_env or "")
        if not value:
            raise UpstreamTokenError(f"upstream oauth: environment variable {self.client_secret_env} is not set")
        return value


@dataclass(slots=True)
class _Token:
    value: str
    refresh_at: float
    """`time.monotonic()` after which the token is replaced before use."""


class TokenSource:
    """One cached access token for one `UpstreamOAuth`, fetched again when stale or refused."""

    def __init__(self, settings: UpstreamOAuth) -> None:
        self.settings = settings
        self._token: _Token | None = None
        self._lock = anyio.Lock()
        self.fetches = 0
        """How many tokens were fetched (for metrics and tests)."""

    async def token(self, refused: str | None = None) -> str:
        """A usable access token; `refused`: the upstream answered 401 to this one, do not reuse it."""
        async with self._lock:
            current = self._token
            if current is not None and current.value != refused and time.monotonic() < current.refresh_at:
                return current.value
            self._token = await self._fetch()
            return self._token.value

    async def _fetch(self) -> _Token:
        settings = self.settings
        form = {"grant_type": "client_credentials"}
        form.update({k: v for k, v in (("scope", settings.scope), ("audience", settings.audience),
                                        ("resource", settings.resource)) if v})
        headers = {"accept": "application/json"}
        secret = settings.secret()
        if settings.client_auth == "client_secret_basic":
            headers["authorization"] = _basic(settings.client_id, secret)
        else:
            form.update(client_id=settings.client_id, client_secret=secret)
        started = time.monotonic()
        try:
            async with httpx2.AsyncClient(timeout=settings.timeout) as client:
                response = await client.post(settings.token_url, data=form, headers=headers)
        except httpx2.HTTPError as exc:
            raise UpstreamTokenError(f"token endpoint {settings.token_url}: {describe(exc)}") from None
        self.fetches += 1
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        token = _parse(settings.token_url, response.status_code, body, started)
        logger.info("fetched an access token for the upstream from %s (refreshed in %.0fs)",
                    settings.token_url, token.refresh_at - started)
        return token


def _basic(client_id: str, secret: str) -> str:
    """HTTP Basic client authentication: RFC 6749 §2.3.1 form-encodes both parts first."""
    pair = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


def _parse(token_url: str, status: int, body: Any, started: float) -> _Token:
    """The token in a token endpoint's answer (RFC 6749 §5.1), or why there is none (§5.2)."""
    if status != 200 or not isinstance(body, dict):
        error = body.get("error") if isinstance(body, dict) else None
        code = f" ({error})" if isinstance(error, str) and _ERROR_CODE.match(error) else ""
        raise UpstreamTokenError(f"token endpoint {token_url} answered HTTP {status}{code}")
    value = body.get("access_token")
    token_type = body.get("token_type", "Bearer")
    if not isinstance(value, str) or not value or not isinstance(token_type, str) \
            or token_type.lower() != "bearer":
        raise UpstreamTokenError(f"token endpoint {token_url} answered without a bearer access token")
    lifetime = _seconds(body.get("expires_in"))
    refresh_at = started + lifetime - min(MAX_REFRESH_MARGIN, lifetime / 10) if lifetime is not None else math.inf
    return _Token(value, refresh_at)


def _seconds(value: Any) -> float | None:
    """`expires_in` as seconds (some servers send a numeric string); None when absent or unusable."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


class BearerAuth(httpx2.Auth):
    """Puts the source's token on each upstream request; on a 401, a fresh token and one retry."""

    def __init__(self, source: TokenSource) -> None:
        self.source = source

    def sync_auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response, None]:
        raise RuntimeError("upstream OAuth needs an async HTTP client")

    async def async_auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        token = await self.source.token()
        request.headers["authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            token = await self.source.token(refused=token)
            request.headers["authorization"] = f"Bearer {token}"
            yield request


_SOURCES: dict[UpstreamOAuth, TokenSource] = {}


def bearer_auth(settings: UpstreamOAuth | None) -> BearerAuth | None:
    """The `httpx2.Auth` for an upstream's `oauth` block (None: no OAuth); one token cache per block."""
    if settings is None:
        return None
    source = _SOURCES.get(settings)
    if source is None:
        source = _SOURCES[settings] = TokenSource(settings)
    return BearerAuth(source)
