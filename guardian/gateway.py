"""`Guardian`: the gateway as a library object.

It owns the config, the inspection pipeline and the audit log, and runs sessions: a
session is a pair of downstream streams (from any server-side transport) relayed to a
fresh upstream connection. The CLI, the ASGI app and embedding code all go through here.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import anyio
from mcp.shared.message import SessionMessage
from mcp_types import (
    JSONRPCError,
    JSONRPCMessage,
    JSONRPCNotification,
    JSONRPCRequest,
    RequestId,
    jsonrpc_message_adapter,
)
from pydantic import BaseModel

from guardian import errors
from guardian.auth.identity import Identity
from guardian.catalog import ToolCatalog
from guardian.config import Config, SecurityConfig, UpstreamConfig
from guardian.decision import Action, Decision
from guardian.errors import UpstreamStartError
from guardian.events import Direction, Event, SessionInfo
from guardian.inspector import Inspector
from guardian.inspectors.arguments import ArgumentInjectionInspector
from guardian.inspectors.hidden_characters import HiddenCharactersInspector
from guardian.inspectors.injection import InjectionInspector
from guardian.inspectors.limits import LimitsInspector
from guardian.inspectors.pii import PiiInspector
from guardian.inspectors.poisoning import ToolPoisoningInspector
from guardian.inspectors.schema_validation import SchemaValidationInspector
from guardian.inspectors.secrets import SecretsInspector
from guardian.inspectors.tool_access import ToolAccessInspector
from guardian.observability.audit import AuditLog
from guardian.observability.metrics import Metrics
from guardian.pins import PinsInspector
from guardian.pipeline import InspectorSettings, Pipeline
from guardian.policy import AccessPolicyInspector
from guardian.ratelimit import RateLimitInspector
from guardian.relay import ReadStream, Relay, RelayOptions, WriteStream
from guardian.tenancy import AccessRefused, Route, Tenancy, TenantContext
from guardian.transports.upstream import http_headers, open_upstream

logger = logging.getLogger("guardian")


class Guardian:
    """A configured gateway: pipeline + upstream + session runner.

    Build it from a `Config`, a mapping, or a file path; add your own inspectors with
    `add_inspector`; then serve it (`asgi_app()`, `run_stdio()`) or call `inspect()` on
    single messages.
    """

    def __init__(self, config: Config | Mapping[str, Any] | str | os.PathLike[str] | None = None) -> None:
        if config is None:
            config = Config()
        elif isinstance(config, str | os.PathLike):
            config = Config.load(Path(config))
        elif not isinstance(config, Config):
            config = Config.from_dict(config)
        self.config = config
        self.audit = AuditLog(config.monitoring.audit_log, all_messages=config.monitoring.audit_all_messages)
        self.catalog = ToolCatalog()
        # `monitoring.metrics` (default on): None serves no /metrics and counts nothing.
        self.metrics = Metrics() if config.monitoring.metrics else None
        shared: dict[tuple[str, str], Inspector] = {}
        gateway = self._context(None, config.security, config.upstreams, _first(config), shared)
        tenants = {
            name: self._context(
                name, tenant.security, {u: config.upstreams[u] for u in tenant.upstreams}, tenant.default_upstream,
                shared,
            )
            for name, tenant in config.tenants.items()
        }
        self.tenancy = Tenancy(gateway, tenants)
        self.pipeline = gateway.pipeline
        """The gateway-wide pipeline (library `inspect()`; every session when no tenants are configured)."""

    def _context(
        self, name: str | None, security: SecurityConfig, upstreams: Mapping[str, UpstreamConfig],
        default_upstream: str | None, shared: dict[tuple[str, str], Inspector],
    ) -> TenantContext:
        """A tenant's context: its own pipeline over inspectors shared with every tenant whose
        options for them are the same (one PII engine, one rate limiter, one policy watcher)."""
        pipeline = Pipeline(timed=self.config.monitoring.audit_all_messages, metrics=self.metrics)
        context = TenantContext(name, security, pipeline, upstreams, default_upstream)
        try:
            inspectors = configured_inspectors(self.config, self.catalog, security, shared)
        except errors.ConfigError as exc:
            raise errors.ConfigError([f"$.tenants.{name}: {p}" for p in exc.problems]) if name else exc from None
        for inspector in inspectors:
            self._add(context, inspector)
            if isinstance(inspector, RateLimitInspector):
                context.rate_limit = inspector  # the session runner takes and frees its session slots
            elif isinstance(inspector, AccessPolicyInspector):
                context.access_policy = inspector  # background() runs its hot reload
        return context

    @asynccontextmanager
    async def background(self) -> AsyncIterator[None]:
        """Gateway-wide tasks (access-policy hot reload) for as long as the gateway serves."""
        async with anyio.create_task_group() as tg:
            watched: set[int] = set()
            for context in self.tenancy.contexts:
                policy = context.access_policy
                if policy is not None and id(policy) not in watched:
                    watched.add(id(policy))
                    tg.start_soon(policy.watch)
            warmed: set[int] = set()
            for inspector in (i for context in self.tenancy.contexts for i in context.pipeline.inspectors):
                # Build heavy detector state (PII engine, classifier) now, not on the first message.
                if callable(warm := getattr(inspector, "warm", None)) and id(inspector) not in warmed:
                    warmed.add(id(inspector))
                    tg.start_soon(partial(anyio.to_thread.run_sync, warm, abandon_on_cancel=True))
            yield
            tg.cancel_scope.cancel()

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Guardian:
        return cls(Config.load(path))

    def add_inspector(self, inspector: Inspector) -> None:
        """Register an inspector with every tenant's pipeline, applying its per-name settings
        from each one's config (and profile)."""
        for context in self.tenancy.contexts:
            self._add(context, inspector)

    @staticmethod
    def _add(context: TenantContext, inspector: Inspector) -> None:
        security = context.security
        override = security.inspectors.get(inspector.name)
        if override is not None and not override.enabled:
            return
        settings = InspectorSettings(
            timeout=override.timeout if override and override.timeout else security.plugin_timeout,
            fail_closed=(
                override.fail_closed if override and override.fail_closed is not None else security.fail_closed
            ),
            monitor=bool(override and override.monitor),
        )
        context.pipeline.add(inspector, settings)

    async def inspect(
        self,
        message: JSONRPCMessage | Mapping[str, Any] | str | bytes,
        direction: Direction | str = Direction.CLIENT_TO_SERVER,
        request: JSONRPCRequest | Mapping[str, Any] | None = None,
    ) -> Decision:
        """Plugin mode: the decision on one message, without relaying anything.

        `request` is the request a response answers, when inspecting a response.
        """
        parsed = _as_message(message)
        answered = _as_message(request) if request is not None else None
        if answered is not None and not isinstance(answered, JSONRPCRequest):
            raise TypeError("`request` must be a JSON-RPC request")
        event = Event(self._embedded_session, Direction(direction), parsed, request=answered)
        decision = await self.pipeline.run(event)
        if self.audit.wants(decision):
            self.audit.record(event, decision)
        return decision

    _embedded_session = SessionInfo(session_id="embedded", transport="library", upstream="-")

    def relay_options(self, transport: str, upstream: UpstreamConfig) -> RelayOptions:
        server = self.config.server
        return RelayOptions(
            max_in_flight=server.max_concurrent_requests,
            request_timeout=server.request_timeout,
            answer_invalid=transport in ("stdio", "sse"),
            relate_to_requests=transport == "streamable-http",
            upstream_headers=http_headers if upstream.transport == "streamable-http" else None,
        )

    def route(self, identity: Identity | None, upstream: str | None = None) -> Route:
        """Which tenant context and upstream serve `identity` (`upstream`: a route name, None for
        the tenant's default); raises `AccessRefused`."""
        return self.tenancy.route(identity, upstream)

    async def run_session(
        self,
        downstream: tuple[ReadStream, WriteStream],
        transport: str,
        session_id: str | None = None,
        identity: Identity | None = None,
        route: Route | None = None,
    ) -> str | None:
        """Relay one downstream session to a new upstream connection until either ends.

        `route` is where the transport already routed the caller (None: the caller's tenant's
        default upstream). Returns None when the session ended normally, or why it failed.
        """
        if route is None:
            try:
                route = self.route(identity)
            except AccessRefused as exc:
                await answer_first_request(downstream, partial(refused_error, exc))
                return f"session refused: {exc}"
        upstream = route.upstream
        session = SessionInfo(
            session_id=session_id or uuid.uuid4().hex, transport=transport, upstream=upstream.label,
            identity=identity.subject if identity else None, tenant=route.context.tenant_of(identity),
            principal=identity,
        )
        limiter = route.context.rate_limit
        if limiter is not None and (refused := await limiter.open_session(session)) is not None:
            decision = Decision(action=Action.BLOCK, findings=[refused], event_id=uuid.uuid4().hex[:16])
            self.audit.record(Event(session, Direction.CLIENT_TO_SERVER, _SESSION_OPEN), decision)
            await answer_first_request(downstream, decision.block_error)
            return f"session refused: {refused.message}"
        metrics = self.metrics
        if metrics is not None:
            metrics.session_opened(transport)
        try:
            ended = await self._relay_session(downstream, transport, session, route)
            if ended is not None and metrics is not None:
                metrics.upstream_failed()  # not started, failed, or hung up: the client did not end it
            return ended
        finally:
            if metrics is not None:
                metrics.session_closed(transport)
            if limiter is not None:
                with anyio.CancelScope(shield=True):
                    await limiter.close_session(session)

    async def _relay_session(
        self, downstream: tuple[ReadStream, WriteStream], transport: str, session: SessionInfo, route: Route
    ) -> str | None:
        upstream = route.upstream
        relay = Relay(route.pipeline, session, self.relay_options(transport, upstream), self.audit)
        label = "upstream server"
        try:
            async with open_upstream(upstream, self.config.security.limits.max_message_bytes) as server_streams:
                ended = await relay.run(downstream, server_streams, label)
        except UpstreamStartError as exc:
            cause = f"upstream unavailable: {exc}"
            logger.error("session %s: %s", session.session_id, cause)
            await answer_first_request(
                downstream, lambda id: errors.error_response(id, errors.UPSTREAM_UNAVAILABLE, cause)
            )
            return cause
        except Exception as exc:
            cause = f"{label} failed: {errors.describe(exc)}"
            logger.error("session %s: %s", session.session_id, cause)
            await relay.fail_pending(cause)
            return cause
        if ended is not None:
            logger.warning("session %s: %s", session.session_id, ended)
        return ended

    def asgi_app(self) -> Any:
        """The Starlette app: `/mcp` (and `/mcp/<upstream>`), `/sse` + `/messages/`, `/health`, `/metrics`."""
        from guardian.app import create_app

        return create_app(self)

    async def run_stdio(self, fds: tuple[int, int] | None = None) -> str | None:
        """Serve one session on stdin/stdout (the `guardian wrap` / `connect` mode).

        Returns None, or why the upstream failed.
        """
        from guardian.transports.stdio import stdio_downstream

        async with self.background(), stdio_downstream(self.config.security.limits.max_message_bytes, fds) as streams:
            return await self.run_session(streams, "stdio", session_id="stdio")


