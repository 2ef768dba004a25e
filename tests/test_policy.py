"""The access-policy engine, its YAML loader, the inspector, hot reload and the case runner.

Everything runs on real JSON-RPC messages and real policy files written to tmp_path; the
clock is injected (a fixed datetime) so time windows are tested without waiting.
"""

from __future__ import annotations

import json
import logging
import os
import textwrap
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any

import anyio
import jsonschema
import pytest
import yaml
from mcp_types import JSONRPCMessage, JSONRPCRequest, jsonrpc_message_adapter

from guardian.auth.identity import Identity
from guardian.decision import Action, Finding
from guardian.errors import ConfigError
from guardian.events import Direction, Event, SessionInfo
from guardian.pipeline import decide
from guardian.policy import (
    AccessPolicyInspector,
    CompiledPolicy,
    Effect,
    PolicyError,
    Request,
    Subject,
    parse_policy,
    subject_of,
)
from guardian.policy.engine import canonical_uri, normalize_path
from guardian.policy.jsonpath import JsonPathError, parse
from guardian.policy.testing import main as policy_test_main
from guardian.policy.testing import run_cases

ROOT = Path(__file__).resolve().parent.parent
ACCESS = ROOT / "policies" / "access"
SCHEMA = ROOT / "schemas" / "policy.schema.json"

WEDNESDAY_10_UTC = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)


# --- helpers --------------------------------------------------------------------------------------


def compile_yaml(text: str, source: str = "test.yaml") -> CompiledPolicy:
    return CompiledPolicy(parse_policy(textwrap.dedent(text), source))


def rules(body: str, default: str = "deny", extra: str = "") -> CompiledPolicy:
    """A policy from an indented `rules:` body."""
    head = f"version: 1\ndefault: {default}\n{extra}rules:\n"
    return compile_yaml(head + textwrap.indent(textwrap.dedent(body), "  "))


def problems_of(text: str, source: str = "p.yaml") -> list[str]:
    with pytest.raises(PolicyError) as caught:
        parse_policy(textwrap.dedent(text), source)
    problems = caught.value.problems
    assert all("\n" not in p for p in problems)
    return problems


def who(subject: str | None = "alice", **kwargs: Any) -> Subject:
    sets = {k: frozenset(v) for k, v in kwargs.items() if k in ("roles", "scopes")}
    rest = {k: v for k, v in kwargs.items() if k not in ("roles", "scopes")}
    return Subject(subject, **rest, **sets)


def call(tool: str, **arguments: Any) -> Request:
    return Request("tools/call", tool=tool, arguments=arguments)


def effect(policy: CompiledPolicy, subject: Subject, request: Request, **kwargs: Any) -> tuple[str, str | None]:
    verdict = policy.evaluate(subject, request, **kwargs)
    return verdict.effect.value, verdict.rule


def message(envelope: dict[str, Any]) -> JSONRPCMessage:
    return jsonrpc_message_adapter.validate_json(json.dumps({"jsonrpc": "2.0", **envelope}), by_name=False)


def session(identity: str | None = "alice", tenant: str | None = None, upstream: str = "up") -> SessionInfo:
    return SessionInfo(session_id="s1", transport="test", upstream=upstream, identity=identity, tenant=tenant)


def request_event(method: str, params: dict[str, Any] | None = None, sess: SessionInfo | None = None) -> Event:
    envelope: dict[str, Any] = {"id": 7, "method": method}
    if params is not None:
        envelope["params"] = params
    return Event(sess or session(), Direction.CLIENT_TO_SERVER, message(envelope))


def list_event(method: str, result: dict[str, Any], sess: SessionInfo | None = None) -> Event:
    request = message({"id": 3, "method": method})
    assert isinstance(request, JSONRPCRequest)
    return Event(sess or session(), Direction.SERVER_TO_CLIENT, message({"id": 3, "result": result}), request=request)


def inspector_for(policy: CompiledPolicy, subject: Subject | None = None, **kwargs: Any) -> AccessPolicyInspector:
    if subject is not None:
        kwargs["subject_resolver"] = lambda _session: subject
    return AccessPolicyInspector(policy, reload_interval=0, clock=lambda: WEDNESDAY_10_UTC, **kwargs)


def dump(msg: JSONRPCMessage) -> dict[str, Any]:
    return msg.model_dump(by_alias=True, exclude_unset=True)


# --- first match, effects, defaults ---------------------------------------------------------------


def test_first_matching_rule_decides_in_file_order() -> None:
    policy = rules(
        """
        - {id: no-delete, effect: deny, reason: no deleting, when: {tool: "delete_*"}}
        - {id: admins, effect: allow, when: {roles: [admin]}}
        - {id: deletes-for-admins, effect: allow, when: {tool: delete_all, roles: [admin]}}
        """
    )
    admin = who(roles={"admin"})
    assert effect(policy, admin, call("delete_all")) == ("deny", "no-delete")
    assert effect(policy, admin, call("read")) == ("allow", "admins")
    assert effect(policy, who(), call("read")) == ("deny", None)


def test_order_holds_across_index_buckets() -> None:
    """A wildcard rule above an exact (method, tool) rule still wins: indexing keeps file order."""
    policy = rules(
        """
        - {id: any-method, effect: deny, reason: r1, when: {subject: mallory}}
        - {id: by-method, effect: deny, reason: r2, when: {method: tools/call, subject: "m*"}}
        - {id: by-tool, effect: deny, reason: r3, when: {tool: [x, y], subject: "mo*"}}
        - {id: own, effect: deny, reason: r4, when: {tool: "x_${subject}_*"}}
        - {id: exact, effect: allow, when: {method: tools/call, tool: x}}
        - {id: two-globs, effect: deny, reason: r5, when: {tool: ["xy*", "xyl*"], subject: "z*"}}
        - {id: glob-tool, effect: allow, when: {tool: "x*"}}
        - {id: suffix, effect: deny, reason: r6, when: {tool: "*phone"}}
        """
    )
    assert effect(policy, who("mallory"), call("x")) == ("deny", "any-method")
    assert effect(policy, who("mike"), call("x")) == ("deny", "by-method")
    assert effect(policy, who("moe"), call("x")) == ("deny", "by-method")
    assert effect(policy, who("zed"), call("x")) == ("allow", "exact")
    assert effect(policy, who("zed"), call("xylophone")) == ("deny", "two-globs")
    assert effect(policy, who("ann"), call("xylophone")) == ("allow", "glob-tool")
    assert effect(policy, who("ann"), call("x_ann_1")) == ("deny", "own")
    assert effect(policy, who("bob"), call("x_ann_1")) == ("allow", "glob-tool")
    assert effect(policy, who("ann"), call("telephone")) == ("deny", "suffix")
    assert effect(policy, who("zed"), call("y")) == ("deny", None)
    # The same answers a second time come from the candidate cache.
    assert effect(policy, who("moe"), call("x")) == ("deny", "by-method")


