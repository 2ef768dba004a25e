"""OAuth 2.0 Protected Resource Metadata (RFC 9728) and the `WWW-Authenticate` challenges.

An MCP client that meets a 401 reads `resource_metadata` from the challenge, fetches
that document, and learns which authorization server issues tokens for this gateway
and under which resource URL (RFC 8707) to ask for them. The document is served at
`/.well-known/oauth-protected-resource` and at the path-suffixed form RFC 9728 §3.1
derives from the resource URL (`…/oauth-protected-resource/mcp` for `…/mcp`), which is
where clients look first.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from guardian.auth.settings import AuthSettings

WELL_KNOWN = "/.well-known/oauth-protected-resource"


def metadata_url(resource: str) -> str:
    """Where RFC 9728 §3.1 says a resource's metadata lives: the well-known path before its own path."""
    parts = urlsplit(resource)
    path = parts.path.rstrip("/")
    return f"{parts.scheme}://{parts.netloc}{WELL_KNOWN}{path}"


def metadata_paths(settings: AuthSettings) -> frozenset[str]:
    """Request paths that serve the document: the plain and the path-suffixed forms."""
    paths = {WELL_KNOWN, f"{WELL_KNOWN}/mcp"}
    if settings.resource is not None:
        suffix = urlsplit(settings.resource).path.rstrip("/")
        if suffix:
            paths.add(WELL_KNOWN + suffix)
    return frozenset(paths)


def protected_resource_metadata(settings: AuthSettings) -> dict[str, Any]:
    """The RFC 9728 document for the gateway (only meaningful with `oauth` configured)."""
    document: dict[str, Any] = {"resource": settings.resource}
    if settings.oauth is not None:
        document["authorization_servers"] = list(settings.oauth.authorization_servers)
    if settings.scopes_supported:
        document["scopes_supported"] = list(settings.scopes_supported)
    document["bearer_methods_supported"] = ["header"]
    if settings.resource_name:
        document["resource_name"] = settings.resource_name
    if settings.resource_documentation:
        document["resource_documentation"] = settings.resource_documentation
    return document


def challenge(
    settings: AuthSettings,
    error: str | None = None,
    description: str | None = None,
    scope: str | None = None,
) -> str:
    """A `WWW-Authenticate: Bearer …` value (RFC 6750 §3, with RFC 9728 §5.1's `resource_metadata`)."""
    params: list[str] = []
    if error is not None:
        params.append(f'error="{_quoted(error)}"')
        if description:
            params.append(f'error_description="{_quoted(description)}"')
    if scope:
        params.append(f'scope="{_quoted(scope)}"')
    if settings.oauth is not None and settings.resource is not None:
        params.append(f'resource_metadata="{_quoted(metadata_url(settings.resource))}"')
    if not params:
        params.append('realm="mcp-guardian"')
    return "Bearer " + ", ".join(params)


def _quoted(value: str) -> str:
    """Safe inside a quoted-string: RFC 6750 limits these to printable ASCII without `"` and `\\`."""
    return "".join(c for c in value if " " <= c <= "~" and c not in '"\\')
