"""Compiled policy evaluation: first match wins, over an index by method and target.

`CompiledPolicy` turns a `Policy` into predicates once, at load, and files each rule
under the most selective key its conditions allow: its literal (method, target) names,
its literal target names, the literal start of its target globs, its literal methods,
or nothing. A request gathers only the buckets that could name it, in file order.

Two bounded caches then leave the per-message cost to the checks that really vary per
message (arguments, claims, the clock, findings): (method, target) -> the rules that
could apply, and (method, target, caller) -> those whose identity, upstream and target
conditions hold for that caller. At 1,000 rules a decision takes about a microsecond
once a caller has used a target, and tens of microseconds the first time
(`bench/bench_policy.py`).

Resource URIs are matched in canonical form (percent-decoded, dot segments removed), so
`file:///public/../secret` is judged as the `file:///secret` the server will read.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from heapq import merge
from typing import Any, Final
from urllib.parse import unquote
from zoneinfo import ZoneInfo

from guardian.decision import Finding
from guardian.events import Event
from guardian.policy.jsonpath import JsonPath
from guardian.policy.model import (
    LIST_METHODS,
    OPEN_METHODS,
    Effect,
    FindingTest,
    Patterns,
    Policy,
    Request,
    Rule,
    SetTest,
    SubjectLike,
    TargetKind,
    TimeWindow,
    ValueTest,
    Verdict,
    subject_of,
)

Target = tuple[TargetKind, str] | None
_CACHE_SIZE: Final = 8192
_CACHE_MAX_KEY: Final = 512
"""Targets longer than this (odd URIs) are not cached: an attacker cannot bloat memory."""
_OPEN = Verdict(Effect.ALLOW, "protocol method: the policy default does not apply")

VARIABLES: Final = ("subject", "tenant")
_VARIABLE = re.compile(r"\$\{([^}]*)\}")


# --- globs ----------------------------------------------------------------------------------------


def glob_to_regex(glob: str) -> str:
    """A glob as regex source: `*` any run (slashes too), `?` one character, `[a-z]` / `[!a-z]` classes.

    `${subject}` and `${tenant}` become NUL-delimited markers that `_filled` replaces with
    the caller's escaped value at evaluation time.
    """
    out: list[str] = []
    at = 0
    while at < len(glob):
        char = glob[at]
        if char == "$" and (match := _VARIABLE.match(glob, at)) is not None:
            out.append(f"\x00{match.group(1)}\x00")
            at = match.end()
            continue
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "[" and (end := glob.find("]", at + 2)) != -1 and glob[at + 1 : end] != "!":
            body = glob[at + 1 : end]
            negated = body.startswith("!")
            body = body[1:] if negated else body
            escaped = "".join("\\" + c if c in "\\^[&~|" else c for c in body)
            out.append("[" + ("^" if negated else "") + escaped + "]")
            at = end + 1
            continue
        else:
            out.append(re.escape(char))
        at += 1
    return "".join(out)


def template_to_regex(text: str) -> str:
    """Exact text with `${subject}` / `${tenant}` markers (for `equals: "${subject}"`)."""
    out: list[str] = []
    at = 0
    for match in _VARIABLE.finditer(text):
        out.append(re.escape(text[at : match.start()]))
        out.append(f"\x00{match.group(1)}\x00")
        at = match.end()
    out.append(re.escape(text[at:]))
    return "".join(out)


def is_literal(glob: str) -> bool:
    return not any(c in glob for c in "*?[") and "${" not in glob


def variables_in(text: str) -> list[str]:
    return _VARIABLE.findall(text)


@lru_cache(maxsize=4096)
def _filled(source: str, subject: str | None, tenant: str | None) -> re.Pattern[str] | None:
    values = {"subject": subject, "tenant": tenant}
    parts = source.split("\x00")
    out: list[str] = []
    for index, part in enumerate(parts):
        if index % 2 == 0:
            out.append(part)
            continue
        value = values.get(part)
        if not value:  # a caller without a tenant matches no `${tenant}` pattern
            return None
        out.append(re.escape(value))
    return re.compile("".join(out), re.DOTALL)


class Matcher:
    """A compiled `Patterns`: fixed globs in one regex, templated ones filled per caller."""

    __slots__ = ("literals", "prefixes", "regex", "templates")

    def __init__(self, patterns: Patterns) -> None:
        fixed = [g for g in patterns.globs if "${" not in g]
        self.prefixes = tuple(re.split(r"[*?\[]|\$\{", g, maxsplit=1)[0] for g in patterns.globs)
        """The literal text each glob starts with ("" when it starts with a wildcard)."""
        self.templates = tuple(glob_to_regex(g) for g in patterns.globs if "${" in g)
        self.regex = re.compile("|".join(f"(?:{glob_to_regex(g)})" for g in fixed), re.DOTALL) if fixed else None
        self.literals = frozenset(fixed) if fixed and not self.templates and all(map(is_literal, fixed)) else None

    @property
    def templated(self) -> bool:
        return bool(self.templates)

    def match(self, value: str, subject: SubjectLike | None = None) -> bool:
        if self.literals is not None:
            return value in self.literals
        if self.regex is not None and self.regex.fullmatch(value):
            return True
        for source in self.templates:
            if subject is None:
                continue
            regex = _filled(source, subject.subject, subject.tenant)
            if regex is not None and regex.fullmatch(value):
                return True
        return False


# --- canonical forms ------------------------------------------------------------------------------

_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*:(?://[^/?#]*)?)?(.*)$", re.DOTALL)


def canonical_uri(uri: str) -> str | None:
    """The URI as a server will resolve it: scheme lower-cased, percent-decoded, `\\` as `/`,
    `//`, `.` and `..` resolved.

    None when a `..` would climb above the URI's root (`db://acme/../globex/x`): servers
    disagree on what that names (RFC 3986 stops at the authority, string-joining code does
    not), so no rule can be trusted to judge it and the engine refuses it.
    """
    decoded = unquote(uri).replace("\\", "/") if "%" in uri or "\\" in uri else uri
    match = _URI.match(decoded)
    if match is None:  # pragma: no cover - the pattern matches every string
        return decoded
    prefix, rest = match.groups()
    if prefix:
        scheme, colon, authority = prefix.partition(":")
        prefix = scheme.lower() + colon + authority  # schemes are case-insensitive: FILE:// is file://
    if "/." not in rest and "//" not in rest and not rest.startswith("."):
        return (prefix or "") + rest
    resolved, climbed = _resolve_dots(rest)
    return None if climbed else (prefix or "") + resolved


def normalize_path(path: str) -> str:
    """A file path as a server resolves it: percent-decoded once, `\\` as `/`, dots resolved
    (`/a/../../etc` is `/etc`, as the operating system reads it)."""
    if "%" in path or "\\" in path:
        path = unquote(path).replace("\\", "/")
    if "/." not in path and "//" not in path and not path.startswith("."):
        return path
    return _resolve_dots(path)[0]


def _resolve_dots(path: str) -> tuple[str, bool]:
    """(`path` with empty, `.` and `..` segments resolved, whether a `..` climbed above its start)."""
    absolute = path.startswith("/")
    parts = path.split("/")
    out: list[str] = []
    climbed = False
    for segment in parts:
        if segment in ("", "."):
            continue
        if segment == "..":
            if out and out[-1] != "..":
                out.pop()
            else:
                climbed = True
                if not absolute:
                    out.append("..")
            continue
        out.append(segment)
    resolved = ("/" if absolute else "") + "/".join(out)
    if out and (path.endswith("/") or parts[-1] in (".", "..")):
        resolved += "/"
    return resolved or ("/" if absolute else "."), climbed


# --- checks ---------------------------------------------------------------------------------------


class _Context:
    """What one evaluation knows; the clock is read only if a time condition asks."""

    __slots__ = ("_now", "findings", "request", "subject", "target")

    def __init__(
        self,
        subject: SubjectLike,
        request: Request,
        target: Target,
        findings: Sequence[Finding],
        now: datetime | None,
    ) -> None:
        self.subject = subject
        self.request = request
        self.target = target
        """The request's target, resource URIs in canonical form."""
        self.findings = findings
        self._now = now

    def now_in(self, zone: tzinfo) -> datetime:
        if self._now is None:
            self._now = datetime.now(UTC)
        elif self._now.tzinfo is None:
            self._now = self._now.replace(tzinfo=UTC)
        return self._now.astimezone(zone)