def test_reason_and_effects() -> None:
    policy = rules(
        """
        - id: big
          effect: require-approval
          reason: big payments
          when: {tool: pay, args: [{path: $.n, range: {gt: 10}}]}
        - {id: pay, effect: allow, when: {tool: pay}}
        - {id: nope, effect: deny, reason: never, when: {tool: nuke}}
        """
    )
    verdict = policy.evaluate(who(), call("pay", n=11))
    assert (verdict.effect, verdict.reason, verdict.rule, verdict.allowed) == (
        Effect.REQUIRE_APPROVAL,
        "big payments",
        "big",
        False,
    )
    allowed = policy.evaluate(who(), call("pay", n=1))
    assert (allowed.allowed, allowed.reason) == (True, "allowed by rule pay")
    assert policy.evaluate(who(), call("nuke")).reason == "never"


def test_deny_by_default_and_allow_by_default() -> None:
    deny_all = compile_yaml("version: 1\ndefault: deny\ndefault_reason: ask ops\nrules: []\n")
    verdict = deny_all.evaluate(who(), call("anything"))
    assert (verdict.effect, verdict.reason, verdict.rule) == (Effect.DENY, "ask ops", None)
    allow_all = compile_yaml("version: 1\ndefault: allow\nrules: []\n")
    assert allow_all.evaluate(who(), call("anything")).effect is Effect.ALLOW


@pytest.mark.parametrize("method", ["initialize", "ping", "logging/setLevel", "tools/list", "resources/templates/list"])
def test_default_does_not_apply_to_protocol_methods(method: str) -> None:
    policy = compile_yaml("version: 1\ndefault: deny\nrules: []\n")
    assert policy.evaluate(who(), Request(method)).effect is Effect.ALLOW
    explicit = rules(f"- {{id: nope, effect: deny, reason: r, when: {{method: {method}}}}}")
    assert explicit.evaluate(who(), Request(method)).rule == "nope"


@pytest.mark.parametrize("method", ["resources/subscribe", "completion/complete", "tasks/get", "x/custom"])
def test_default_applies_to_other_client_methods(method: str) -> None:
    policy = compile_yaml("version: 1\ndefault: deny\nrules: []\n")
    assert policy.evaluate(who(), Request(method)).effect is Effect.DENY


# --- identity conditions --------------------------------------------------------------------------


def test_subject_authenticated_and_tenant() -> None:
    policy = rules(
        """
        - {id: anon, effect: deny, reason: sign in, when: {authenticated: false}}
        - {id: services, effect: allow, when: {subject: ["svc-*", "robot?"]}}
        - {id: acme, effect: allow, when: {tenant: acme, authenticated: true}}
        """
    )
    assert effect(policy, who(None), call("t")) == ("deny", "anon")
    assert effect(policy, who("svc-build"), call("t")) == ("allow", "services")
    assert effect(policy, who("robot1"), call("t")) == ("allow", "services")
    assert effect(policy, who("robot12"), call("t")) == ("deny", None)
    assert effect(policy, who("bob", tenant="acme"), call("t")) == ("allow", "acme")
    assert effect(policy, who("bob", tenant="acme-evil"), call("t")) == ("deny", None)
    assert effect(policy, who("bob"), call("t")) == ("deny", None)


def test_roles_and_scopes_any_all_none() -> None:
    policy = rules(
        """
        - {id: banned, effect: deny, reason: suspended, when: {roles: {none: [active]}}}
        - {id: writers, effect: allow, when: {tool: write, scopes: {all: ["files:read", "files:write"]}}}
        - {id: readers, effect: allow, when: {tool: read, roles: [viewer, editor]}}
        """
    )
    assert effect(policy, who(roles={"viewer"}), call("read")) == ("deny", "banned")
    assert effect(policy, who(roles={"active", "editor"}), call("read")) == ("allow", "readers")
    assert effect(policy, who(roles={"active"}), call("read")) == ("deny", None)
    both = who(roles={"active"}, scopes={"files:read", "files:write"})
    assert effect(policy, both, call("write")) == ("allow", "writers")
    one = who(roles={"active"}, scopes={"files:write"})
    assert effect(policy, one, call("write")) == ("deny", None)


def test_claims_value_tests() -> None:
    policy = rules(
        """
        - id: enterprise-eu
          effect: allow
          when:
            claims:
              - {path: $.plan, equals: enterprise}
              - {path: "$.org.regions[*]", glob: "eu-*"}
        """
    )
    good = who(claims={"plan": "enterprise", "org": {"regions": ["us-east", "eu-west"]}})
    assert effect(policy, good, call("t")) == ("allow", "enterprise-eu")
    us_only = who(claims={"plan": "enterprise", "org": {"regions": ["us-east"]}})
    assert effect(policy, us_only, call("t")) == ("deny", None)
    assert effect(policy, who(claims={"plan": "team"}), call("t")) == ("deny", None)


