"""Bearer JWT validation against a real JWKS endpoint on loopback, with real RSA and EC keys.

Each attack a resource server must resist gets a token built the way an attacker would
build it: `alg: none`, HS256 signed with the issuer's public key, a tampered payload,
another service's audience, another issuer, a key the issuer never published.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from guardian.auth.errors import AuthFailure, KeysUnavailable
from guardian.auth.jwks import JWKSCache, parse_jwks
from guardian.auth.settings import AuthSettings, OAuthSettings
from guardian.auth.tokens import TokenValidator
from tests.support.auth import (
    ISSUER,
    RESOURCE,
    JWKSServer,
    SigningKey,
    b64url,
    claims,
    ec_key,
    jwks_fixture,
    rsa_key,
    unsigned_token,
)

pytestmark = pytest.mark.anyio

RSA = rsa_key("rsa-1")
EC = ec_key("ec-1")


jwks = jwks_fixture(RSA, EC)


class Clock:
    """A settable monotonic clock for the cache's TTL and refetch rate limit."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def oauth(jwks: JWKSServer, **overrides: Any) -> OAuthSettings:
    block = {"issuer": ISSUER, "jwks_uri": jwks.url, "algorithms": ["RS256", "ES256"], **overrides}
    settings = AuthSettings.from_dict({"resource": RESOURCE, "oauth": block})
    assert settings.oauth is not None
    return settings.oauth


def validator(jwks: JWKSServer, clock: Clock | None = None, **overrides: Any) -> TokenValidator:
    """A validator that checks every token in full (no reuse of verified tokens, unless overridden)."""
    settings = oauth(jwks, **{"token_cache_ttl": 0, **overrides})
    cache = JWKSCache(settings.jwks_uri, ttl=settings.jwks_cache_ttl, refresh_interval=settings.jwks_refresh_interval,
                      clock=clock or time.monotonic)
    return TokenValidator(settings, cache)


async def refused(check: TokenValidator, token: str) -> str:
    with pytest.raises(AuthFailure) as caught:
        await check.validate(token)
    assert caught.value.error == "invalid_token" and caught.value.status == 401
    return caught.value.description


async def test_valid_rsa_and_ec_tokens_become_identities(jwks: JWKSServer) -> None:
    check = validator(jwks)
    identity = await check.validate(RSA.sign(claims()))
    assert identity.subject == "alice" and identity.method == "jwt" and identity.tenant == "acme"
    assert identity.scopes == {"mcp:tools", "mcp:read"} and identity.roles == {"analyst"}
    assert identity.claims["iss"] == ISSUER
    assert (await check.validate(EC.sign(claims(sub="bob")))).subject == "bob"
    assert jwks.hits == 1, "keys are fetched once and then served from the cache"

    # `scp` as a list (some issuers) and nested role claims via a dotted path.
    nested = validator(jwks, roles_claim="realm_access.roles", tenant_claim="org")
    token = EC.sign(claims(scope=None, scp=["files:read"], realm_access={"roles": ["admin"]}, org="globex"))
    identity = await nested.validate(token)
    assert identity.scopes == {"files:read"} and identity.roles == {"admin"} and identity.tenant == "globex"


async def test_audience_must_name_this_resource(jwks: JWKSServer) -> None:
    check = validator(jwks)
    assert await refused(check, RSA.sign(claims(aud="https://other-service.example.test/mcp"))) == \
        "token not issued for this resource"
    assert await refused(check, RSA.sign(claims(aud=None))) == "token lacks the aud claim"
    # A list naming us among others is fine (RFC 7519), and so is a trailing-slash spelling.
    assert (await check.validate(RSA.sign(claims(aud=["https://x.example.test", RESOURCE])))).subject == "alice"
    assert (await check.validate(RSA.sign(claims(aud=RESOURCE + "/")))).subject == "alice"


async def test_issuer_must_be_the_configured_one(jwks: JWKSServer) -> None:
    check = validator(jwks)
    assert await refused(check, RSA.sign(claims(iss="https://evil.example.test"))) == "token from an untrusted issuer"
    assert await refused(check, RSA.sign(claims(iss=None))) == "token lacks the iss claim"


async def test_expiry_and_not_before_with_leeway(jwks: JWKSServer) -> None:
    check = validator(jwks, leeway=30)
    now = int(time.time())
    assert await refused(check, RSA.sign(claims(exp=now - 120))) == "token expired"
    assert await refused(check, RSA.sign(claims(exp=None))) == "token lacks the exp claim"
    assert await refused(check, RSA.sign(claims(nbf=now + 120))) == "token not yet valid"
    # Within the leeway: a few seconds of clock skew between issuer and gateway is tolerated.
    assert (await check.validate(RSA.sign(claims(exp=now - 5)))).subject == "alice"
    assert (await check.validate(RSA.sign(claims(nbf=now + 5)))).subject == "alice"


async def test_alg_none_and_unlisted_algorithms_are_refused(jwks: JWKSServer) -> None:
    check = validator(jwks)
    for alg in ("none", "None", "NONE"):
        assert await refused(check, unsigned_token(claims(), alg)) == "token algorithm not accepted"
    ps256 = SigningKey("rsa-1", "PS256", RSA.private)
    assert await refused(check, ps256.sign(claims())) == "token algorithm not accepted"


