"""`guardian policy test POLICY CASES`: table-driven checks that a policy does what its author meant.

A cases file is YAML; each case is a caller, a message and the expected effect::

    at: "2026-03-02T10:00:00+01:00"      # optional: the clock for every case (else now)
    cases:
      - name: viewers cannot delete
        identity: {subject: bob, tenant: acme, roles: [viewer], scopes: [], claims: {}}
        tool: delete_file                # or prompt: NAME, resource: URI,
        args: {path: /tmp/x}             #   or message: {method: ..., params: {...}}
        expect: deny                     # allow | deny | require-approval
        rule: viewers-read-only          # optional: the rule that must decide ("default" = none)
      - name: viewers see only read tools
        identity: {subject: bob, roles: [viewer]}
        list: {tools: [read_file, delete_file]}    # or prompts / resources / resourceTemplates
        visible: [read_file]
      - name: a secret in the arguments blocks the call
        identity: {subject: alice, roles: [dev]}
        tool: http_post
        findings: [{detector: secrets, kind: aws_access_key, action: redact}]
        expect: deny

Optional per case: `at` (ISO time), `upstream` (the upstream's name). Cases run through
the same inspector the gateway uses (`AccessPolicyInspector.evaluate` and `.hide`), on
real JSON-RPC messages, so a passing case is a statement about production behaviour.

Exit codes: 0 every case passed, 1 some failed, 2 the policy or the cases file is invalid.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mcp_types import JSONRPCRequest, jsonrpc_message_adapter

from guardian.decision import Action, Finding
from guardian.events import Direction, Event, SessionInfo
from guardian.policy.engine import CompiledPolicy
from guardian.policy.inspector import AccessPolicyInspector
from guardian.policy.loader import PolicyError, Where, read_yaml
from guardian.policy.model import LIST_METHODS, Effect, Subject, SubjectLike

_EFFECTS = {effect.value for effect in Effect}
_ACTIONS = {"warn": Action.WARN, "redact": Action.REDACT, "block": Action.BLOCK}
_CASE_KEYS = frozenset(
    {"name", "identity", "upstream", "at", "findings", "message", "tool", "prompt", "resource", "args", "list"}
    | {"expect", "rule", "visible"}
)
_IDENTITY_KEYS = frozenset({"subject", "tenant", "scopes", "roles", "claims"})
_LIST_KEYS = {spec[0]: (method, spec[1]) for method, spec in LIST_METHODS.items()}


class CasesError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    line: int | None
    subject: Subject
    upstream: str
    at: datetime | None
    findings: tuple[Finding, ...]
    request: dict[str, Any]
    """The JSON-RPC request (method, params)."""
    listing: tuple[str, list[Any]] | None
    """(result key, entries) for a listing case."""
    expect: Effect | None
    rule: str | None
    visible: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class CaseResult:
    case: Case
    failures: tuple[str, ...]
    summary: str

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass(slots=True)
class TestReport:
    policy: str
    cases_file: str
    results: list[CaseResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Why the run could not happen at all (an invalid policy or cases file)."""

    @property
    def failed(self) -> list[CaseResult]:
        return [r for r in self.results if not r.passed]

    @property
    def exit_code(self) -> int:
        if self.problems:
            return 2
        return 1 if self.failed else 0

    def lines(self, verbose: bool = False) -> list[str]:
        if self.problems:
            return [*self.problems, f"{self.policy}: not tested"]
        out: list[str] = []
        for result in self.results:
            where = f"{self.cases_file}:{result.case.line}" if result.case.line else self.cases_file
            if not result.passed:
                out.append(f"FAIL {result.case.name} ({where}): {'; '.join(result.failures)}")
            elif verbose:
                out.append(f"ok   {result.case.name}: {result.summary}")
        failed = len(self.failed)
        out.append(f"{self.policy}: {len(self.results)} cases, {len(self.results) - failed} passed, {failed} failed")
        return out

    def text(self, verbose: bool = False) -> str:
        return "\n".join(self.lines(verbose))


# --- reading cases --------------------------------------------------------------------------------


