"""The issuer's signing keys (a JWKS), fetched over HTTP(S), cached, and refreshed on rotation.

Keys are fetched on first use and kept for `ttl` seconds. A token naming a key id (`kid`)
the cache does not hold triggers a refetch, since that is how an issuer's key rotation
looks from here; those refetches are rate-limited to one per `refresh_interval`, so a
stream of tokens with made-up `kid`s cannot turn the gateway into a load generator
against the issuer. Concurrent requests share one fetch. When a refresh fails, the
keys already held stay in use; with no keys at all, `KeysUnavailable` is raised (the
caller answers 503: the client's token may be fine).

Only public signature keys are kept: RSA (2048 bits or more), EC on P-256/384/521 and
OKP (Ed25519/Ed448). Symmetric (`oct`) keys, keys carrying private parts, and keys
whose `use` is not `sig` are skipped. Keys are taken only from the configured URL; the
token's own `jku`/`x5u`/`jwk` headers are never followed.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import httpx2
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from guardian.auth.errors import KeysUnavailable
from guardian.errors import describe

logger = logging.getLogger("guardian.auth")

MAX_JWKS_BYTES = 256 * 1024
MAX_KEYS = 64
MIN_RSA_BITS = 2048

_EC_ALGORITHMS = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
_PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k"}


@dataclass(frozen=True, slots=True)
class VerificationKey:
    kid: str | None
    kty: str
    crv: str | None
    alg: str | None
    """The JWK's own `alg`, when it pins one."""
    key: Any
    """The `cryptography` public key object."""

    def verifies(self, alg: str) -> bool:
        """Whether this key may verify a signature made with `alg`: key type and curve must fit."""
        if self.alg is not None and self.alg != alg:
            return False
        if alg[:2] in ("RS", "PS"):
            return self.kty == "RSA"
        if alg in _EC_ALGORITHMS:
            return self.kty == "EC" and self.crv == _EC_ALGORITHMS[alg]
        if alg == "EdDSA":
            return self.kty == "OKP" and self.crv in ("Ed25519", "Ed448")
        return False


def parse_jwks(document: Any) -> list[VerificationKey]:
    """Usable public signature keys of a JWKS document; unusable entries are logged and skipped."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWK set (no `keys` list)")
    keys: list[VerificationKey] = []
    for jwk in document["keys"][:MAX_KEYS]:
        try:
            keys.append(_parse_jwk(jwk))
        except (ValueError, TypeError, KeyError) as exc:
            kid = jwk.get("kid") if isinstance(jwk, dict) else None
            logger.warning("JWKS key %r skipped: %s", kid, exc)
    return keys


def _parse_jwk(jwk: Any) -> VerificationKey:
    if not isinstance(jwk, dict):
        raise ValueError("not a JSON object")
    if _PRIVATE_MEMBERS & set(jwk):
        raise ValueError("holds private or symmetric key material")
    use = jwk.get("use")
    if use is not None and use != "sig":
        raise ValueError(f"use is {use!r}, not 'sig'")
    kty = jwk.get("kty")
    text = json.dumps(jwk)
    key: Any
    if kty == "RSA":
        key = RSAAlgorithm.from_jwk(text)
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(f"RSA key of {key.key_size} bits (at least {MIN_RSA_BITS} required)")
    elif kty == "EC":
        key = ECAlgorithm.from_jwk(text)
    elif kty == "OKP":
        key = OKPAlgorithm.from_jwk(text)
    else:
        raise ValueError(f"key type {kty!r} is not a public signature key")
    if hasattr(key, "private_bytes"):
        raise ValueError("holds a private key")
    kid, alg, crv = jwk.get("kid"), jwk.get("alg"), jwk.get("crv")
    return VerificationKey(
        kid=kid if isinstance(kid, str) else None,
        kty=kty,
        crv=crv if isinstance(crv, str) else None,
        alg=alg if isinstance(alg, str) else None,
        key=key,
    )


class JWKSCache:
    """The keys at one JWKS URL, for `TokenValidator`."""

    def __init__(
        self,
        uri: str,
        *,
        ttl: float = 3600.0,
        refresh_interval: float = 30.0,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.uri = uri
        self.ttl = ttl
        self.refresh_interval = refresh_interval
        self.timeout = timeout
        self._clock = clock
        self._keys: list[VerificationKey] = []
        self._fetched_at: float | None = None
        self._attempted_at = -math.inf
        self._generation = 0
        self._lock: anyio.Lock | None = None
        self.fetches = 0
        """How many fetches were attempted (for tests and metrics)."""

    async def candidates(self, kid: str | None, alg: str) -> list[VerificationKey]:
        """Keys that may verify a token signed with `alg` by key `kid` (no `kid`: every fitting key)."""
        now = self._clock()
        if self._fetched_at is None or now - self._fetched_at >= self.ttl:
            await self._refresh(self._generation)
        found = self._match(kid, alg)
        if not found and kid is not None and not any(k.kid == kid for k in self._keys):
            # An unknown kid: maybe the issuer rotated keys since the last fetch.
            await self._refresh(self._generation)
            found = self._match(kid, alg)
        return found

    def _match(self, kid: str | None, alg: str) -> list[VerificationKey]:
        return [k for k in self._keys if (kid is None or k.kid == kid) and k.verifies(alg)]

    async def _refresh(self, seen_generation: int) -> None:
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:
            if self._generation != seen_generation:
                return  # another request refreshed while this one waited
            now = self._clock()
            if now - self._attempted_at < self.refresh_interval:
                if self._fetched_at is None:
                    raise KeysUnavailable(f"no signing keys from {self.uri} (retrying in at most "
                                          f"{self.refresh_interval:g}s)")
                return
            self._attempted_at = now
            self.fetches += 1
            try:
                keys = parse_jwks(await self._fetch())
            except Exception as exc:
                logger.warning("cannot fetch signing keys from %s: %s", self.uri, describe(exc))
                if self._fetched_at is None:
                    raise KeysUnavailable(f"cannot fetch signing keys from {self.uri}") from exc
                return  # keep the keys held; retried after refresh_interval
            self._keys = keys
            self._fetched_at = now
            self._generation += 1
            logger.info("fetched %d signing keys from %s", len(keys), self.uri)

    async def _fetch(self) -> Any:
        async with httpx2.AsyncClient(timeout=self.timeout, follow_redirects=False) as client, client.stream(
            "GET", self.uri, headers={"accept": "application/jwk-set+json, application/json"}
        ) as response:
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body.extend(chunk)
                if len(body) > MAX_JWKS_BYTES:
                    raise ValueError(f"JWKS larger than {MAX_JWKS_BYTES} bytes")
        return json.loads(bytes(body))
