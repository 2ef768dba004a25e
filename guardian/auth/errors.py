"""Why a request was not let in, in the terms of RFC 6750 (bearer token usage).

`error` is one of the RFC 6750 codes and goes into `WWW-Authenticate` and the body;
`description` is a fixed phrase naming the reason (never token content), for client
developers and logs.
"""

from __future__ import annotations

from typing import Literal

BearerError = Literal["invalid_request", "invalid_token", "insufficient_scope"]


class AuthFailure(Exception):
    """A credential was missing, malformed or rejected."""

    def __init__(self, error: BearerError | None, description: str, status: int = 401) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status

    @classmethod
    def missing(cls) -> AuthFailure:
        """No credential at all: a bare challenge (RFC 6750 §3.1: no error code)."""
        return cls(None, "authentication required")

    @classmethod
    def invalid_token(cls, description: str) -> AuthFailure:
        return cls("invalid_token", description)

    @classmethod
    def invalid_request(cls, description: str) -> AuthFailure:
        return cls("invalid_request", description, status=400)


class KeysUnavailable(Exception):
    """The issuer's signing keys could not be fetched, and none are cached: not the caller's fault."""