def load_cases(path: str | Path) -> list[Case]:
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CasesError([f"{source}: cannot read: {getattr(exc, 'strerror', None) or exc}"]) from None
    try:
        data, lines = read_yaml(text, source, "a cases file is a mapping with a `cases` list")
    except PolicyError as exc:
        raise CasesError(exc.problems) from None
    reader = _CaseReader(source, lines)
    cases = reader.read(data)
    if reader.problems:
        raise CasesError(reader.problems)
    return cases


class _CaseReader:
    def __init__(self, source: str, lines: Mapping[Where, int]) -> None:
        self.source = source
        self.lines = lines
        self.problems: list[str] = []

    def problem(self, path: Where, name: str | None, message: str) -> None:
        line = next((self.lines[path[:end]] for end in range(len(path), -1, -1) if path[:end] in self.lines), None)
        prefix = f"{self.source}:{line}:" if line else f"{self.source}:"
        case = f" case {name!r}:" if name else ""
        key = ".".join(str(p) for p in path[2:]) or "(case)"
        self.problems.append(f"{prefix}{case} {key}: {message}")

    def read(self, data: Mapping[str, Any]) -> list[Case]:
        unknown = sorted(set(data) - {"at", "cases", "policy"})
        for key in unknown:
            self.problem((key,), None, "unknown key; expected at, cases")
        default_at = self.time(("at",), None, data.get("at"))
        raw_cases = data.get("cases")
        if not isinstance(raw_cases, list) or not raw_cases:
            self.problem(("cases",), None, "expected a non-empty list of cases")
            return []
        cases: list[Case] = []
        for index, raw in enumerate(raw_cases):
            case = self.case(("cases", index), raw, default_at)
            if case is not None:
                cases.append(case)
        return cases

    def case(self, path: Where, raw: Any, default_at: datetime | None) -> Case | None:
        if not isinstance(raw, dict):
            self.problem(path, None, "a case is a mapping")
            return None
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            self.problem(path, None, "missing `name`")
            name = f"cases[{path[1]}]"
        before = len(self.problems)
        for key in sorted(set(raw) - _CASE_KEYS):
            self.problem((*path, key), name, f"unknown key; expected one of {', '.join(sorted(_CASE_KEYS))}")
        subject = self.identity((*path, "identity"), name, raw.get("identity"))
        at = self.time((*path, "at"), name, raw.get("at")) or default_at
        findings = self.findings((*path, "findings"), name, raw.get("findings") or [])
        request, listing = self.message(path, name, raw)
        expect = raw.get("expect")
        if expect is None and listing is None:
            self.problem((*path, "expect"), name, "missing `expect` (allow, deny or require-approval)")
        elif expect is not None and expect not in _EFFECTS:
            self.problem((*path, "expect"), name, f"{expect!r} is not one of allow, deny, require-approval")
        visible = raw.get("visible")
        if listing is not None and not (isinstance(visible, list) and all(isinstance(v, str) for v in visible)):
            self.problem((*path, "visible"), name, "a `list` case needs `visible`: the names left after filtering")
        if listing is None and visible is not None:
            self.problem((*path, "visible"), name, "`visible` belongs to a `list` case")
        rule = raw.get("rule")
        if rule is not None and not isinstance(rule, str):
            self.problem((*path, "rule"), name, "expected a rule id, or 'default'")
        if len(self.problems) > before:
            return None
        return Case(
            name=name,
            line=self.lines.get(path),
            subject=subject,
            upstream=str(raw.get("upstream", "test")),
            at=at,
            findings=findings,
            request=request,
            listing=listing,
            expect=Effect(expect) if expect is not None else None,
            rule=rule,
            visible=tuple(visible) if isinstance(visible, list) else None,
        )

    def identity(self, path: Where, name: str, raw: Any) -> Subject:
        if raw is None:
            return Subject()
        if not isinstance(raw, dict):
            self.problem(path, name, "expected a mapping: subject, tenant, scopes, roles, claims")
            return Subject()
        for key in sorted(set(raw) - _IDENTITY_KEYS):
            self.problem((*path, key), name, "unknown key; expected subject, tenant, scopes, roles, claims")
        strings = {}
        for key in ("subject", "tenant"):
            value = raw.get(key)
            if value is not None and not isinstance(value, str):
                self.problem((*path, key), name, "expected a string")
                value = None
            strings[key] = value
        sets = {}
        for key in ("scopes", "roles"):
            value = raw.get(key, [])
            if isinstance(value, str):
                value = value.split()  # an OAuth `scope` claim is space-separated
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                self.problem((*path, key), name, "expected a list of strings")
                value = []
            sets[key] = frozenset(value)
        claims = raw.get("claims", {})
        if not isinstance(claims, dict):
            self.problem((*path, "claims"), name, "expected a mapping")
            claims = {}
        return Subject(strings["subject"], strings["tenant"], sets["scopes"], sets["roles"], claims)

    def time(self, path: Where, name: str | None, raw: Any) -> datetime | None:
        if raw is None:
            return None
        if isinstance(raw, datetime):
            return raw if raw.tzinfo is not None else raw.replace(tzinfo=UTC)
        if isinstance(raw, str):
            try:
                parsed = datetime.fromisoformat(raw)
            except ValueError:
                pass
            else:
                return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
        self.problem(path, name, f"{raw!r} is not an ISO 8601 time (2026-03-02T10:00:00+01:00)")
        return None

    def findings(self, path: Where, name: str, raw: Any) -> tuple[Finding, ...]:
        if not isinstance(raw, list):
            self.problem(path, name, "expected a list of {detector, kind, action, score}")
            return ()
        out: list[Finding] = []
        for index, item in enumerate(raw):
            where = (*path, index)
            if not isinstance(item, dict) or not isinstance(item.get("detector"), str):
                self.problem(where, name, "expected a mapping with at least `detector`")
                continue
            action = item.get("action", "block")
            score = item.get("score", 1.0)
            if action not in _ACTIONS:
                self.problem((*where, "action"), name, f"{action!r} is not one of warn, redact, block")
                continue
            if isinstance(score, bool) or not isinstance(score, int | float):
                self.problem((*where, "score"), name, "expected a number")
                continue
            kind = str(item.get("kind", "finding"))
            out.append(Finding(item["detector"], kind, "test finding", action=_ACTIONS[action], score=float(score)))
        return tuple(out)

    def message(
        self, path: Where, name: str, raw: Mapping[str, Any]
    ) -> tuple[dict[str, Any], tuple[str, list[Any]] | None]:
        given = [key for key in ("message", "tool", "prompt", "resource", "list") if key in raw]
        if len(given) != 1:
            self.problem(path, name, "give exactly one of message, tool, prompt, resource, list")
            return {"method": "ping"}, None
        key = given[0]
        value = raw[key]
        args = raw.get("args")
        if args is not None and key not in ("tool", "prompt"):
            self.problem((*path, "args"), name, "`args` goes with `tool` or `prompt`")
        if key == "message":
            if not isinstance(value, dict) or not isinstance(value.get("method"), str):
                self.problem((*path, key), name, "expected a mapping with `method` (and `params`)")
                return {"method": "ping"}, None
            return {"method": value["method"], **({"params": value["params"]} if "params" in value else {})}, None
        if key == "list":
            if not (isinstance(value, dict) and len(value) == 1 and next(iter(value)) in _LIST_KEYS):
                self.problem((*path, key), name, f"expected one of {', '.join(_LIST_KEYS)} with a list of entries")
                return {"method": "ping"}, None
            result_key, entries = next(iter(value.items()))
            method, name_key = _LIST_KEYS[result_key]
            if not isinstance(entries, list):
                self.problem((*path, key, result_key), name, "expected a list")
                return {"method": "ping"}, None
            full = [{name_key: e} if isinstance(e, str) else e for e in entries]
            return {"method": method}, (result_key, full)
        if not isinstance(value, str):
            self.problem((*path, key), name, "expected a string")
            return {"method": "ping"}, None
        if key == "resource":
            return {"method": "resources/read", "params": {"uri": value}}, None
        method = "tools/call" if key == "tool" else "prompts/get"
        return {"method": method, "params": {"name": value, "arguments": args if args is not None else {}}}, None