async def test_hs256_signed_with_the_public_key_is_refused(jwks: JWKSServer) -> None:
    """The key-confusion attack: the public key (known to all) used as an HMAC secret."""
    check = validator(jwks)
    header = b64url(b'{"alg":"HS256","typ":"JWT","kid":"rsa-1"}')
    payload = b64url(json.dumps(claims()).encode())
    for secret in (RSA.public_pem(), json.dumps(RSA.jwk()).encode()):
        signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        forged = f"{header}.{payload}.{b64url(signature)}"
        assert await refused(check, forged) == "token algorithm not accepted"


def test_hs_and_none_cannot_even_be_configured() -> None:
    from guardian.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        AuthSettings.from_dict({"resource": RESOURCE, "oauth": {
            "issuer": ISSUER, "jwks_uri": "https://issuer.example.test/jwks", "algorithms": ["HS256", "none"],
        }})  # fmt: skip
    lines = caught.value.problems
    assert any(line.startswith("authentication.oauth.algorithms: 'HS256' is symmetric") for line in lines)
    assert any(line.startswith("authentication.oauth.algorithms: 'none' is not a signature") for line in lines)


async def test_key_type_must_fit_the_algorithm(jwks: JWKSServer) -> None:
    """A token claiming ES256 but naming the RSA key's kid must not be checked with that key."""
    check = validator(jwks)
    wrong_family = SigningKey("rsa-1", "ES256", EC.private)  # signs ES256, points at the RSA key
    assert await refused(check, wrong_family.sign(claims())) == "token signed by an unknown key"
    pinned = parse_jwks({"keys": [{**RSA.jwk(), "alg": "RS512"}]})[0]
    assert not pinned.verifies("RS256") and pinned.verifies("RS512")


async def test_tampered_tokens_are_refused(jwks: JWKSServer) -> None:
    check = validator(jwks)
    token = RSA.sign(claims())
    header, payload, signature = token.split(".")
    elevated = b64url(json.dumps(claims(sub="root", scope="admin")).encode())
    assert await refused(check, f"{header}.{elevated}.{signature}") == "invalid token signature"
    flipped = signature[:-4] + ("AAAA" if not signature.endswith("AAAA") else "BBBB")
    assert await refused(check, f"{header}.{payload}.{flipped}") == "invalid token signature"
    assert await refused(check, "not-a-jwt") == "malformed token"
    # Signed by a key with a published kid but not the published key.
    impostor = rsa_key("rsa-1")
    assert await refused(check, impostor.sign(claims())) == "invalid token signature"


async def test_rotation_picks_up_a_new_kid_and_refetches_are_rate_limited(jwks: JWKSServer) -> None:
    clock = Clock()
    check = validator(jwks, clock, jwks_refresh_interval=30)
    await check.validate(RSA.sign(claims()))
    assert jwks.hits == 1

    rotated = rsa_key("rsa-2")
    jwks.publish(rotated, EC)  # the issuer rotates: rsa-1 retired, rsa-2 new
    clock.now += 60
    assert (await check.validate(rotated.sign(claims()))).subject == "alice"
    assert jwks.hits == 2, "an unknown kid triggers one refetch"

    # Made-up kids right after: refused without hammering the issuer.
    for n in range(5):
        assert await refused(check, SigningKey(f"bogus-{n}", "RS256", rotated.private).sign(claims())) == \
            "token signed by an unknown key"
    assert jwks.hits == 2
    clock.now += 31
    await refused(check, SigningKey("bogus-late", "RS256", rotated.private).sign(claims()))
    assert jwks.hits == 3, "after the interval one more refetch is allowed"
    # The retired key is gone after the refetch.
    assert await refused(check, RSA.sign(claims())) == "token signed by an unknown key"


async def test_a_verified_token_is_reused_only_until_it_expires(jwks: JWKSServer) -> None:
    wall = [time.time()]
    settings = oauth(jwks, token_cache_ttl=60)
    check = TokenValidator(settings, clock=lambda: wall[0])
    token = RSA.sign(claims(exp=int(wall[0]) + 300))
    assert (await check.validate(token)).subject == "alice"
    jwks.status = 500  # the reuse needs no keys: the token was verified already
    wall[0] += 30
    assert (await check.validate(token)).subject == "alice"
    # Past its exp (+ leeway) the remembered token is refused, though the real clock would still accept it.
    wall[0] += 300
    assert await refused(check, token) == "token expired"


async def test_keys_expire_after_the_ttl_and_survive_a_failed_refresh(jwks: JWKSServer) -> None:
    clock = Clock()
    check = validator(jwks, clock, jwks_cache_ttl=600, jwks_refresh_interval=30)
    await check.validate(RSA.sign(claims()))
    clock.now += 601
    jwks.status = 500
    # The refresh fails, the keys held stay in use.
    assert (await check.validate(RSA.sign(claims()))).subject == "alice"
    assert jwks.hits == 2


async def test_no_keys_at_all_is_unavailable_not_a_bad_token(jwks: JWKSServer) -> None:
    jwks.status = 503
    check = validator(jwks)
    with pytest.raises(KeysUnavailable):
        await check.validate(RSA.sign(claims()))


def test_jwks_parsing_skips_unusable_keys() -> None:
    private_jwk = jwt.algorithms.RSAAlgorithm.to_jwk(RSA.private, as_dict=True)
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    small_jwk = jwt.algorithms.RSAAlgorithm.to_jwk(small.public_key(), as_dict=True)
    keys = parse_jwks({"keys": [
        {"kty": "oct", "k": "c2VjcmV0", "kid": "sym"},
        {**private_jwk, "kid": "priv"},
        {**small_jwk, "kid": "small"},
        {**RSA.jwk(), "use": "enc", "kid": "enc"},
        EC.jwk(),
    ]})  # fmt: skip
    assert [k.kid for k in keys] == ["ec-1"]