def test_subject_of_session_strings_and_the_authenticated_identity() -> None:
    assert subject_of(session("alice", "acme")) == Subject("alice", "acme")
    assert subject_of(session(None, None)) == Subject()
    identity = Identity(
        subject="bob",
        method="jwt",
        tenant="globex",
        scopes=frozenset({"db:read"}),
        roles=frozenset({"admin"}),
        claims=MappingProxyType({"plan": "enterprise", "org": {"ids": (7, 8)}}),
    )
    authenticated = SessionInfo("s1", "streamable-http", "up", identity="bob", tenant="globex", principal=identity)
    assert subject_of(authenticated) is identity
    policy = rules(
        """
        - id: admins
          effect: allow
          when:
            roles: [admin]
            scopes: ["db:read"]
            tenant: globex
            claims: [{path: $.plan, equals: enterprise}, {path: "$.org.ids[-1]", equals: 8}]
        """
    )
    assert policy.evaluate(identity, call("t")).rule == "admins"
    inspector = AccessPolicyInspector(policy, reload_interval=0)
    event = request_event("tools/call", {"name": "t", "arguments": {}}, authenticated)
    assert inspector.review(event, []) == []
    strings_only = request_event("tools/call", {"name": "t", "arguments": {}}, session("bob", "globex"))
    assert [f.kind for f in inspector.review(strings_only, [])] == ["denied"]


def test_upstream_and_method_conditions() -> None:
    policy = rules(
        """
        - {id: gh, effect: allow, when: {upstream: "github*", method: "tools/*"}}
        """
    )
    assert effect(policy, who(), Request("tools/call", tool="t", upstream="github-prod")) == ("allow", "gh")
    assert effect(policy, who(), Request("tools/call", tool="t", upstream="gitlab")) == ("deny", None)
    assert effect(policy, who(), Request("prompts/get", prompt="p", upstream="github")) == ("deny", None)


# --- targets --------------------------------------------------------------------------------------


def test_tool_prompt_and_resource_targets() -> None:
    policy = rules(
        """
        - {id: tool, effect: allow, when: {tool: "read_*"}}
        - {id: prompt, effect: allow, when: {prompt: [summarize, "review-?"]}}
        - {id: docs, effect: allow, when: {resource: "file:///srv/docs/*"}}
        """
    )
    assert effect(policy, who(), call("read_file")) == ("allow", "tool")
    assert effect(policy, who(), Request("prompts/get", prompt="read_file")) == ("deny", None)
    assert effect(policy, who(), Request("prompts/get", prompt="review-1")) == ("allow", "prompt")
    assert effect(policy, who(), Request("resources/read", resource="file:///srv/docs/a.md")) == ("allow", "docs")
    escaped = Request("resources/read", resource="file:///srv/docs/../secrets/key")
    assert effect(policy, who(), escaped) == ("deny", None)
    encoded = Request("resources/read", resource="file:///srv/docs/%2e%2e/secrets/key")
    assert effect(policy, who(), encoded) == ("deny", None)


def test_request_from_events_names_the_target() -> None:
    tool = Request.from_event(request_event("tools/call", {"name": "t", "arguments": {"a": 1}}))
    assert tool == Request("tools/call", tool="t", arguments={"a": 1}, upstream="up")
    prompt = Request.from_event(request_event("prompts/get", {"name": "p"}))
    assert prompt is not None and prompt.prompt == "p"
    resource = Request.from_event(request_event("resources/subscribe", {"uri": "file:///x"}))
    assert resource is not None and resource.resource == "file:///x"
    completion = Request.from_event(
        request_event(
            "completion/complete",
            {"ref": {"type": "ref/prompt", "name": "secret-prompt"}, "argument": {"name": "a", "value": ""}},
        )
    )
    assert completion is not None and completion.prompt == "secret-prompt"
    response = Event(session(), Direction.SERVER_TO_CLIENT, message({"id": 7, "result": {}}))
    assert Request.from_event(response) is None
    server_request = Event(
        session(), Direction.SERVER_TO_CLIENT, message({"id": 9, "method": "sampling/createMessage", "params": {}})
    )
    assert Request.from_event(server_request) is None


def test_canonical_uris_and_paths() -> None:
    assert canonical_uri("file:///srv/docs/a.md") == "file:///srv/docs/a.md"
    assert canonical_uri("file:///srv/docs/../etc/passwd") == "file:///srv/etc/passwd"
    assert canonical_uri("file:////etc//passwd") == "file:///etc/passwd"
    assert canonical_uri("file:///srv/%2E%2E/etc") == "file:///etc"
    assert canonical_uri("db://acme/a/./b/") == "db://acme/a/b/"
    assert canonical_uri("FILE:///etc/passwd") == "file:///etc/passwd"
    assert canonical_uri("Db://ACME/x") == "db://ACME/x"
    assert canonical_uri("db://acme/../globex/x") is None
    assert canonical_uri("db://acme\\..\\..\\x") is None
    assert normalize_path("/tmp/../etc/shadow") == "/etc/shadow"
    assert normalize_path("/tmp/../../../etc") == "/etc"
    assert normalize_path("C:\\work\\..\\secrets") == "C:/secrets"
    assert normalize_path("a/b/..") == "a/"
    assert normalize_path("../x") == "../x"


def test_a_uri_climbing_above_its_root_is_refused_whatever_the_rules() -> None:
    policy = compile_yaml("version: 1\ndefault: allow\nrules: []\n")
    verdict = policy.evaluate(who(), Request("resources/read", resource="db://acme/../globex/x"))
    assert (verdict.effect, verdict.rule) == (Effect.DENY, "(invalid-uri)")


def test_templated_targets_use_the_callers_values_literally() -> None:
    policy = rules(
        """
        - {id: own, effect: allow, when: {resource: "db://${tenant}/*"}}
        - {id: home, effect: allow, when: {tool: "home_${subject}"}}
        """
    )
    acme = who("ann", tenant="acme")
    assert effect(policy, acme, Request("resources/read", resource="db://acme/1")) == ("allow", "own")
    assert effect(policy, acme, Request("resources/read", resource="db://globex/1")) == ("deny", None)
    star = who("mal", tenant="*")
    assert effect(policy, star, Request("resources/read", resource="db://acme/1")) == ("deny", None)
    assert effect(policy, who("ann"), Request("resources/read", resource="db://acme/1")) == ("deny", None)
    assert effect(policy, acme, call("home_ann")) == ("allow", "home")
    assert effect(policy, who("bob"), call("home_ann")) == ("deny", None)


# --- argument conditions --------------------------------------------------------------------------


