"""The `authentication` block of the config, typed and checked.

`AuthSettings.from_dict(mapping)` raises `ConfigError` with one line per problem, each
naming `authentication.<key>`, so `guardian check-config` output points at the fix.
Everything is off unless the block configures at least one method (`oauth`, `api_keys`,
`mtls`); `enabled: false` turns a configured block off.

`TLSSettings` (the HTTPS listener, `server.tls`) lives here too, as plain data, so the
config can hold it without importing `cryptography`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit

from guardian.auth.api_keys import ApiKeyRecord, load_key_file, parse_records
from guardian.errors import ConfigError

ROOT = "authentication"

ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
"""Signature algorithms a resource server can verify with an issuer's published (public) keys.

HS* are refused: their key is a shared secret, which a JWKS must never publish, and
accepting them next to RS* is the classic key-confusion hole. `none` is never a signature.
"""

DEFAULT_ALGORITHMS = ("RS256", "ES256")

PROTECTED_PATHS = frozenset({"/mcp", "/sse", "/messages/"})
"""Paths that can never be made public: they are the gateway."""


@dataclass(frozen=True, slots=True)
class OAuthSettings:
    """Bearer JWTs from one issuer, verified with the keys at its `jwks_uri`."""

    issuer: str
    jwks_uri: str
    audiences: tuple[str, ...]
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    leeway: float = 30.0
    jwks_cache_ttl: float = 3600.0
    jwks_refresh_interval: float = 30.0
    jwks_timeout: float = 5.0
    token_cache_ttl: float = 60.0
    subject_claim: str = "sub"
    tenant_claim: str | None = "tenant"
    roles_claim: str | None = "roles"
    scope_claims: tuple[str, ...] = ("scope", "scp")
    authorization_servers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ApiKeySettings:
    """API keys (stored as hashes), inline and/or in a key file that is re-read when it changes."""

    keys: tuple[ApiKeyRecord, ...] = ()
    file: str | None = None
    reload_interval: float = 5.0


@dataclass(frozen=True, slots=True)
class CertificateIdentity:
    """What a matched client certificate becomes; `subject` defaults to the selector's value."""

    subject: str | None = None
    tenant: str | None = None
    scopes: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class MTLSSettings:
    """Verified client certificates mapped to identities by a selector.

    Selectors: `cn:<common name>`, `dns:<SAN DNS name>`, `uri:<SAN URI>` (e.g. SPIFFE IDs),
    `email:<SAN email>`, `sha256:<certificate fingerprint, hex>`.
    """

    identities: Mapping[str, CertificateIdentity] = field(default_factory=lambda: MappingProxyType({}))
    allow_unmapped: bool = False


@dataclass(frozen=True, slots=True)
class AuthSettings:
    enabled: bool = False
    resource: str | None = None
    """The gateway's canonical resource URL (RFC 8707), e.g. `https://mcp.example.com/mcp`."""
    required_scopes: frozenset[str] = frozenset()
    scopes_supported: tuple[str, ...] = ()
    resource_name: str | None = None
    resource_documentation: str | None = None
    public_paths: frozenset[str] = frozenset({"/health"})
    protect_metrics: bool = True
    oauth: OAuthSettings | None = None
    api_keys: ApiKeySettings | None = None
    mtls: MTLSSettings | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> AuthSettings:
        problems: list[str] = []
        settings = _build(data or {}, problems)
        if problems:
            raise ConfigError(problems)
        return settings

    @property
    def paths_without_auth(self) -> frozenset[str]:
        return self.public_paths if self.protect_metrics else self.public_paths | {"/metrics"}


ClientCertMode = Literal["none", "optional", "required"]


@dataclass(frozen=True, slots=True)
class TLSSettings:
    """The HTTPS listener (`server.tls`, or `guardian serve --tls-cert/--tls-key/--client-ca/--client-cert`)."""

    certfile: str
    keyfile: str | None = None
    client_ca: str | None = None
    client_cert: ClientCertMode = "none"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str = "server.tls") -> TLSSettings:
        """From `{cert, key, client_ca, client_cert}`; `ConfigError` naming `<path>.<key>`."""
        problems: list[str] = [f"{path}.{k}: unknown key" for k in sorted(data) if k not in
                               {"cert", "key", "client_ca", "client_cert"}]
        files: dict[str, str | None] = {}
        for key in ("cert", "key", "client_ca"):
            value = data.get(key)
            if value is not None and (not isinstance(value, str) or not Path(value).is_file()):
                problems.append(f"{path}.{key}: not a readable file: {value!r}")
                value = None
            files[key] = value
        if files["cert"] is None and "cert" not in data:
            problems.append(f"{path}.cert: required for TLS")
        mode = data.get("client_cert", "required" if files["client_ca"] else "none")
        if mode not in ("none", "optional", "required"):
            problems.append(f"{path}.client_cert: must be one of none, optional, required")
            mode = "none"
        if mode != "none" and files["client_ca"] is None and "client_ca" not in data:
            problems.append(f"{path}.client_ca: required when client_cert is {mode!r}")
        if problems:
            raise ConfigError(problems)
        assert files["cert"] is not None
        return cls(files["cert"], files["key"], files["client_ca"], mode)


