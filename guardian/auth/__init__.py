"""Authentication for the HTTP downstream: OAuth 2.1 bearer JWTs, API keys, mTLS client certificates.

One concept per module: `identity` (what every method produces), `settings` (the
`authentication` config block), `tokens` + `jwks` (JWT validation against the issuer's
keys), `metadata` (RFC 9728 document and challenges), `api_keys` (+ `keys_cli`),
`mtls` (TLS serving, certificate mapping), `middleware` (the ASGI wrapper).

Only the light modules are imported here, so `guardian.auth.Identity` costs nothing.
"""

from guardian.auth.identity import IDENTITY_KEY, Identity, identity_of

__all__ = ["IDENTITY_KEY", "Identity", "identity_of"]