def arg_policy(test: str) -> CompiledPolicy:
    return rules(f"- {{id: hit, effect: allow, when: {{tool: t, args: [{test}]}}}}")


def hits(policy: CompiledPolicy, **arguments: Any) -> bool:
    return policy.evaluate(who(), call("t", **arguments)).rule == "hit"


def test_equals_is_type_strict() -> None:
    policy = arg_policy("{path: $.force, equals: true}")
    assert hits(policy, force=True)
    assert not hits(policy, force=1)
    assert not hits(policy, force="true")
    number = arg_policy("{path: $.n, equals: 1}")
    assert hits(number, n=1) and hits(number, n=1.0)
    assert not hits(number, n=True) and not hits(number, n="1")
    null = arg_policy("{path: $.x, equals: null}")
    assert hits(null, x=None) and not hits(null)


def test_in_glob_regex() -> None:
    choice = arg_policy("{path: $.region, in: [eu-west-1, eu-central-1]}")
    assert hits(choice, region="eu-west-1") and not hits(choice, region="us-east-1")
    glob = arg_policy('{path: $.file, glob: ["*.md", "docs/[a-c]*"]}')
    assert hits(glob, file="x/readme.md") and hits(glob, file="docs/b.txt")
    assert not hits(glob, file="docs/d.txt") and not hits(glob, file=5)
    regex = arg_policy(r"{path: $.sql, regex: '(?i)\bdrop\s+table\b'}")
    assert hits(regex, sql="select 1; DROP  TABLE users") and not hits(regex, sql="select dropped from t")


def test_range_counts_numeric_strings_but_not_booleans() -> None:
    policy = arg_policy("{path: $.amount, range: {gt: 500, lte: 10000}}")
    assert hits(policy, amount=501) and hits(policy, amount=10000) and hits(policy, amount="1500.50")
    assert not hits(policy, amount=500) and not hits(policy, amount=10001) and not hits(policy, amount=True)
    assert not hits(policy, amount="lots") and not hits(policy, amount="nan") and not hits(policy)


def test_exists_and_not() -> None:
    present = arg_policy("{path: $.force, exists: true}")
    assert hits(present, force=False) and not hits(present)
    absent = arg_policy("{path: $.force, exists: false}")
    assert hits(absent) and not hits(absent, force=None)
    negated = arg_policy("{path: $.owner, equals: alice, not: true}")
    assert hits(negated, owner="bob")
    assert hits(negated)  # missing counts as failing the test, so the negation holds
    assert not hits(negated, owner="alice")


def test_json_paths_index_quote_and_wildcard() -> None:
    first = arg_policy("{path: '$.files[0].path', glob: '/tmp/*'}")
    assert hits(first, files=[{"path": "/tmp/a"}, {"path": "/etc/b"}])
    assert not hits(first, files=[{"path": "/etc/b"}, {"path": "/tmp/a"}])
    last = arg_policy("{path: '$.files[-1]', equals: z}")
    assert hits(last, files=["a", "z"]) and not hits(last, files=[])
    quoted = arg_policy("""{path: "$['odd key'].v", equals: 1}""")
    assert hits(quoted, **{"odd key": {"v": 1}})
    every = arg_policy("{path: '$.files[*].path', glob: '/srv/*', not: true}")
    assert hits(every, files=[{"path": "/srv/a"}, {"path": "/etc/b"}])
    assert not hits(every, files=[{"path": "/srv/a"}, {"path": "/srv/b"}])
    assert hits(every, files="/etc/passwd")  # a scalar where a list was expected is still tested
    assert hits(every)  # nothing reached: the negated test holds
    members = arg_policy("{path: '$.env.*', regex: '^sk-'}")
    assert hits(members, env={"A": "x", "B": "sk-123"}) and not hits(members, env={"A": "x"})


def test_as_path_resolves_traversal_before_matching() -> None:
    policy = arg_policy("{path: $.path, glob: '/etc/*', as_path: true}")
    assert hits(policy, path="/srv/app/../../etc/passwd")
    assert hits(policy, path="/srv/%2e%2e/etc/passwd")
    plain = arg_policy("{path: $.path, glob: '/etc/*'}")
    assert not hits(plain, path="/srv/app/../../etc/passwd")


def test_templated_argument_values() -> None:
    policy = rules(
        """
        - id: others
          effect: deny
          reason: not yours
          when: {tool: rm, args: [{path: $.owner, equals: "${subject}", not: true}]}
        - {id: own-dir, effect: allow, when: {tool: rm, args: [{path: $.dir, glob: "/home/${subject}/*"}]}}
        """
    )
    assert effect(policy, who("ann"), call("rm", owner="bob", dir="/home/ann/x")) == ("deny", "others")
    assert effect(policy, who("ann"), call("rm", owner="ann", dir="/home/ann/x")) == ("allow", "own-dir")
    assert effect(policy, who("ann"), call("rm", owner="ann", dir="/home/bob/x")) == ("deny", None)
    assert effect(policy, who("a.*"), call("rm", owner="ann", dir="/home/a.*/x")) == ("deny", "others")


def test_json_path_parser() -> None:
    assert parse("$.a.b[0]").select({"a": {"b": [5]}}) == [5]
    assert parse("$").select(3) == [3]
    assert parse("$['a\\'b']").steps == ("a'b",)
    for bad in ("a.b", "$.", "$[x]", "$.a[", "$..a", "$.a b"):
        with pytest.raises(JsonPathError):
            parse(bad)


# --- time and findings ----------------------------------------------------------------------------