# --- running --------------------------------------------------------------------------------------


def run_case(policy: CompiledPolicy, case: Case) -> CaseResult:
    session = SessionInfo("policy-test", "test", case.upstream, case.subject.subject, case.subject.tenant)
    subject: SubjectLike = case.subject
    at = case.at
    inspector = AccessPolicyInspector(
        policy, reload_interval=0, subject_resolver=lambda _session: subject, clock=(lambda: at) if at else None
    )
    request = jsonrpc_message_adapter.validate_python({"jsonrpc": "2.0", "id": 1, **case.request}, by_name=False)
    assert isinstance(request, JSONRPCRequest)
    event = Event(session, Direction.CLIENT_TO_SERVER, request)
    verdict = inspector.evaluate(event, case.findings)
    effect = verdict.effect if verdict is not None else Effect.ALLOW
    rule = (verdict.rule or "default") if verdict is not None else "default"
    failures: list[str] = []
    summary = f"{effect} by {'rule ' + rule if rule != 'default' else 'default'}"
    expect = case.expect if case.expect is not None else (Effect.ALLOW if case.listing is not None else None)
    if expect is not None and effect is not expect:
        because = verdict.reason if verdict is not None else "not subject to policy"
        failures.append(f"expected {expect}, got {effect} by {_by(rule)} ({because})")
    if case.rule is not None and rule != case.rule:
        failures.append(f"expected the decision from {_by(case.rule)}, got it from {_by(rule)}")
    if case.listing is not None and case.visible is not None:
        key, entries = case.listing
        response = jsonrpc_message_adapter.validate_python(
            {"jsonrpc": "2.0", "id": 1, "result": {key: entries}}, by_name=False
        )
        listed = Event(session, Direction.SERVER_TO_CLIENT, response, request=request)
        hidden = {f.path[-1] for f in inspector.hide(listed) if f.path is not None}
        name_key = LIST_METHODS[case.request["method"]][1]
        visible = [str(e.get(name_key)) for i, e in enumerate(entries) if i not in hidden and isinstance(e, dict)]
        summary = f"visible: {', '.join(visible) or '(none)'}"
        if sorted(visible) != sorted(case.visible):
            failures.append(f"expected visible {sorted(case.visible)}, got {sorted(visible)}")
    return CaseResult(case, tuple(failures), summary)


