"""Configuration: JSON or YAML, validated against `schemas/config.schema.json`.

Precedence, highest first: CLI flags, environment (`MCP_GUARDIAN_LOG_LEVEL`), the
file (`--config` or `MCP_GUARDIAN_CONFIG`), built-in defaults. Every problem is
reported as one line naming its JSON path, so `guardian check-config` output can be
acted on without reading the schema.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from guardian.auth.settings import AuthSettings, TLSSettings
from guardian.auth.upstream_oauth import UpstreamOAuth
from guardian.documents import merge, read_file, schema_problems
from guardian.errors import ConfigError
from guardian.inspectors.limits import Limits
from guardian.profiles import GENERIC_KEYS, Profile, load_profile

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "config.schema.json"
CONFIG_ENV = "MCP_GUARDIAN_CONFIG"
LOG_LEVEL_ENV = "MCP_GUARDIAN_LOG_LEVEL"

UpstreamTransport = Literal["stdio", "streamable-http", "sse"]


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """Where the real MCP server is: a command to spawn, or a URL."""

    transport: UpstreamTransport
    command: tuple[str, ...] = ()
    url: str | None = None
    name: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    connect_timeout: float = 10.0
    read_timeout: float = 300.0
    oauth: UpstreamOAuth | None = None
    """A URL upstream's OAuth 2.0 client credentials: the gateway's own bearer token upstream."""

    @property
    def key(self) -> str:
        """Stable identity of the upstream (for pins, audit, metrics)."""
        return self.url if self.url is not None else shlex.join(self.command)

    @property
    def label(self) -> str:
        return self.name or self.key


@dataclass(frozen=True, slots=True)
class ServerConfig:
    bind_host: str = "127.0.0.1"
    bind_port: int = 8080
    max_concurrent_requests: int = 64
    request_timeout: float = 120.0
    max_sessions: int = 100
    upstream_pool_size: int = 8
    session_idle_timeout: float = 1800.0
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    tls: TLSSettings | None = None
    rate_limit_http_status: Literal[200, 429] = 200
    """HTTP status of a plain-JSON rate-limit refusal (429 adds `Retry-After`). 200 by default:
    the TypeScript SDK client throws on non-2xx and loses the JSON-RPC error's code and data."""


@dataclass(frozen=True, slots=True)
class InspectorConfig:
    """One inspector's settings: the profile's block with the config's merged over it.

    The generic keys are the pipeline's business; `options` (everything else, `action`
    included) goes to the inspector's `from_options`.
    """

    enabled: bool = True
    monitor: bool = False
    timeout: float | None = None
    fail_closed: bool | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_block(cls, block: Mapping[str, Any]) -> InspectorConfig:
        return cls(
            enabled=bool(block.get("enabled", True)),
            monitor=bool(block.get("monitor", False)),
            timeout=block.get("timeout"),
            fail_closed=block.get("fail_closed"),
            options={k: v for k, v in block.items() if k not in GENERIC_KEYS},
        )


@dataclass(frozen=True, slots=True)
class SecurityConfig:
    plugin_timeout: float = 5.0
    fail_closed: bool = True
    limits: Limits = field(default_factory=Limits)
    tools_allow: tuple[str, ...] = ()
    tools_deny: tuple[str, ...] = ()
    inspectors: Mapping[str, InspectorConfig] = field(default_factory=lambda: resolve_inspectors("standard", {}))
    """Every inspector the profile or the config names, profile block and config block merged."""


@dataclass(frozen=True, slots=True)
class TenantConfig:
    """One tenant: which upstreams it may reach and its own security settings.

    `security` is already complete: the tenant's profile with the gateway's security section
    merged over it, then the tenant's own section over that.
    """

    name: str
    upstreams: tuple[str, ...]
    default_upstream: str | None
    profile: str
    security: SecurityConfig


DEFAULT_TENANT = "default"
"""The tenant of callers that have none, when tenants are configured (if it is configured)."""
DEFAULT_UPSTREAM = "default"


def upstream_route_name(upstream: UpstreamConfig) -> str:
    return upstream.name or DEFAULT_UPSTREAM


@dataclass(frozen=True, slots=True)
class MonitoringConfig:
    log_level: str = "INFO"
    audit_log: str | None = None
    audit_all_messages: bool = False
    metrics: bool = True
    """Count decisions, findings, latencies and sessions for `/metrics` (Prometheus)."""


