"""The access-policy vocabulary: who asks (`Subject`), what they ask (`Request`), the rules, the verdict.

These are plain, declarative types. `guardian.policy.loader` builds them from YAML and
checks them; `guardian.policy.engine` compiles them into fast predicates. Nothing here
evaluates anything, so a reviewer can read what a rule *says* without reading how it runs.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, Literal, Protocol, runtime_checkable

from mcp_types import JSONRPCRequest

from guardian.decision import Action
from guardian.events import Direction, Event, SessionInfo
from guardian.policy.jsonpath import JsonPath


class Effect(StrEnum):
    """What a matching rule does. `require-approval` is enforced as a deny until approvals exist."""

    ALLOW = "allow"
    DENY = "deny"
    REQUIRE_APPROVAL = "require-approval"


# --- who ------------------------------------------------------------------------------------------


@runtime_checkable
class SubjectLike(Protocol):
    """What the engine reads about the caller; the auth layer's identity type satisfies it as is."""

    @property
    def subject(self) -> str | None: ...
    @property
    def tenant(self) -> str | None: ...
    @property
    def scopes(self) -> Collection[str]: ...
    @property
    def roles(self) -> Collection[str]: ...
    @property
    def claims(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Subject:
    """The caller as policy sees it. `subject` None means unauthenticated."""

    subject: str | None = None
    tenant: str | None = None
    scopes: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    claims: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_session(cls, session: SessionInfo) -> Subject:
        """The fallback while sessions only carry identity and tenant strings."""
        identity = session.identity if isinstance(session.identity, str) else None
        tenant = session.tenant if isinstance(session.tenant, str) else None
        return cls(subject=identity, tenant=tenant)


ANONYMOUS: Final = Subject()


def subject_of(session: SessionInfo) -> SubjectLike:
    """The caller of a session: the authenticated `Identity` (`session.principal`) when auth
    attached one, used as is; else a `Subject` from the session's identity/tenant strings."""
    for attribute in ("principal", "identity"):
        value = getattr(session, attribute, None)
        if value is not None and not isinstance(value, str) and isinstance(value, SubjectLike):
            return value
    if session.identity is None and session.tenant is None:
        return ANONYMOUS
    return Subject.from_session(session)


# --- what -----------------------------------------------------------------------------------------

TargetKind = Literal["tool", "prompt", "resource"]

LIST_METHODS: Final[dict[str, tuple[str, str, TargetKind, str]]] = {
    "tools/list": ("tools", "name", "tool", "tools/call"),
    "prompts/list": ("prompts", "name", "prompt", "prompts/get"),
    "resources/list": ("resources", "uri", "resource", "resources/read"),
    "resources/templates/list": ("resourceTemplates", "uriTemplate", "resource", "resources/read"),
}
"""List method -> (result key, entry key naming the target, target kind, the method that uses it)."""

OPEN_METHODS: Final = frozenset({"initialize", "ping", "logging/setLevel", *LIST_METHODS})
"""Requests the policy's `default` does not apply to: protocol plumbing and listings (whose
entries are filtered one by one instead). Explicit rules still apply to them."""

_NAMED = {"tools/call": "tool", "prompts/get": "prompt"}
_BY_URI = frozenset({"resources/read", "resources/subscribe", "resources/unsubscribe"})


@dataclass(slots=True)
class Request:
    """One client request reduced to what rules can name. At most one of tool/prompt/resource is set.

    Treat it as immutable; it is not frozen only because it is built per message and a
    frozen dataclass costs several times as much to construct.
    """

    method: str
    tool: str | None = None
    prompt: str | None = None
    resource: str | None = None
    arguments: Any = None
    """`params.arguments` of a tool call or prompt get; None elsewhere."""
    upstream: str | None = None

    @property
    def target(self) -> tuple[TargetKind, str] | None:
        if self.tool is not None:
            return "tool", self.tool
        if self.prompt is not None:
            return "prompt", self.prompt
        if self.resource is not None:
            return "resource", self.resource
        return None

    @classmethod
    def from_event(cls, event: Event) -> Request | None:
        """The request an event asks policy about, or None when policy has no say on it.

        Policy decides client requests; responses, notifications and the server's own
        requests (sampling, elicitation, roots) are not access requests by the client.
        """
        message = event.message
        if event.direction is not Direction.CLIENT_TO_SERVER or not isinstance(message, JSONRPCRequest):
            return None
        return cls.from_params(message.method, message.params or {}, event.session.upstream)

    @classmethod
    def from_params(cls, method: str, params: Mapping[str, Any], upstream: str | None = None) -> Request:
        named = _NAMED.get(method)
        if named is not None:
            name = params.get("name")
            value = name if isinstance(name, str) else None
            arguments = params.get("arguments")
            if named == "tool":
                return cls(method, tool=value, arguments=arguments, upstream=upstream)
            return cls(method, prompt=value, arguments=arguments, upstream=upstream)
        if method in _BY_URI:
            uri = params.get("uri")
            return cls(method, resource=uri if isinstance(uri, str) else None, upstream=upstream)
        if method == "completion/complete":
            # Completing a prompt's or a resource template's argument reveals what it offers.
            ref = params.get("ref")
            if isinstance(ref, dict):
                if ref.get("type") == "ref/prompt" and isinstance(ref.get("name"), str):
                    return cls(method, prompt=ref["name"], upstream=upstream)
                if ref.get("type") == "ref/resource" and isinstance(ref.get("uri"), str):
                    return cls(method, resource=ref["uri"], upstream=upstream)
        return cls(method, upstream=upstream)


# --- the verdict ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verdict:
    """The effect for one request, the rule that decided it (None: the policy default), and why."""

    effect: Effect
    reason: str
    rule: str | None = None

    @property
    def allowed(self) -> bool:
        return self.effect is Effect.ALLOW


# --- rules ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Patterns:
    """Globs (`*`, `?`, `[abc]`), any of which may match; `${subject}` / `${tenant}` are filled in."""

    globs: tuple[str, ...]


SetMode = Literal["any", "all", "none"]


@dataclass(frozen=True, slots=True)
class SetTest:
    """Roles or scopes: the caller has any / all / none of `values` (each mode given is required)."""

    tests: tuple[tuple[SetMode, frozenset[str]], ...]


Operator = Literal["equals", "in", "glob", "regex", "range", "exists"]


@dataclass(frozen=True, slots=True)
class ValueTest:
    """A test on the value(s) a JSON path reaches in the arguments or claims.

    With a wildcard path the test holds when any reached value passes; `negate` flips the
    whole result. A path that reaches nothing fails every operator except `exists: false`.
    """

    path: JsonPath
    operator: Operator
    operand: Any
    """equals: a scalar; in: a list of scalars; glob: a glob or a list of globs; regex: a
    string; range: {gt, gte, lt, lte}; exists: a bool."""
    negate: bool = False
    as_path: bool = False
    """Normalise string values as file paths (`/a/../b` -> `/b`) before glob/regex/equals/in."""


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Local days of the week (0 = Monday) and minute ranges [start, end) that may wrap midnight."""

    days: frozenset[int] | None
    hours: tuple[tuple[int, int], ...] | None
    timezone: str


@dataclass(frozen=True, slots=True)
class FindingTest:
    """Matches a finding some detector reported on the same message (unset fields match anything)."""

    detector: Patterns | None = None
    kind: Patterns | None = None
    min_action: Action | None = None
    min_score: float | None = None


@dataclass(frozen=True, slots=True)
class Conditions:
    """Everything a rule's `when` may say; all given conditions must hold."""

    subject: Patterns | None = None
    authenticated: bool | None = None
    tenant: Patterns | None = None
    roles: SetTest | None = None
    scopes: SetTest | None = None
    claims: tuple[ValueTest, ...] = ()
    upstream: Patterns | None = None
    method: Patterns | None = None
    tool: Patterns | None = None
    prompt: Patterns | None = None
    resource: Patterns | None = None
    args: tuple[ValueTest, ...] = ()
    time: TimeWindow | None = None
    findings: tuple[FindingTest, ...] = ()


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    effect: Effect
    reason: str
    when: Conditions = Conditions()
    line: int | None = None
    """Where the rule starts in its file, for messages."""


@dataclass(frozen=True, slots=True)
class Policy:
    """A whole policy file: rules in order (first match wins) and the default effect."""

    rules: tuple[Rule, ...]
    default: Effect
    default_reason: str = "no policy rule allows this"
    name: str | None = None
    timezone: str = "UTC"
    source: str | None = None