def _by(rule: str) -> str:
    return "the default" if rule == "default" else f"rule {rule!r}"


def run_cases(policy_path: str | Path, cases_path: str | Path) -> TestReport:
    report = TestReport(str(policy_path), str(cases_path))
    try:
        inspector = AccessPolicyInspector.from_file(policy_path, reload_interval=0)
    except PolicyError as exc:
        report.problems.extend(exc.problems)
    try:
        cases = load_cases(cases_path)
    except CasesError as exc:
        report.problems.extend(exc.problems)
    if report.problems:
        return report
    report.results = [run_case(inspector.policy, case) for case in cases]
    return report


def check_policy(path: str | Path) -> int:
    """`guardian policy check FILE`: 0 and a summary when the policy loads, else 1 and a line per problem."""
    try:
        inspector = AccessPolicyInspector.from_file(path, reload_interval=0)
    except PolicyError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    policy = inspector.policy.policy
    print(f"{path}: OK, {len(policy.rules)} rules, default {policy.default}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m guardian.policy.testing POLICY CASES [-v]` (the same as `guardian policy test`)."""
    parser = argparse.ArgumentParser(prog="guardian policy test", description="Run table-driven policy cases.")
    parser.add_argument("policy")
    parser.add_argument("cases")
    parser.add_argument("--verbose", "-v", action="store_true", help="list passing cases too")
    args = parser.parse_args(argv)
    report = run_cases(args.policy, args.cases)
    print(report.text(args.verbose), file=sys.stderr if report.exit_code == 2 else sys.stdout)
    return report.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