def test_time_windows_days_hours_and_timezones() -> None:
    policy = rules(
        """
        - {id: office, effect: allow, when: {tool: deploy, time: {days: [mon-fri], hours: "09:00-17:00"}}}
        - {id: night, effect: allow, when: {tool: backup, time: {hours: ["22:00-06:00"], timezone: UTC}}}
        - {id: weekend, effect: allow, when: {tool: party, time: {days: [fri-sun]}}}
        """,
        extra="timezone: Europe/Berlin\n",
    )

    def at(tool: str, when: datetime) -> str | None:
        return policy.evaluate(who(), call(tool), now=when).rule

    assert at("deploy", datetime(2026, 3, 4, 8, 0, tzinfo=UTC)) == "office"  # 09:00 in Berlin
    assert at("deploy", datetime(2026, 3, 4, 7, 59, tzinfo=UTC)) is None
    assert at("deploy", datetime(2026, 3, 4, 16, 0, tzinfo=UTC)) is None  # 17:00 Berlin: end is exclusive
    assert at("deploy", datetime(2026, 7, 1, 14, 30, tzinfo=UTC)) == "office"  # 16:30 summer time
    assert at("deploy", datetime(2026, 7, 1, 15, 0, tzinfo=UTC)) is None  # 17:00 summer time
    assert at("deploy", datetime(2026, 3, 7, 10, 0, tzinfo=UTC)) is None  # Saturday
    assert at("backup", datetime(2026, 3, 4, 23, 0, tzinfo=UTC)) == "night"
    assert at("backup", datetime(2026, 3, 4, 5, 59, tzinfo=UTC)) == "night"
    assert at("backup", datetime(2026, 3, 4, 6, 0, tzinfo=UTC)) is None
    assert at("party", datetime(2026, 3, 8, 12, 0, tzinfo=UTC)) == "weekend"  # Sunday
    assert at("party", datetime(2026, 3, 9, 12, 0, tzinfo=UTC)) is None  # Monday
    # A time from another zone is converted, not read as local.
    tokyo = timezone(timedelta(hours=9))
    assert at("deploy", datetime(2026, 3, 4, 17, 0, tzinfo=tokyo)) == "office"  # 09:00 Berlin


def test_findings_conditions() -> None:
    policy = rules(
        """
        - {id: secrets, effect: deny, reason: credential, when: {findings: [{detector: secrets, action: redact}]}}
        - id: pii
          effect: require-approval
          reason: personal data
          when: {findings: [{detector: "pii*", kind: [email, phone], min_score: 0.8}]}
        - {id: rest, effect: allow}
        """
    )

    def with_findings(*found: Finding) -> str | None:
        return policy.evaluate(who(), call("t"), findings=found).rule

    assert with_findings() == "rest"
    assert with_findings(Finding("secrets", "aws_key", "m", action=Action.BLOCK)) == "secrets"
    assert with_findings(Finding("secrets", "entropy", "m", action=Action.WARN)) == "rest"
    assert with_findings(Finding("pii_names", "email", "m", action=Action.WARN, score=0.9)) == "pii"
    assert with_findings(Finding("pii_names", "email", "m", action=Action.WARN, score=0.5)) == "rest"
    assert with_findings(Finding("pii_names", "address", "m", score=0.9)) == "rest"


def test_inspector_hides_monitor_findings_from_the_policy() -> None:
    policy = rules(
        """
        - {id: secrets, effect: deny, reason: credential, when: {findings: [{detector: secrets}]}}
        - {id: rest, effect: allow}
        """
    )
    inspector = inspector_for(policy)
    event = request_event("tools/call", {"name": "t", "arguments": {}})
    monitored = Finding("secrets", "k", "m", action=Action.WARN, monitor=True)
    assert inspector.review(event, [monitored]) == []
    enforced = Finding("secrets", "k", "m", action=Action.REDACT)
    [finding] = inspector.review(event, [enforced])
    assert (finding.detector, finding.kind, finding.message, finding.action) == (
        "access_policy",
        "denied",
        "credential",
        Action.BLOCK,
    )


# --- the inspector on messages --------------------------------------------------------------------


def test_review_blocks_denied_requests_with_the_rules_reason() -> None:
    policy = rules(
        """
        - id: refunds
          effect: require-approval
          reason: big refund
          when: {tool: refund, args: [{path: $.n, range: {gt: 5}}]}
        - {id: ok, effect: allow, when: {tool: [refund, read], subject: alice}}
        """
    )
    inspector = inspector_for(policy)
    allowed = request_event("tools/call", {"name": "read", "arguments": {}})
    assert inspector.review(allowed, []) == []
    denied = request_event("tools/call", {"name": "write", "arguments": {}})
    [finding] = inspector.review(denied, [])
    assert (finding.kind, finding.path, finding.excerpt) == ("denied", ("params", "name"), "rule=default")
    decision = decide(denied, [finding])
    error = decision.block_error(7)
    assert error.error.data["guardian"]["reasons"] == ["access_policy: no policy rule allows this"]
    approval = request_event("tools/call", {"name": "refund", "arguments": {"n": 50}})
    [pending] = inspector.review(approval, [])
    assert (pending.kind, pending.message, pending.action, pending.excerpt) == (
        "approval_required",
        "approval required: big refund",
        Action.BLOCK,
        "rule=refunds",
    )
    bob = request_event("tools/call", {"name": "read", "arguments": {}}, session("bob"))
    assert [f.kind for f in inspector.review(bob, [])] == ["denied"]


def test_review_leaves_notifications_and_other_responses_alone() -> None:
    inspector = inspector_for(compile_yaml("version: 1\ndefault: deny\nrules: []\n"))
    note = Event(session(), Direction.CLIENT_TO_SERVER, message({"method": "notifications/initialized"}))
    assert inspector.review(note, []) == []
    request = message({"id": 1, "method": "tools/call", "params": {"name": "x"}})
    assert isinstance(request, JSONRPCRequest)
    result = Event(
        session(), Direction.SERVER_TO_CLIENT, message({"id": 1, "result": {"content": []}}), request=request
    )
    assert inspector.review(result, []) == []
    assert inspector.evaluate(note) is None


def test_warn_action_records_without_enforcing() -> None:
    inspector = inspector_for(compile_yaml("version: 1\ndefault: deny\nrules: []\n"), action=Action.WARN)
    [finding] = inspector.review(request_event("tools/call", {"name": "x"}), [])
    assert finding.action is Action.WARN
    listing = list_event("tools/list", {"tools": [{"name": "x", "inputSchema": {"type": "object"}}]})
    [hidden] = inspector.review(listing, [])
    assert (hidden.action, hidden.remove, hidden.patch()) == (Action.WARN, False, None)


