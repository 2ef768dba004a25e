"""Bearer JWT validation for an OAuth 2.1 resource server (the MCP authorization spec).

A token is accepted only if all of these hold:

- its `alg` is one of the configured asymmetric algorithms (never `none`, never HS*);
- the key it names (`kid`) is in the issuer's JWKS and its type fits the algorithm
  (RS/PS need an RSA key, ES256 a P-256 key, EdDSA an OKP key), so a token cannot pick
  how a key is interpreted (no RS/HS confusion);
- the signature verifies with that key;
- `iss` is the configured issuer, and `aud` names this gateway (RFC 8707: the canonical
  resource URL, or another configured audience): a token minted for another service is
  refused even if the same issuer signed it;
- `exp` is in the future and `nbf`/`iat` are not, within a small leeway for clock skew.

A client sends the same token with every request of a session, so a verified token's
identity is kept (keyed by the exact token text, at most `token_cache_ttl` seconds, never
past its `exp`): the signature check (~0.1 ms) is paid once per token, not per request.

The verified claims become an `Identity`: `sub` (configurable), tenant and roles claims
(dotted paths reach into nested objects, e.g. `realm_access.roles`), and scopes from
`scope` (space-separated, RFC 8693/9068) or `scp` (a list, as some issuers write it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import jwt

from guardian.auth.errors import AuthFailure
from guardian.auth.identity import Identity
from guardian.auth.jwks import JWKSCache
from guardian.auth.settings import OAuthSettings

MAX_TOKEN_BYTES = 16 * 1024
MAX_CACHED_TOKENS = 4096

_REQUIRED_CLAIMS = ["exp", "iss", "aud"]


class TokenValidator:
    def __init__(
        self,
        settings: OAuthSettings,
        jwks: JWKSCache | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._verified: dict[str, tuple[Identity, float]] = {}
        """token -> (its identity, until when it may be reused: wall-clock seconds)."""
        self.jwks = jwks or JWKSCache(
            settings.jwks_uri,
            ttl=settings.jwks_cache_ttl,
            refresh_interval=settings.jwks_refresh_interval,
            timeout=settings.jwks_timeout,
        )
        self._algorithms = list(settings.algorithms)
        self._audiences = _with_slash_variants(settings.audiences)
        self._decoder = jwt.PyJWT(options={"require": _REQUIRED_CLAIMS})

    async def validate(self, token: str) -> Identity:
        """The identity a valid token carries; `AuthFailure` (invalid_token) otherwise.

        May raise `KeysUnavailable` when the issuer's keys cannot be had at all.
        """
        if len(token) > MAX_TOKEN_BYTES:
            raise AuthFailure.invalid_token("token too large")
        known = self._verified.get(token)
        if known is not None:
            if self._clock() < known[1]:
                return known[0]
            del self._verified[token]
            raise AuthFailure.invalid_token("token expired")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise AuthFailure.invalid_token("malformed token") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise AuthFailure.invalid_token("token algorithm not accepted")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise AuthFailure.invalid_token("malformed token")
        keys = await self.jwks.candidates(kid, alg)
        if not keys:
            raise AuthFailure.invalid_token("token signed by an unknown key")
        for key in keys:
            try:
                claims = self._decoder.decode(
                    token,
                    key.key,
                    algorithms=self._algorithms,
                    audience=self._audiences,
                    issuer=self.settings.issuer,
                    leeway=self.settings.leeway,
                )
            except jwt.InvalidSignatureError:
                continue  # without a kid several keys may fit; try the next
            except jwt.ExpiredSignatureError:
                raise AuthFailure.invalid_token("token expired") from None
            except jwt.ImmatureSignatureError:
                raise AuthFailure.invalid_token("token not yet valid") from None
            except jwt.InvalidAudienceError:
                raise AuthFailure.invalid_token("token not issued for this resource") from None
            except jwt.InvalidIssuerError:
                raise AuthFailure.invalid_token("token from an untrusted issuer") from None
            except jwt.MissingRequiredClaimError as exc:
                raise AuthFailure.invalid_token(f"token lacks the {exc.claim} claim") from None
            except jwt.InvalidTokenError:
                raise AuthFailure.invalid_token("invalid token") from None
            identity = self.identity(claims)
            self._remember(token, identity, claims["exp"])
            return identity
        raise AuthFailure.invalid_token("invalid token signature")

    def _remember(self, token: str, identity: Identity, exp: float) -> None:
        ttl = self.settings.token_cache_ttl
        if ttl <= 0:
            return
        if len(self._verified) >= MAX_CACHED_TOKENS:
            del self._verified[next(iter(self._verified))]  # the oldest entry
        self._verified[token] = (identity, min(self._clock() + ttl, exp + self.settings.leeway))

    def identity(self, claims: dict[str, Any]) -> Identity:
        settings = self.settings
        subject = claim(claims, settings.subject_claim)
        if not isinstance(subject, str) or not subject:
            raise AuthFailure.invalid_token(f"token lacks the {settings.subject_claim} claim")
        tenant = claim(claims, settings.tenant_claim) if settings.tenant_claim else None
        scopes: set[str] = set()
        for name in settings.scope_claims:
            scopes |= _strings(claim(claims, name))
        roles = _strings(claim(claims, settings.roles_claim)) if settings.roles_claim else set()
        return Identity(
            subject=subject,
            method="jwt",
            tenant=tenant if isinstance(tenant, str) and tenant else None,
            scopes=frozenset(scopes),
            roles=frozenset(roles),
            claims=MappingProxyType(claims),
        )


def claim(claims: Mapping[str, Any], path: str) -> Any:
    """A claim by name, or by dotted path into nested objects when no claim has that exact name."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _strings(value: Any) -> set[str]:
    if isinstance(value, str):
        return set(value.split())
    if isinstance(value, list | tuple):
        return {v for v in value if isinstance(v, str) and v}
    return set()


def _with_slash_variants(audiences: tuple[str, ...]) -> list[str]:
    """`https://x/mcp` and `https://x/mcp/` name the same resource; issuers differ in which they write."""
    out: list[str] = []
    for audience in audiences:
        for variant in (audience, audience.rstrip("/"), audience.rstrip("/") + "/"):
            if variant and variant not in out:
                out.append(variant)
    return out