@dataclass(frozen=True, slots=True)
class Config:
    upstream: UpstreamConfig | None = None
    profile: str = "standard"
    """The profile's name (a shipped one, or a file's `name`); its blocks are already merged
    into `security.inspectors`."""
    proxy_mode: str | None = None
    server: ServerConfig = field(default_factory=ServerConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)
    authentication: AuthSettings = field(default_factory=AuthSettings)
    upstreams: Mapping[str, UpstreamConfig] = field(default_factory=dict)
    """Every upstream by route name (`/mcp/<name>`): the `upstreams` section and the main
    upstream (`upstream_mcp_server`, named by its `name`, else `default`)."""
    tenants: Mapping[str, TenantConfig] = field(default_factory=dict)
    """Configured tenants; empty: one implicit tenant reaching every upstream."""
    source: str = "<defaults>"

    @property
    def main_upstream_name(self) -> str | None:
        return upstream_route_name(self.upstream) if self.upstream is not None else None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<dict>") -> Config:
        """Validate a config mapping and build the typed config; raises `ConfigError`."""
        problems = validate(data)
        if problems:
            raise ConfigError([f"{source}: {p}" for p in problems])
        try:
            return _build(data, source)
        except ConfigError as exc:
            raise ConfigError([f"{source}: {p}" for p in exc.problems]) from None

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None = None,
        overrides: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Config:
        """File (or `MCP_GUARDIAN_CONFIG`) + environment + CLI overrides, validated together."""
        environ = os.environ if environ is None else environ
        path = path if path is not None else environ.get(CONFIG_ENV) or None
        data: dict[str, Any] = read_file(path) if path is not None else {}
        if level := environ.get(LOG_LEVEL_ENV):
            data = merge(data, {"monitoring": {"log_level": level}})
        if overrides:
            if "upstream_mcp_server" in overrides:
                # An upstream given on the command line replaces the file's, it is not merged into it.
                data = {k: v for k, v in data.items() if k != "upstream_mcp_server"}
            data = merge(data, overrides)
        return cls.from_dict(data, str(path) if path is not None else "<config>")


def validate(data: Any) -> list[str]:
    """The config's problems, one line each, starting with the JSON path it concerns."""
    return schema_problems(data, SCHEMA_PATH)


def parse_upstream(value: str | Mapping[str, Any], transport: str | None = None) -> UpstreamConfig:
    """An upstream from a URL, a command line, or the config object form."""
    spec: dict[str, Any] = {"command": value} if isinstance(value, str) else dict(value)
    if isinstance(value, str) and value.startswith(("http://", "https://")):
        spec = {"url": value}
    chosen = transport or spec.get("transport") or "auto"
    url = spec.get("url")
    command: tuple[str, ...] = ()
    if url is None:
        raw = spec["command"]
        command = tuple(shlex.split(raw) if isinstance(raw, str) else raw) + tuple(spec.get("args", ()))
        if chosen not in ("auto", "stdio"):
            raise ConfigError([f"$.upstream_mcp_server: transport {chosen!r} needs a URL, not a command"])
        kind: UpstreamTransport = "stdio"
    elif chosen == "auto":
        kind = "sse" if url.rstrip("/").endswith("/sse") else "streamable-http"
    elif chosen == "stdio":
        raise ConfigError(["$.upstream_mcp_server: transport 'stdio' needs a command, not a URL"])
    else:
        kind = "sse" if chosen == "sse" else "streamable-http"
    if "oauth" in spec and url is None:
        raise ConfigError(["$.upstream_mcp_server.oauth: needs a URL upstream, not a command"])
    optional = {k: spec[k] for k in ("connect_timeout", "read_timeout") if k in spec}
    return UpstreamConfig(
        transport=kind,
        command=command,
        url=url,
        name=spec.get("name"),
        env=dict(spec.get("env", {})),
        cwd=spec.get("cwd"),
        headers=dict(spec.get("headers", {})),
        oauth=UpstreamOAuth.from_dict(spec["oauth"]) if "oauth" in spec else None,
        **optional,
    )


def resolve_inspectors(
    profile: str | Profile, blocks: Mapping[str, Mapping[str, Any]]
) -> dict[str, InspectorConfig]:
    """The profile's (a loaded one, or a name/path) inspector blocks with the config's `blocks` merged over them."""
    loaded = profile if isinstance(profile, Profile) else load_profile(profile)
    return {
        name: InspectorConfig.from_block(loaded.block(name, blocks.get(name)))
        for name in {**loaded.inspectors, **blocks}
    }