TEAM_LIST = {
    "tools": [
        {"name": "read_file", "description": "Read a file", "inputSchema": {"type": "object"}},
        {"name": "write_file", "description": "Write a file", "inputSchema": {"type": "object"}},
        {"name": "refund", "description": "Refund", "inputSchema": {"type": "object"}},
        {"name": "drop_db", "description": "Drop", "inputSchema": {"type": "object"}},
        {"description": "no name at all", "inputSchema": {"type": "object"}},
    ],
    "nextCursor": "page-2",
}


def test_tools_list_result_is_filtered_to_what_the_caller_may_use() -> None:
    policy = rules(
        """
        - {id: no-drop, effect: deny, reason: never, when: {tool: "drop_*"}}
        - {id: big-refunds, effect: deny, reason: too big, when: {tool: refund, args: [{path: $.n, range: {gt: 9}}]}}
        - {id: refunds, effect: allow, when: {tool: refund, roles: [support]}}
        - {id: read, effect: allow, when: {tool: "read_*"}}
        - {id: approvals, effect: require-approval, reason: review, when: {tool: write_file, roles: [support]}}
        """
    )
    event = list_event("tools/list", TEAM_LIST)
    support = inspector_for(policy, who("sam", roles={"support"}))
    findings = support.review(event, [])
    assert all(f.action is Action.REDACT and f.remove and f.kind == "hidden" for f in findings)
    decision = decide(event, findings)
    assert decision.action is Action.REDACT and decision.patched is not None
    patched = dump(decision.patched)["result"]
    assert [t["name"] for t in patched["tools"]] == ["read_file", "write_file", "refund"]
    assert patched["nextCursor"] == "page-2"
    assert [t["name"] for t in dump(event.message)["result"]["tools"][:4]] == [
        "read_file",
        "write_file",
        "refund",
        "drop_db",
    ]  # the original is untouched
    viewer = inspector_for(policy, who("vic"))
    patched = dump(decide(event, viewer.review(event, [])).patched)["result"]  # type: ignore[arg-type]
    assert [t["name"] for t in patched["tools"]] == ["read_file"]


def test_prompts_resources_and_templates_lists_are_filtered() -> None:
    policy = rules(
        """
        - {id: prompts, effect: allow, when: {prompt: "public-*"}}
        - {id: docs, effect: allow, when: {resource: "docs://*"}}
        """
    )
    inspector = inspector_for(policy, who())
    cases = [
        ("prompts/list", "prompts", "name", ["public-a", "private-b", "public-c"], ["public-a", "public-c"]),
        ("resources/list", "resources", "uri", ["docs://a", "file:///etc/x", "docs://b"], ["docs://a", "docs://b"]),
        ("resources/templates/list", "resourceTemplates", "uriTemplate", ["docs://{p}", "file:///{p}"], ["docs://{p}"]),
    ]
    for method, key, name_key, names, expected in cases:
        entries = [{name_key: n, "name": f"entry-{i}"} for i, n in enumerate(names)]
        if key == "prompts":
            entries = [{"name": n} for n in names]
        event = list_event(method, {key: entries})
        decision = decide(event, inspector.review(event, []))
        assert decision.patched is not None, method
        assert [e[name_key] for e in dump(decision.patched)["result"][key]] == expected, method


def test_listing_of_a_deny_by_default_policy_with_nothing_allowed_is_empty() -> None:
    inspector = inspector_for(compile_yaml("version: 1\ndefault: deny\nrules: []\n"), who())
    event = list_event("tools/list", TEAM_LIST)
    patched = decide(event, inspector.review(event, [])).patched
    assert patched is not None and dump(patched)["result"]["tools"] == []


def test_completion_on_a_denied_prompt_is_denied() -> None:
    inspector = inspector_for(rules("- {id: p, effect: allow, when: {prompt: ok}}"))
    denied = request_event(
        "completion/complete",
        {"ref": {"type": "ref/prompt", "name": "secret"}, "argument": {"name": "a", "value": "x"}},
    )
    [finding] = inspector.review(denied, [])
    assert finding.kind == "denied" and finding.path is None
    allowed = request_event(
        "completion/complete", {"ref": {"type": "ref/prompt", "name": "ok"}, "argument": {"name": "a", "value": "x"}}
    )
    assert inspector.review(allowed, []) == []


# --- loading: one line per problem ----------------------------------------------------------------


def test_schema_problems_name_file_line_rule_and_key() -> None:
    problems = problems_of(
        """\
        version: 1
        default: maybe
        rules:
          - id: first
            effect: deny
            when:
              colour: red
          - id: second
            effect: allow
            when:
              args:
                - {path: $.a, equals: 1, glob: x}
              roles: admin
        """
    )
    assert problems == [
        "p.yaml:2: default: 'maybe' is not one of allow, deny",
        "p.yaml:4: rule 'first': (rule): missing required key 'reason'",
        "p.yaml:7: rule 'first': when.colour: unknown key; expected one of args, authenticated, claims, findings, "
        "method, prompt, resource, roles, scopes, subject, tenant, time, tool, upstream",
        "p.yaml:12: rule 'second': when.args[0]: give exactly one of equals, in, glob, regex, range, exists",
        "p.yaml:13: rule 'second': when.roles: expected a list of names or a mapping with any/all/none lists",
    ]


def test_semantic_problems_are_reported_together() -> None:
    problems = problems_of(
        """\
        version: 1
        default: deny
        timezone: Mars/Olympus
        rules:
          - id: a
            effect: allow
            when:
              tool: x
              prompt: y
              args:
                - {path: "$.a[", equals: 1}
                - {path: $.b, regex: "(["}
                - {path: $.c, range: {gt: 5, lt: 2}}
          - id: a
            effect: allow
            when:
              subject: "${subject}"
              resource: "db://${org}/*"
              time: {hours: "25:00-26:00"}
              tenant: "[z-a]*"
        """
    )
    assert problems[0] == "p.yaml:3: timezone: unknown time zone 'Mars/Olympus'"
    assert problems[1] == "p.yaml:7: rule 'a': when: name at most one of tool, prompt, resource (got tool, prompt)"
    assert problems[2].startswith("p.yaml:11: rule 'a': when.args[0].path: '$.a[': unexpected '['")
    assert problems[3].startswith("p.yaml:12: rule 'a': when.args[1].regex: invalid regex: ")
    assert problems[4] == "p.yaml:13: rule 'a': when.args[2].range: empty range: lower bound 5 is above upper bound 2"
    assert problems[5] == "p.yaml:14: rule 'a': id: duplicate rule id (also rules[0])"
    assert problems[6].startswith("p.yaml:17: rule 'a': when.subject: ${...} variables are only allowed")
    assert problems[8] == "p.yaml:18: rule 'a': when.resource: unknown variable ${org}; use ${subject} or ${tenant}"
    assert problems[7].startswith("p.yaml:20: rule 'a': when.tenant: invalid glob '[z-a]*': bad character range")
    assert problems[9] == "p.yaml:19: rule 'a': when.time.hours: '25:00-26:00': hours are 00:00 to 24:00"
    assert len(problems) == 10


