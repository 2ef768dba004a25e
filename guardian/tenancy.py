"""Tenants at run time: which pipeline and which upstreams serve a caller.

Every session and every 2026-07-28 request is served by one `Route`: the caller's tenant
context (its own pipeline, built from its security settings) and one upstream that tenant
may reach. Everything stateful downstream of a route is keyed by the tenant: sessions are
bound to their caller, shared upstream connections (`ModernExchange`'s pools) exist per
(tenant, upstream), and the catalog, pins, poisoning registry and rate-limit buckets key on
`SessionInfo.tenant`. So one tenant can neither reach another's upstream nor see its state.

Without configured tenants there is one context (named None) that reaches every upstream,
and a session's tenant is whatever the caller's identity says (a claim, an API key's
binding): per-tenant rate limits, pins and policy still work on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from guardian import errors
from guardian.auth.identity import Identity
from guardian.config import DEFAULT_TENANT, SecurityConfig, UpstreamConfig
from guardian.pipeline import Pipeline
from guardian.policy import AccessPolicyInspector
from guardian.ratelimit import RateLimitInspector


class AccessRefused(Exception):
    """A caller that no route serves; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status
        self.code = errors.ACCESS_REFUSED


@dataclass(eq=False, slots=True)
class TenantContext:
    """One tenant's pipeline and reach (or the gateway's own, `name` None, without tenants)."""

    name: str | None
    security: SecurityConfig
    pipeline: Pipeline
    upstreams: Mapping[str, UpstreamConfig]
    default_upstream: str | None
    rate_limit: RateLimitInspector | None = None
    access_policy: AccessPolicyInspector | None = None

    def route(self, upstream: str | None) -> Route:
        """The route to `upstream` (None: this tenant's default) or `AccessRefused` (404)."""
        name = upstream if upstream is not None else self.default_upstream
        config = self.upstreams.get(name) if name is not None else None
        if name is None or config is None:
            missing = "no upstream server configured" if upstream is None else f"no upstream named {upstream!r}"
            raise AccessRefused(missing, 404)
        return Route(self, name, config)

    def tenant_of(self, identity: Identity | None) -> str | None:
        """The tenant a session of `identity` runs as: the context's, or the identity's own when
        tenants are not configured."""
        if self.name is not None:
            return self.name
        return identity.tenant if identity is not None else None


@dataclass(frozen=True, slots=True)
class Route:
    """Who serves a session: a tenant context and one of its upstreams."""

    context: TenantContext
    upstream_name: str
    upstream: UpstreamConfig

    @property
    def pipeline(self) -> Pipeline:
        return self.context.pipeline


class Tenancy:
    """Finds the context of a caller. With tenants configured, a caller whose tenant is not
    configured is refused (a mistyped claim must not fall back to someone's defaults); a caller
    with no tenant is served by the tenant named `default` if there is one."""

    def __init__(self, gateway: TenantContext, tenants: Mapping[str, TenantContext]) -> None:
        self.gateway = gateway
        self.tenants = dict(tenants)

    @property
    def contexts(self) -> list[TenantContext]:
        """The gateway-wide context (library `inspect()`) and every tenant's."""
        return [self.gateway, *self.tenants.values()]

    def context_for(self, identity: Identity | None) -> TenantContext:
        if not self.tenants:
            return self.gateway
        tenant = identity.tenant if identity is not None and identity.tenant else None
        context = self.tenants.get(tenant if tenant is not None else DEFAULT_TENANT)
        if context is None:
            why = f"tenant {tenant!r} is not served by this gateway" if tenant else "the caller has no tenant"
            raise AccessRefused(why, 403)
        return context

    def route(self, identity: Identity | None, upstream: str | None = None) -> Route:
        return self.context_for(identity).route(upstream)