# --- building ---------------------------------------------------------------------------------

_TOP_KEYS = {
    "enabled", "resource", "required_scopes", "scopes_supported", "resource_name", "resource_documentation",
    "public_paths", "protect_metrics", "oauth", "api_keys", "mtls",
}  # fmt: skip
_OAUTH_KEYS = {
    "issuer", "jwks_uri", "audiences", "algorithms", "leeway", "jwks_cache_ttl", "jwks_refresh_interval",
    "jwks_timeout", "token_cache_ttl", "subject_claim", "tenant_claim", "roles_claim", "scope_claims",
    "authorization_servers",
}  # fmt: skip
_API_KEY_KEYS = {"file", "keys", "reload_interval"}
_MTLS_KEYS = {"identities", "allow_unmapped"}
_CERT_IDENTITY_KEYS = {"subject", "tenant", "scopes", "roles"}
_SELECTORS = ("cn", "dns", "uri", "email", "sha256")


class _Reader:
    """Reads one mapping, recording a problem line per bad key instead of stopping."""

    def __init__(self, data: Any, path: str, allowed: set[str], problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        if not isinstance(data, Mapping):
            problems.append(f"{path}: must be a mapping, not {type(data).__name__}")
            data = {}
        self.data: Mapping[str, Any] = data
        for key in sorted(str(k) for k in data if k not in allowed):
            problems.append(f"{path}.{key}: unknown key")

    def has(self, key: str) -> bool:
        return key in self.data

    def problem(self, key: str, text: str) -> None:
        self.problems.append(f"{self.path}.{key}: {text}")

    def text(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        if key not in self.data:
            if required:
                self.problem(key, "required")
            return default
        value = self.data[key]
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value:
            self.problem(key, "must be a non-empty string")
            return default
        return value

    def url(self, key: str, *, required: bool = False, https_unless_loopback: bool = False) -> str | None:
        value = self.text(key, required=required)
        if value is None:
            return None
        problem = _url_problem(value, https_unless_loopback)
        if problem:
            self.problem(key, problem)
            return None
        return value

    def strings(self, key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        if key not in self.data:
            return default
        value = self.data[key]
        if isinstance(value, str):
            value = value.split()  # "a b" is how OAuth writes scope lists
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
            self.problem(key, "must be a list of non-empty strings")
            return default
        return tuple(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            self.problem(key, "must be true or false")
            return default
        return value

    def number(self, key: str, default: float, *, low: float = 0.0, high: float = float("inf"),
               exclusive_low: bool = False) -> float:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(key, "must be a number")
            return default
        if value < low or (exclusive_low and value == low) or value > high:
            bound = f"> {low:g}" if exclusive_low else f">= {low:g}"
            upper = f" and <= {high:g}" if high != float("inf") else ""
            self.problem(key, f"must be {bound}{upper}")
            return default
        return float(value)


def _url_problem(value: str, https_unless_loopback: bool) -> str | None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http(s) URL"
    if parts.fragment:
        return "must not have a fragment"
    if https_unless_loopback and parts.scheme != "https" and not is_loopback(parts.hostname):
        return "must use https (plain http is allowed only for loopback hosts)"
    return None


def is_loopback(host: str) -> bool:
    """`localhost` or a loopback IP literal (used for the listener and for `https_unless_loopback`)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _build(data: Mapping[str, Any], problems: list[str]) -> AuthSettings:
    top = _Reader(data, ROOT, _TOP_KEYS, problems)
    resource = top.url("resource")
    required_scopes = frozenset(top.strings("required_scopes"))
    public_paths = frozenset(top.strings("public_paths", ("/health",)))
    for path in sorted(public_paths):
        if not path.startswith("/"):
            top.problem("public_paths", f"{path!r} must start with '/'")
        elif path in PROTECTED_PATHS or path.startswith("/.well-known/oauth-protected-resource"):
            top.problem("public_paths", f"{path!r} cannot be public")
    oauth = _oauth(top.data["oauth"], resource, problems) if top.has("oauth") else None
    if top.has("oauth") and not top.has("resource"):
        top.problem("resource", "required with oauth: the gateway's canonical URL, e.g. https://mcp.example.com/mcp")
    api_keys = _api_keys(top.data["api_keys"], problems) if top.has("api_keys") else None
    mtls = _mtls(top.data["mtls"], problems) if top.has("mtls") else None
    configured = any(m is not None for m in (oauth, api_keys, mtls)) or any(
        top.has(k) for k in ("oauth", "api_keys", "mtls")
    )
    enabled = top.flag("enabled", configured)
    if enabled and not configured:
        top.problem("enabled", "no method configured: add oauth, api_keys or mtls")
    return AuthSettings(
        enabled=enabled,
        resource=resource,
        required_scopes=required_scopes,
        scopes_supported=top.strings("scopes_supported", tuple(sorted(required_scopes))),
        resource_name=top.text("resource_name"),
        resource_documentation=top.url("resource_documentation"),
        public_paths=public_paths,
        protect_metrics=top.flag("protect_metrics", True),
        oauth=oauth,
        api_keys=api_keys,
        mtls=mtls,
    )


def _oauth(data: Any, resource: str | None, problems: list[str]) -> OAuthSettings | None:
    reader = _Reader(data, f"{ROOT}.oauth", _OAUTH_KEYS, problems)
    issuer = reader.url("issuer", required=True)
    jwks_uri = reader.url("jwks_uri", required=True, https_unless_loopback=True)
    algorithms = reader.strings("algorithms", DEFAULT_ALGORITHMS)
    for alg in algorithms:
        if alg not in ASYMMETRIC_ALGORITHMS:
            why = "is not a signature" if alg.lower() == "none" else "is not allowed"
            if alg.upper().startswith("HS"):
                why = "is symmetric: an issuer's public keys cannot verify it"
            reader.problem("algorithms", f"{alg!r} {why}; use some of {', '.join(sorted(ASYMMETRIC_ALGORITHMS))}")
    if not algorithms:
        reader.problem("algorithms", "must not be empty")
    audiences = reader.strings("audiences", (resource,) if resource else ())
    if not audiences and resource is not None:
        reader.problem("audiences", "must not be empty")
    for claim in ("subject_claim", "tenant_claim", "roles_claim"):
        reader.text(claim)
    settings = OAuthSettings(
        issuer=issuer or "",
        jwks_uri=jwks_uri or "",
        audiences=audiences,
        algorithms=algorithms,
        leeway=reader.number("leeway", 30.0, high=300.0),
        jwks_cache_ttl=reader.number("jwks_cache_ttl", 3600.0, exclusive_low=True),
        jwks_refresh_interval=reader.number("jwks_refresh_interval", 30.0),
        jwks_timeout=reader.number("jwks_timeout", 5.0, exclusive_low=True, high=60.0),
        token_cache_ttl=reader.number("token_cache_ttl", 60.0, high=3600.0),
        subject_claim=reader.text("subject_claim", "sub") or "sub",
        tenant_claim=reader.text("tenant_claim", "tenant"),
        roles_claim=reader.text("roles_claim", "roles"),
        scope_claims=reader.strings("scope_claims", ("scope", "scp")),
        authorization_servers=reader.strings("authorization_servers", (issuer,) if issuer else ()),
    )
    return settings if issuer and jwks_uri else None


def _api_keys(data: Any, problems: list[str]) -> ApiKeySettings:
    reader = _Reader(data, f"{ROOT}.api_keys", _API_KEY_KEYS, problems)
    records: tuple[ApiKeyRecord, ...] = ()
    if reader.has("keys"):
        records, bad = parse_records(reader.data["keys"], f"{reader.path}.keys")
        problems.extend(bad)
    path = reader.text("file")
    if path is not None:
        try:
            load_key_file(path)
        except ConfigError as exc:
            problems.extend(f"{reader.path}.file: {p}" for p in exc.problems)
    if not records and path is None and isinstance(reader.data, Mapping):
        reader.problems.append(f"{reader.path}: give keys or a key file")
    return ApiKeySettings(keys=records, file=path, reload_interval=reader.number("reload_interval", 5.0))


def _mtls(data: Any, problems: list[str]) -> MTLSSettings:
    reader = _Reader(data, f"{ROOT}.mtls", _MTLS_KEYS, problems)
    identities: dict[str, CertificateIdentity] = {}
    raw = reader.data.get("identities", {})
    if not isinstance(raw, Mapping):
        reader.problem("identities", "must be a mapping of selector -> identity")
        raw = {}
    for selector, spec in raw.items():
        where = f"{reader.path}.identities[{selector!r}]"
        kind, _, value = str(selector).partition(":")
        if kind not in _SELECTORS or not value:
            problems.append(f"{where}: selector must be one of {', '.join(k + ':…' for k in _SELECTORS)}")
            continue
        entry = _Reader(spec if spec is not None else {}, where, _CERT_IDENTITY_KEYS, problems)
        key = f"sha256:{value.replace(':', '').lower()}" if kind == "sha256" else f"{kind}:{value}"
        identities[key] = CertificateIdentity(
            subject=entry.text("subject"),
            tenant=entry.text("tenant"),
            scopes=frozenset(entry.strings("scopes")),
            roles=frozenset(entry.strings("roles")),
        )
    return MTLSSettings(identities=MappingProxyType(identities), allow_unmapped=reader.flag("allow_unmapped", False))