def test_yaml_errors_and_duplicate_keys() -> None:
    [syntax] = problems_of("version: 1\nrules: [\n")
    assert syntax.startswith("p.yaml:3: invalid YAML: ")  # the wording is libyaml's or PyYAML's
    duplicate = problems_of(
        """\
        version: 1
        default: deny
        rules:
          - id: r
            effect: allow
            effect: deny
            reason: x
        """
    )
    assert duplicate == ["p.yaml:6: rule 'r': effect: duplicate key (YAML would keep only the last)"]
    assert problems_of("- just a list\n") == ["p.yaml:1: a policy is a mapping with version, default and rules"]


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as caught:
        AccessPolicyInspector.from_file(tmp_path / "missing.yaml")
    assert caught.value.problems == [f"{tmp_path / 'missing.yaml'}: cannot read: No such file or directory"]


def test_shipped_policies_match_the_json_schema() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    shipped = sorted(p for p in ACCESS.glob("*.yaml") if not p.name.endswith(".cases.yaml"))
    assert len(shipped) >= 3
    for path in shipped:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert list(validator.iter_errors(data)) == [], path
        assert CompiledPolicy(parse_policy(path.read_text(encoding="utf-8"), str(path))).rule_count > 0
    assert not validator.is_valid({"version": 1, "default": "deny", "rules": [{"id": "x", "effect": "deny"}]})


# --- options --------------------------------------------------------------------------------------


def write_policy(path: Path, body: str, default: str = "deny") -> Path:
    path.write_text(f"version: 1\ndefault: {default}\nrules:\n" + textwrap.indent(textwrap.dedent(body), "  "))
    return path


def test_from_options(tmp_path: Path) -> None:
    file = write_policy(tmp_path / "p.yaml", "- {id: r, effect: allow, when: {tool: t}}")
    inspector = AccessPolicyInspector.from_options(
        {"file": str(file), "reload_interval": 0.5, "action": "warn", "enabled": True, "monitor": False}
    )
    assert (inspector.reload_interval, inspector.action, inspector.policy.rule_count) == (0.5, Action.WARN, 1)
    inline = AccessPolicyInspector.from_options({"policy": {"version": 1, "default": "allow", "rules": []}})
    assert inline.policy.policy.default is Effect.ALLOW and inline.source is None
    with pytest.raises(ConfigError) as caught:
        AccessPolicyInspector.from_options({"file": str(file), "colour": "red", "action": "redact"})
    assert caught.value.problems == [
        "$.security.inspectors.access_policy.action: 'redact': the access policy can block or warn",
        "$.security.inspectors.access_policy.colour: unknown option",
    ]
    with pytest.raises(ConfigError) as missing:
        AccessPolicyInspector.from_options({})
    assert missing.value.problems == [
        "$.security.inspectors.access_policy.file: required: the access policy file (or an inline `policy`)"
    ]
    with pytest.raises(ConfigError) as bad_inline:
        AccessPolicyInspector.from_options({"policy": {"version": 1, "default": "deny", "rules": [{"id": "x"}]}})
    assert bad_inline.value.problems == [
        "$.security.inspectors.access_policy.policy: inline policy: rule 'x': (rule): missing required key 'effect'"
    ]
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\ndefault: deny\nrules: [{id: x, effect: nope}]\n")
    with pytest.raises(ConfigError) as bad:
        AccessPolicyInspector.from_options({"file": str(broken)})
    assert bad.value.problems == [
        f"$.security.inspectors.access_policy.file: {broken}:3: rule 'x': effect: 'nope' is not one of "
        "allow, deny, require-approval"
    ]


# --- hot reload -----------------------------------------------------------------------------------


def test_reload_swaps_in_a_changed_policy_and_keeps_it_on_a_broken_edit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    file = write_policy(tmp_path / "p.yaml", "- {id: v1, effect: allow, when: {tool: a}}")
    inspector = AccessPolicyInspector.from_file(file, reload_interval=0)
    event = request_event("tools/call", {"name": "b"})
    assert inspector.evaluate(event) is not None and inspector.evaluate(event).effect is Effect.DENY  # type: ignore[union-attr]
    assert inspector.reload_now() is False  # unchanged

    write_policy(file, "- {id: v2, effect: allow, when: {tool: [a, b]}}")
    assert inspector.reload_now() is True
    assert inspector.evaluate(event).rule == "v2"  # type: ignore[union-attr]

    caplog.set_level(logging.INFO, logger="guardian.policy")
    file.write_text("version: 1\ndefault: deny\nrules:\n  - {id: v3, effect: allow, when: {tol: b}}\n")
    assert inspector.reload_now() is False
    assert inspector.evaluate(event).rule == "v2"  # type: ignore[union-attr]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "\n" not in errors[0].getMessage()
    assert errors[0].getMessage() == (
        f"access policy {file} not reloaded, keeping the previous policy: {file}:4: rule 'v3': when.tol: "
        "unknown key; expected one of args, authenticated, claims, findings, method, prompt, resource, roles, "
        "scopes, subject, tenant, time, tool, upstream"
    )
    for _ in range(12):  # the same broken file is not logged again, even when re-read
        assert inspector.reload_now() is False
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1

    file.unlink()
    assert inspector.reload_now() is False
    assert inspector.evaluate(event).rule == "v2"  # type: ignore[union-attr]
    write_policy(file, "- {id: v4, effect: deny, reason: closed, when: {tool: b}}")
    assert inspector.reload_now() is True
    assert inspector.evaluate(event).rule == "v4"  # type: ignore[union-attr]