def _build(data: Mapping[str, Any], source: str) -> Config:
    server = data.get("server", {})
    monitoring = data.get("monitoring", {})
    profile = load_profile(data.get("security_profile", "standard"))
    main = data.get("upstream_mcp_server")
    upstream = parse_upstream(main) if main is not None else None
    upstreams = _named_upstreams(data.get("upstreams", {}), upstream)
    return Config(
        upstream=upstream,
        profile=profile.name,
        proxy_mode=data.get("proxy_mode"),
        server=ServerConfig(
            **{k: v for k, v in server.items() if k not in ("allowed_hosts", "allowed_origins", "tls")},
            allowed_hosts=tuple(server.get("allowed_hosts", ())),
            allowed_origins=tuple(server.get("allowed_origins", ())),
            tls=TLSSettings.from_dict(server["tls"]) if "tls" in server else None,
        ),
        authentication=AuthSettings.from_dict(data.get("authentication", {})),
        security=_security(data.get("security", {}), profile),
        monitoring=MonitoringConfig(
            log_level=str(monitoring.get("log_level", "INFO")).upper(),
            audit_log=monitoring.get("audit_log"),
            audit_all_messages=bool(monitoring.get("audit_all_messages", False)),
            metrics=bool(monitoring.get("metrics", True)),
        ),
        upstreams=upstreams,
        tenants=_tenants(data, upstreams, upstream),
        source=source,
    )


def _security(security: Mapping[str, Any], profile: Profile) -> SecurityConfig:
    tools = security.get("tools", {})
    return SecurityConfig(
        plugin_timeout=security.get("security_plugin_timeout", 5.0),
        fail_closed=security.get("fail_closed", profile.fail_closed),
        limits=Limits(**security.get("limits", {})),
        tools_allow=tuple(tools.get("allow", ())),
        tools_deny=tuple(tools.get("deny", ())),
        inspectors=resolve_inspectors(profile, security.get("inspectors", {})),
    )


def _named_upstreams(section: Mapping[str, Any], main: UpstreamConfig | None) -> dict[str, UpstreamConfig]:
    """The `upstreams` section by name (a spec without its own `name` is labelled by its key,
    which then names its pins and catalog entries), plus the main upstream."""
    named: dict[str, UpstreamConfig] = {}
    problems: list[str] = []
    for name, spec in section.items():
        try:
            parsed = parse_upstream(spec)
        except ConfigError as exc:
            problems.extend(p.replace("$.upstream_mcp_server", f"$.upstreams.{name}") for p in exc.problems)
            continue
        named[name] = parsed if parsed.name else replace(parsed, name=name)
    if main is not None:
        main_name = upstream_route_name(main)
        if main_name in named:
            problems.append(f"$.upstreams.{main_name}: the name is taken by upstream_mcp_server")
        named[main_name] = main
    if problems:
        raise ConfigError(problems)
    return named


def _tenants(
    data: Mapping[str, Any], upstreams: Mapping[str, UpstreamConfig], main: UpstreamConfig | None
) -> dict[str, TenantConfig]:
    """Each tenant with its upstream names checked and its security settings complete."""
    tenants: dict[str, TenantConfig] = {}
    problems: list[str] = []
    gateway_security = data.get("security", {})
    for name, block in data.get("tenants", {}).items():
        where = f"$.tenants.{name}"
        reachable = tuple(block.get("upstreams", ()))
        if not reachable and main is not None:
            reachable = (upstream_route_name(main),)
        if not reachable:
            problems.append(f"{where}.upstreams: required when upstream_mcp_server is not set")
        problems.extend(
            f"{where}.upstreams[{i}]: no upstream named {u!r}" for i, u in enumerate(reachable) if u not in upstreams
        )
        default = block.get("default_upstream", reachable[0] if reachable else None)
        if default is not None and default not in reachable:
            problems.append(f"{where}.default_upstream: {default!r} is not one of this tenant's upstreams")
        try:
            profile = load_profile(block.get("security_profile", data.get("security_profile", "standard")))
            security = _security(merge(gateway_security, block.get("security", {})), profile)
        except ConfigError as exc:
            problems.extend(f"{where}: {p}" for p in exc.problems)
            continue
        tenants[name] = TenantConfig(name, reachable, default, profile.name, security)
    if problems:
        raise ConfigError(problems)
    return tenants