def check_inspectors(config: Config) -> None:
    """What `guardian check-config` adds to the schema: every enabled inspector's options
    (detectors, rate limits, pins, the access policy and its file), the gateway's and every
    tenant's, all problems in one `ConfigError`."""
    catalog = ToolCatalog()
    problems: list[str] = []
    for name, security in [(None, config.security), *((n, t.security) for n, t in config.tenants.items())]:
        try:
            configured_inspectors(config, catalog, security)
        except errors.ConfigError as exc:
            problems.extend(f"$.tenants.{name}: {p}" if name else p for p in exc.problems)
    if problems:
        raise errors.ConfigError(problems)


def configured_inspectors(
    config: Config, catalog: ToolCatalog, security: SecurityConfig | None = None,
    shared: dict[tuple[str, str], Inspector] | None = None,
) -> list[Inspector]:
    """The inspectors `security` (default: the gateway's) and its profile ask for, in the order
    they run: cheap gates (limits, rate limits, tool lists, pins) first, the detectors next
    (schema validation first: when it blocks, the offloaded and async detectors are skipped),
    the access policy last (it reviews their findings). Every bad option of every one is
    reported in one `ConfigError`.

    `shared` holds instances by (name, options) across calls, so tenants whose settings for
    an inspector are the same share one instance (and its state: buckets, caches, engines).

    Rate limits run only when configured (`security.inspectors.rate_limit`): a stdio wrap for
    one user has nothing to share, and a limit nobody chose would only get in the way.
    """
    security = security if security is not None else config.security
    shared = shared if shared is not None else {}
    problems: list[str] = []

    def once(name: str, key: Any, build: Callable[[], Inspector]) -> Inspector:
        index = (name, json.dumps(key, sort_keys=True, default=repr))
        if index not in shared:
            shared[index] = build()
        return shared[index]

    built: list[Inspector] = [once("limits", repr(security.limits), partial(LimitsInspector, security.limits))]

    def add(name: str, build: Callable[[Mapping[str, Any]], Inspector]) -> None:
        settings = security.inspectors.get(name)
        if settings is None or not settings.enabled:
            return
        options = _options_for(security, name, settings.options)
        try:
            built.append(once(name, options, partial(build, options)))
        except errors.ConfigError as exc:
            problems.extend(exc.problems)

    add(RateLimitInspector.name, RateLimitInspector.from_options)
    if security.tools_allow or security.tools_deny:
        lists = (security.tools_allow, security.tools_deny)
        built.append(once(ToolAccessInspector.name, lists, partial(ToolAccessInspector, *lists)))
    add(PinsInspector.name, PinsInspector.from_options)
    built.append(catalog)
    add(SchemaValidationInspector.name, partial(SchemaValidationInspector.from_options, catalog=catalog))
    add(HiddenCharactersInspector.name, HiddenCharactersInspector.from_options)
    add(SecretsInspector.name, SecretsInspector.from_options)
    add(PiiInspector.name, PiiInspector.from_options)
    add(InjectionInspector.name, InjectionInspector.from_options)
    add(ToolPoisoningInspector.name, ToolPoisoningInspector.from_options)
    add(ArgumentInjectionInspector.name, partial(ArgumentInjectionInspector.from_options, catalog=catalog))
    add(AccessPolicyInspector.name, AccessPolicyInspector.from_options)
    if problems:
        raise errors.ConfigError(problems)
    return built