def test_reload_notices_a_same_size_edit_within_one_mtime_tick(tmp_path: Path) -> None:
    file = write_policy(tmp_path / "p.yaml", "- {id: aa, effect: allow, when: {tool: t}}")
    inspector = AccessPolicyInspector.from_file(file, reload_interval=0)
    stat = file.stat()
    write_policy(file, "- {id: bb, effect: allow, when: {tool: t}}")
    os.utime(file, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size, same mtime: only the content moved
    event = request_event("tools/call", {"name": "t"})
    swapped = [inspector.reload_now() for _ in range(10)]
    assert swapped.count(True) == 1
    assert inspector.evaluate(event).rule == "bb"  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_watch_task_reloads_while_sessions_keep_running(tmp_path: Path) -> None:
    file = write_policy(tmp_path / "p.yaml", "- {id: old, effect: allow, when: {tool: t}}")
    inspector = AccessPolicyInspector.from_file(file, reload_interval=0.01)
    event = request_event("tools/call", {"name": "t"})
    before = inspector.policy
    async with anyio.create_task_group() as tg:
        tg.start_soon(inspector.watch)
        assert inspector.evaluate(event).rule == "old"  # type: ignore[union-attr]
        write_policy(file, "- {id: new, effect: deny, reason: closed, when: {tool: t}}")
        with anyio.fail_after(10):
            while inspector.evaluate(event).rule != "new":  # type: ignore[union-attr]
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    assert inspector.policy is not before
    assert before.evaluate(Subject("alice"), call("t")).rule == "old"  # the old policy object is unchanged


# --- the case runner ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["team", "tenant-isolation", "read-only"])
def test_shipped_cases_pass(name: str) -> None:
    report = run_cases(ACCESS / f"{name}.yaml", ACCESS / f"{name}.cases.yaml")
    assert report.problems == []
    assert report.failed == [], report.text()
    assert len(report.results) >= 8
    assert report.exit_code == 0


def test_runner_reports_failures_and_invalid_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = write_policy(tmp_path / "p.yaml", "- {id: reads, effect: allow, when: {tool: read}}")
    cases = tmp_path / "c.yaml"
    cases.write_text(
        textwrap.dedent(
            """\
            cases:
              - name: reads are allowed
                identity: {subject: a}
                tool: read
                expect: allow
                rule: reads
              - name: wrong expectation
                tool: write
                expect: allow
              - name: wrong listing
                list: {tools: [read, write]}
                visible: [write]
            """
        )
    )
    assert policy_test_main([str(policy), str(cases), "-v"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "ok   reads are allowed: allow by rule reads",
        f"FAIL wrong expectation ({cases}:7): expected allow, got deny by the default (no policy rule allows this)",
        f"FAIL wrong listing ({cases}:10): expected visible ['write'], got ['read']",
        f"{policy}: 3 cases, 1 passed, 2 failed",
    ]
    bad_cases = tmp_path / "bad.yaml"
    bad_cases.write_text("cases:\n  - name: x\n    tool: read\n    expect: perhaps\n    colour: red\n")
    assert policy_test_main([str(policy), str(bad_cases)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"{bad_cases}:5: case 'x': colour: unknown key")
    assert err[1] == f"{bad_cases}:4: case 'x': expect: 'perhaps' is not one of allow, deny, require-approval"
    assert err[-1] == f"{policy}: not tested"


def test_runner_with_findings_time_and_messages(tmp_path: Path) -> None:
    policy = write_policy(
        tmp_path / "p.yaml",
        """
        - {id: leak, effect: deny, reason: leak, when: {findings: [{detector: secrets}]}}
        - {id: office, effect: allow, when: {tool: t, time: {days: [mon-fri]}}}
        - {id: sub, effect: allow, when: {method: resources/subscribe}}
        """,
    )
    cases = tmp_path / "c.yaml"
    cases.write_text(
        textwrap.dedent(
            """\
            at: "2026-03-04T10:00:00Z"
            cases:
              - {name: weekday, tool: t, expect: allow, rule: office}
              - {name: saturday, tool: t, at: "2026-03-07T10:00:00Z", expect: deny, rule: default}
              - {name: leak, tool: t, findings: [{detector: secrets, kind: k}], expect: deny, rule: leak}
              - {name: raw, message: {method: resources/subscribe, params: {uri: "x://y"}}, expect: allow}
            """
        )
    )
    report = run_cases(policy, cases)
    assert report.exit_code == 0, report.text()
    assert [r.summary for r in report.results] == [
        "allow by rule office",
        "deny by default",
        "deny by rule leak",
        "allow by rule sub",
    ]


def test_check_policy_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from guardian.policy.testing import check_policy

    assert check_policy(ACCESS / "team.yaml") == 0
    assert capsys.readouterr().out.strip().endswith("team.yaml: OK, 13 rules, default deny")
    broken = tmp_path / "b.yaml"
    broken.write_text("version: 2\ndefault: deny\nrules: []\n")
    assert check_policy(broken) == 1
    assert capsys.readouterr().err.strip() == f"{broken}:1: version: 2 must be 1"


def test_evaluate_event_and_all_day_windows() -> None:
    policy = rules(
        """
        - {id: always, effect: allow, when: {tool: t, time: {hours: "00:00-24:00", days: [sun-sat]}}}
        """
    )
    event = request_event("tools/call", {"name": "t", "arguments": {}})
    verdict = policy.evaluate_event(event, now=datetime(2026, 3, 4, 23, 59, tzinfo=UTC))
    assert verdict is not None and verdict.rule == "always"
    other = request_event("tools/call", {"name": "u"}, session(None))
    denied = policy.evaluate_event(other)
    assert denied is not None and denied.effect is Effect.DENY
    note = Event(session(), Direction.CLIENT_TO_SERVER, message({"method": "notifications/initialized"}))
    assert policy.evaluate_event(note) is None
