"""Who is calling: the `Identity` every authentication method produces, and where it travels.

Policy and audit must not care how a caller proved who they are, so a bearer JWT, an API
key and a client certificate all end up as the same shape: a subject, an optional tenant,
scopes and roles, plus the method and the raw claims for anything more specific.

The authentication middleware puts the identity into the ASGI scope under `IDENTITY_KEY`;
transports read it from there with `identity_of`. This module imports nothing heavy, so
events and transports can depend on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

AuthMethod = Literal["jwt", "api_key", "mtls"]

IDENTITY_KEY = "guardian.identity"
"""ASGI scope key holding the authenticated `Identity` of a request."""

_NO_CLAIMS: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated caller.

    `claims` holds what the method knows beyond the common fields: a JWT's verified
    claims, an API key's id, a certificate's subject DN and fingerprint.
    """

    subject: str
    method: AuthMethod
    tenant: str | None = None
    scopes: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    claims: Mapping[str, Any] = field(default_factory=lambda: _NO_CLAIMS, compare=False)

    @property
    def principal(self) -> tuple[str, str | None]:
        """What makes two identities the same caller (a refreshed token keeps its sessions)."""
        return (self.subject, self.tenant)

    def has_scopes(self, required: frozenset[str]) -> bool:
        return required <= self.scopes


def identity_of(scope: Mapping[str, Any]) -> Identity | None:
    """The identity the authentication middleware attached to this request, if any."""
    identity = scope.get(IDENTITY_KEY)
    return identity if isinstance(identity, Identity) else None