def _options_for(security: SecurityConfig, name: str, options: Mapping[str, Any]) -> Mapping[str, Any]:
    """An inspector's options, with what only the gateway knows filled in.

    The rate limiter fails closed or open like the rest of the gateway unless told otherwise.
    Cross-process shadowing is opt-in (`tool_poisoning.pin_store: auto`): it then reads other
    wrapped servers' tool names from the store the pins inspector uses. Off by default because
    benign servers share common names (`search`, `fetch`) and one server reached two ways (a
    command and a URL) has two upstream keys: both would be flagged.
    """
    if name == RateLimitInspector.name:
        block = security.inspectors[name]
        fail_closed = block.fail_closed if block.fail_closed is not None else security.fail_closed
        return {**options, "fail_closed": fail_closed}
    if name != ToolPoisoningInspector.name:
        return options
    wanted = options.get("pin_store", False)
    if wanted != "auto":
        return {**options, "pin_store": wanted}
    pins = security.inspectors.get(PinsInspector.name)
    store = (pins.options.get("store") or "auto") if pins is not None and pins.enabled else False
    return {**options, "pin_store": store}


def refused_error(refused: AccessRefused, request_id: RequestId) -> JSONRPCError:
    return errors.error_response(request_id, refused.code, str(refused))


def _first(config: Config) -> str | None:
    """The gateway-wide default upstream: the main one, else the first named."""
    return config.main_upstream_name or next(iter(config.upstreams), None)


async def answer_first_request(
    downstream: tuple[ReadStream, WriteStream], answer: Callable[[RequestId], JSONRPCError]
) -> None:
    """For a session that cannot be served (no upstream, a session limit), answer the client's
    first request with why, then end the session.

    Notifications are not answered (they can't be); the wait is bounded so a client that
    sends nothing does not keep a dead session open.
    """
    read, write = downstream
    with anyio.move_on_after(30):
        async for item in read:
            message = item.message if isinstance(item, SessionMessage) else None
            if isinstance(message, JSONRPCRequest):
                await write.send(SessionMessage(answer(message.id)))
                return


_SESSION_OPEN = JSONRPCNotification(jsonrpc="2.0", method="guardian/session_open")
"""Stands for a refused session in its audit record (no client message was relayed yet)."""


def _as_message(value: JSONRPCMessage | Mapping[str, Any] | str | bytes) -> JSONRPCMessage:
    if isinstance(value, BaseModel):
        return value
    if isinstance(value, str | bytes):
        return jsonrpc_message_adapter.validate_json(value, by_name=False)
    return jsonrpc_message_adapter.validate_python(dict(value), by_name=False)