Check = Callable[[_Context], bool]


def _patterns_check(patterns: Patterns, read: Callable[[_Context], str | None]) -> Check:
    matcher = Matcher(patterns)

    def check(ctx: _Context) -> bool:
        value = read(ctx)
        return value is not None and matcher.match(value, ctx.subject)

    return check


def _set_check(test: SetTest, read: Callable[[_Context], Any]) -> Check:
    def check(ctx: _Context) -> bool:
        have = read(ctx)
        for mode, values in test.tests:
            if mode == "any" and values.isdisjoint(have):
                return False
            if mode == "all" and not values.issubset(have):
                return False
            if mode == "none" and not values.isdisjoint(have):
                return False
        return True

    return check


_NUMBER = re.compile(r"\s*[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?\s*")


def _number(value: Any) -> float | None:
    """JSON numbers, and numeric strings (a server may coerce "15000" to 15000; so do we)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and len(value) < 64 and _NUMBER.fullmatch(value):
        number = float(value)
        return number if number == number and abs(number) != float("inf") else None
    return None


def _same(value: Any, operand: Any) -> bool:
    """JSON equality of scalars: true is not 1, "1" is not 1."""
    if isinstance(operand, bool) or operand is None:
        return value is operand
    if isinstance(operand, int | float):
        return not isinstance(value, bool) and isinstance(value, int | float) and value == operand
    return isinstance(value, str) and value == operand


ValueOp = Callable[[Any, SubjectLike], bool]


def _value_op(test: ValueTest) -> ValueOp:
    prepare: Callable[[str], str] = normalize_path if test.as_path else (lambda text: text)
    operand = test.operand
    if test.operator == "equals" and isinstance(operand, str) and "${" in operand:
        source = template_to_regex(operand)
        return lambda value, subject: isinstance(value, str) and _templated(source, prepare(value), subject)
    if test.operator in ("equals", "in"):
        choices = (operand,) if test.operator == "equals" else tuple(operand)
        if test.as_path:
            return lambda value, _s: isinstance(value, str) and prepare(value) in choices
        return lambda value, _s: any(_same(value, choice) for choice in choices)
    if test.operator == "glob":
        matcher = Matcher(Patterns((operand,) if isinstance(operand, str) else tuple(operand)))
        return lambda value, subject: isinstance(value, str) and matcher.match(prepare(value), subject)
    if test.operator == "regex":
        regex = re.compile(operand)
        return lambda value, _s: isinstance(value, str) and regex.search(prepare(value)) is not None
    if test.operator == "range":
        return _range_op(operand)
    raise ValueError(f"unknown operator {test.operator!r}")  # pragma: no cover - the loader rejects it


def _templated(source: str, value: str, subject: SubjectLike) -> bool:
    regex = _filled(source, subject.subject, subject.tenant)
    return regex is not None and regex.fullmatch(value) is not None


def _range_op(bounds: Mapping[str, float]) -> ValueOp:
    gt, gte, lt, lte = (bounds.get(k) for k in ("gt", "gte", "lt", "lte"))

    def op(value: Any, _subject: SubjectLike) -> bool:
        number = _number(value)
        if number is None:
            return False
        return (
            (gt is None or number > gt)
            and (gte is None or number >= gte)
            and (lt is None or number < lt)
            and (lte is None or number <= lte)
        )

    return op


def _value_check(test: ValueTest, root: Callable[[_Context], Any]) -> Check:
    path: JsonPath = test.path
    negate = test.negate
    if test.operator == "exists":
        wanted = bool(test.operand)
        if path.has_wildcard:
            return lambda ctx: (bool(path.select(root(ctx))) == wanted) != negate
        return lambda ctx: (path.get(root(ctx))[0] == wanted) != negate
    op = _value_op(test)
    if path.has_wildcard:
        # Any reached value passes (or, negated, any fails); reaching nothing fails the test.
        def each(ctx: _Context) -> bool:
            values = path.select(root(ctx))
            if not values:
                return negate
            return any(op(v, ctx.subject) != negate for v in values)

        return each

    def check(ctx: _Context) -> bool:
        found, value = path.get(root(ctx))
        return (found and op(value, ctx.subject)) != negate

    return check


def _time_check(window: TimeWindow) -> Check:
    zone: tzinfo = UTC if window.timezone.upper() == "UTC" else ZoneInfo(window.timezone)
    days, hours = window.days, window.hours

    def check(ctx: _Context) -> bool:
        local = ctx.now_in(zone)
        if days is not None and local.weekday() not in days:
            return False
        if hours is None:
            return True
        minute = local.hour * 60 + local.minute
        return any(
            (start <= minute < end) if start < end else (minute >= start or minute < end) for start, end in hours
        )

    return check


def _finding_check(tests: tuple[FindingTest, ...]) -> Check:
    compiled = [
        (
            Matcher(t.detector) if t.detector else None,
            Matcher(t.kind) if t.kind else None,
            t.min_action,
            t.min_score,
        )
        for t in tests
    ]

    def check(ctx: _Context) -> bool:
        for finding in ctx.findings:
            for detector, kind, min_action, min_score in compiled:
                if (
                    (detector is None or detector.match(finding.detector))
                    and (kind is None or kind.match(finding.kind))
                    and (min_action is None or finding.action >= min_action)
                    and (min_score is None or finding.score >= min_score)
                ):
                    return True
        return False

    return check


def _arguments(ctx: _Context) -> Any:
    return ctx.request.arguments


def _claims(ctx: _Context) -> Any:
    return ctx.subject.claims


# --- rules ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Compiled:
    position: int
    verdict: Verdict
    method: Matcher | None
    target_kind: TargetKind | None
    target: Matcher | None
    """Only when its patterns are fixed; templated targets are in `caller`."""
    prefixes: tuple[str, ...]
    """The literal start of each target glob, templated or not (for the prefix index)."""
    caller: tuple[Check, ...]
    """Checks on the caller's identity, the upstream and the target: fixed for a session and a
    target, so their outcome is cached (`CompiledPolicy._for_caller`)."""
    live: tuple[Check, ...]
    """Checks that vary per message but are known when filtering a listing: claims, the clock."""
    unknown: tuple[Check, ...]
    """Checks on the arguments and the findings, unknown when filtering a listing."""

    def fits(self, method: str, target: Target) -> bool:
        """The static part: could this rule apply to (method, target) at all?"""
        if self.method is not None and not self.method.match(method):
            return False
        if self.target_kind is None:
            return True
        if target is None or target[0] != self.target_kind:
            return False
        return self.target is None or self.target.match(target[1])

    def matches(self, ctx: _Context) -> bool:
        """The per-message checks (`caller` already held for this caller and target)."""
        for check in self.live:
            if not check(ctx):
                return False
        for check in self.unknown:  # noqa: SIM110 - a loop keeps the hot path free of generators
            if not check(ctx):
                return False
        return True


def _compile_rule(position: int, rule: Rule) -> _Compiled:
    when = rule.when
    caller: list[Check] = []
    # Cheapest first: flags and strings about the caller, then sets, then target templates.
    if when.authenticated is not None:
        flag = when.authenticated
        caller.append(lambda ctx: (ctx.subject.subject is not None) == flag)
    if when.subject is not None:
        caller.append(_patterns_check(when.subject, lambda ctx: ctx.subject.subject))
    if when.tenant is not None:
        caller.append(_patterns_check(when.tenant, lambda ctx: ctx.subject.tenant))
    if when.upstream is not None:
        caller.append(_patterns_check(when.upstream, lambda ctx: ctx.request.upstream))
    if when.roles is not None:
        caller.append(_set_check(when.roles, lambda ctx: ctx.subject.roles))
    if when.scopes is not None:
        caller.append(_set_check(when.scopes, lambda ctx: ctx.subject.scopes))
    target_kind: TargetKind | None = None
    target: Matcher | None = None
    prefixes: tuple[str, ...] = ()
    for kind, patterns in (("tool", when.tool), ("prompt", when.prompt), ("resource", when.resource)):
        if patterns is None:
            continue
        target_kind = kind  # type: ignore[assignment]  # the loop literals are TargetKind values
        matcher = Matcher(patterns)
        prefixes = matcher.prefixes
        if matcher.templated:
            caller.append(_target_check(matcher))
        else:
            target = matcher
    live: list[Check] = [_value_check(test, _claims) for test in when.claims]
    if when.time is not None:
        live.append(_time_check(when.time))
    unknown: list[Check] = [_value_check(test, _arguments) for test in when.args]
    if when.findings:
        unknown.append(_finding_check(when.findings))
    return _Compiled(
        position=position,
        verdict=Verdict(rule.effect, rule.reason, rule.id),
        method=Matcher(when.method) if when.method is not None else None,
        target_kind=target_kind,
        target=target,
        prefixes=prefixes,
        caller=tuple(caller),
        live=tuple(live),
        unknown=tuple(unknown),
    )


def _target_check(matcher: Matcher) -> Check:
    def check(ctx: _Context) -> bool:
        target = ctx.target
        return target is not None and matcher.match(target[1], ctx.subject)

    return check


_AMBIGUOUS: Final[tuple[TargetKind, str]] = ("resource", "\x00ambiguous")
_REFUSED = Verdict(Effect.DENY, "resource URI climbs above its root with '..'", "(invalid-uri)")


def _target_of(request: Request) -> Target:
    target = request.target
    return _canonical(*target) if target is not None else None


def _canonical(kind: TargetKind, name: str) -> tuple[TargetKind, str]:
    """The target as rules see it: resource URIs canonical, or `_AMBIGUOUS`."""
    if kind != "resource":
        return kind, name
    canonical = canonical_uri(name)
    return ("resource", canonical) if canonical is not None else _AMBIGUOUS


Caller = tuple[str | None, str | None, frozenset[str], frozenset[str], str | None]
"""What `caller` checks read: subject, tenant, roles, scopes, upstream."""


def _caller(subject: SubjectLike, upstream: str | None) -> Caller:
    roles, scopes = subject.roles, subject.scopes
    return (
        subject.subject,
        subject.tenant,
        roles if isinstance(roles, frozenset) else frozenset(roles),
        scopes if isinstance(scopes, frozenset) else frozenset(scopes),
        upstream,
    )


def _cacheable(target: Target) -> bool:
    return target is None or len(target[1]) <= _CACHE_MAX_KEY


# --- the compiled policy --------------------------------------------------------------------------

Candidates = tuple[_Compiled, ...]


class CompiledPolicy:
    """A policy ready to evaluate. Immutable once built; reloads build a new one and swap it.

    Two caches keep the per-message work to the checks that really vary per message:
    (method, target) -> the rules that could apply (from the index), and (method, target,
    caller) -> those whose identity, upstream and target conditions hold for that caller.
    Both are bounded and simply cleared when full.
    """

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._rules = [_compile_rule(position, rule) for position, rule in enumerate(policy.rules)]
        self._default = Verdict(policy.default, policy.default_reason, None)
        self._exact: dict[tuple[str, TargetKind, str], list[_Compiled]] = {}
        self._by_method: dict[str, list[_Compiled]] = {}
        self._by_target: dict[tuple[TargetKind, str], list[_Compiled]] = {}
        self._by_kind: dict[TargetKind | None, list[_Compiled]] = {}
        self._by_prefix: dict[tuple[TargetKind, str], list[_Compiled]] = {}
        for rule in self._rules:
            self._index(rule)
        self._longest_prefix = max((len(prefix) for _, prefix in self._by_prefix), default=0)
        self._static: dict[tuple[str, Target], Candidates] = {}
        self._callers: dict[tuple[str, Target, Caller], Candidates] = {}
        self._listings: dict[tuple[str, Target, Caller], Verdict] = {}

    def _index(self, rule: _Compiled) -> None:
        """File rules under the most selective key their conditions allow (see `_candidates`)."""
        methods = rule.method.literals if rule.method is not None else None
        kind = rule.target_kind
        target = rule.target
        if target is not None and kind is not None and target.literals is not None:
            for name in target.literals:
                if methods is not None:
                    for method in methods:
                        self._exact.setdefault((method, kind, name), []).append(rule)
                else:
                    self._by_target.setdefault((kind, name), []).append(rule)
        elif kind is not None and rule.prefixes and all(rule.prefixes):
            for prefix in set(rule.prefixes):
                self._by_prefix.setdefault((kind, prefix), []).append(rule)
        elif methods is not None:
            for method in methods:
                self._by_method.setdefault(method, []).append(rule)
        else:  # a glob starting with a wildcard, or no method/target condition at all
            self._by_kind.setdefault(kind, []).append(rule)

    @property
    def rule_count(self) -> int:
        return len(self._rules)

    def _candidates(self, method: str, target: Target) -> Candidates:
        """In file order: with no target, the rules without a target condition that fit `method`;
        with one, the rules with a target condition that fit (method, target)."""
        key = (method, target)
        hit = self._static.get(key)
        if hit is not None:
            return hit
        pool = list(self._by_kind.get(None, ()))
        pool.extend(self._by_method.get(method, ()))
        if target is not None:
            kind, name = target
            pool.extend(self._by_kind.get(kind, ()))
            pool.extend(self._exact.get((method, kind, name), ()))
            pool.extend(self._by_target.get(target, ()))
            for end in range(1, min(len(name), self._longest_prefix) + 1):
                pool.extend(self._by_prefix.get((kind, name[:end]), ()))
        unique = {rule.position: rule for rule in pool}  # a rule with two globs may sit in two buckets
        targeted = target is not None
        found = tuple(
            rule
            for _, rule in sorted(unique.items())
            if (rule.target_kind is not None) == targeted and rule.fits(method, target)
        )
        if _cacheable(target):
            if len(self._static) >= _CACHE_SIZE:
                self._static.clear()
            self._static[key] = found
        return found

    def _for_caller(self, method: str, target: Target, caller: Caller, ctx: _Context) -> Candidates:
        """The rules that could apply whose identity, upstream and target conditions hold for this caller.

        Rules without a target condition are filtered once per (method, caller), so a request
        naming a target never seen before only pays for the rules that name targets.
        """
        key = (method, target, caller)
        hit = self._callers.get(key)
        if hit is not None:
            return hit
        found = tuple(rule for rule in self._candidates(method, target) if all(check(ctx) for check in rule.caller))
        if target is not None:
            general = self._for_caller(method, None, caller, ctx)
            if general:
                found = tuple(merge(general, found, key=lambda rule: rule.position))
        if _cacheable(target):
            if len(self._callers) >= _CACHE_SIZE:
                self._callers.clear()
            self._callers[key] = found
        return found

    def evaluate(
        self,
        subject: SubjectLike,
        request: Request,
        findings: Sequence[Finding] = (),
        now: datetime | None = None,
    ) -> Verdict:
        """The first rule, in file order, whose every condition holds decides; else the default."""
        target = _target_of(request)
        if target is _AMBIGUOUS:
            return _REFUSED
        ctx = _Context(subject, request, target, findings, now)
        for rule in self._for_caller(request.method, target, _caller(subject, request.upstream), ctx):
            if rule.matches(ctx):
                return rule.verdict
        return _OPEN if request.method in OPEN_METHODS else self._default

    def listing_verdict(self, subject: SubjectLike, request: Request, now: datetime | None = None) -> Verdict:
        """Could `subject` be allowed `request` with *some* arguments? (For filtering listings.)

        A rule whose argument or finding conditions can't be judged yet is a "maybe": a
        maybe-allow means the entry stays visible (the call itself is still checked); a
        maybe-deny is passed over, since the call might not meet it.
        """
        return self._listing_verdict(subject, _caller(subject, request.upstream), request, _target_of(request), now)

    def _listing_verdict(
        self, subject: SubjectLike, caller: Caller, request: Request, target: Target, now: datetime | None
    ) -> Verdict:
        if target is _AMBIGUOUS:
            return _REFUSED
        key = (request.method, target, caller)
        hit = self._listings.get(key)
        if hit is not None:
            return hit
        ctx = _Context(subject, request, target, (), now)
        candidates = self._for_caller(request.method, target, caller, ctx)
        verdict = self._default
        for rule in candidates:
            if not all(check(ctx) for check in rule.live):
                continue
            if rule.unknown and rule.verdict.effect is Effect.DENY:
                continue
            verdict = rule.verdict
            break
        # Claims and the clock vary per message: cache only verdicts that depend on neither.
        if not any(rule.live for rule in candidates) and _cacheable(target):
            if len(self._listings) >= _CACHE_SIZE:
                self._listings.clear()
            self._listings[key] = verdict
        return verdict

    def evaluate_event(
        self,
        event: Event,
        findings: Sequence[Finding] = (),
        subject: SubjectLike | None = None,
        now: datetime | None = None,
    ) -> Verdict | None:
        """The verdict on a client request event, or None when policy has no say on the event."""
        request = Request.from_event(event)
        if request is None:
            return None
        return self.evaluate(subject if subject is not None else subject_of(event.session), request, findings, now)

    def hidden_entries(
        self, event: Event, subject: SubjectLike | None = None, now: datetime | None = None
    ) -> list[tuple[str, int, Verdict]]:
        """For a listing result: (result key, index, verdict) of each entry the caller may not use."""
        method = event.method
        result = event.result
        spec = LIST_METHODS.get(method) if method else None
        if spec is None or result is None:
            return []
        key, name_key, kind, use_method = spec
        entries = result.get(key)
        if not isinstance(entries, list):
            return []
        who = subject if subject is not None else subject_of(event.session)
        upstream = event.session.upstream
        caller = _caller(who, upstream)
        hidden: list[tuple[str, int, Verdict]] = []
        for index, entry in enumerate(entries):
            name = entry.get(name_key) if isinstance(entry, dict) else None
            if not isinstance(name, str):
                hidden.append((key, index, Verdict(Effect.DENY, "listing entry without a name", None)))
                continue
            target = _canonical(kind, name)
            verdict = self._listings.get((use_method, target, caller))
            if verdict is None:
                request = Request(
                    use_method,
                    tool=name if kind == "tool" else None,
                    prompt=name if kind == "prompt" else None,
                    resource=name if kind == "resource" else None,
                    upstream=upstream,
                )
                verdict = self._listing_verdict(who, caller, request, target, now)
            if verdict.effect is Effect.DENY:
                hidden.append((key, index, verdict))
        return hidden


def compile_policy(policy: Policy) -> CompiledPolicy:
    return CompiledPolicy(policy)
