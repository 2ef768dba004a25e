"""Read a policy file: YAML -> JSON Schema check -> semantic checks -> `Policy`.

Every problem is one line that names the file, the line, the rule and the key:

    policies/access/team.yaml:14: rule 'no-prod-delete': when.args[0].regex: invalid regex: ...

so a broken reload can be logged in a line and fixed without opening a debugger. The
schema (`schemas/policy.schema.json`) catches shape errors; what it cannot say (regexes
that don't compile, unknown time zones, duplicate ids or YAML keys, `${...}` variables
outside the keys that take them) is checked here. The file format is documented in
`guardian.policy` and `policies/access/README.md`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jsonschema
import yaml
from jsonschema.exceptions import best_match

from guardian.decision import Action
from guardian.documents import schema_validator
from guardian.errors import ConfigError
from guardian.policy.engine import VARIABLES, glob_to_regex, variables_in
from guardian.policy.jsonpath import JsonPathError, parse
from guardian.policy.model import (
    Conditions,
    Effect,
    FindingTest,
    Operator,
    Patterns,
    Policy,
    Rule,
    SetMode,
    SetTest,
    TimeWindow,
    ValueTest,
)

SCHEMA_PATH = Path(__file__).resolve().parent.parent.parent / "schemas" / "policy.schema.json"

Where = tuple[str | int, ...]
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_OPERATORS: tuple[Operator, ...] = ("equals", "in", "glob", "regex", "range", "exists")
_ACTIONS = {"warn": Action.WARN, "redact": Action.REDACT, "block": Action.BLOCK}
_TEMPLATED_KEYS = frozenset({"tool", "prompt", "resource"})
"""`when` keys whose globs may use ${subject} / ${tenant} (and args' equals/glob)."""


class PolicyError(ConfigError):
    """A policy that cannot be loaded; `problems` holds one line per problem."""


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Read, validate and build the policy at `path`; raise `PolicyError` naming every problem."""
    source = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise PolicyError([f"{source}: cannot read: {reason}"]) from None
    return parse_policy(text, source)


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    data, lines = read_yaml(text, source)
    return build_policy(data, source, lines)


def build_policy(data: Any, source: str = "<policy>", lines: Mapping[Where, int] | None = None) -> Policy:
    """A `Policy` from already-parsed data (a mapping, as from YAML or JSON)."""
    where = _Locator(source, data, lines or {})
    problems = [where.line(path, message) for path, message in _schema_problems(data)]
    if problems:
        raise PolicyError(problems)
    builder = _Builder(where, data.get("timezone", "UTC"))
    policy = builder.policy(data)
    if builder.problems:
        raise PolicyError(builder.problems)
    return policy


# --- YAML with lines ------------------------------------------------------------------------------


_YamlLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's loader where PyYAML was built with it: ten times faster on a 1,000-rule file."""


def read_yaml(
    text: str, source: str, shape: str = "a policy is a mapping with version, default and rules"
) -> tuple[Any, dict[Where, int]]:
    """A YAML mapping and the line of every path in it; duplicate keys are errors."""
    try:
        loader = _YamlLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"{mark.line + 1}:" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError([f"{source}:{line} invalid YAML: {_one_line(str(problem))}"]) from None
    lines: dict[Where, int] = {}
    duplicates: list[Where] = []
    if node is not None:
        _node_lines(node, (), lines, duplicates)
    if duplicates:
        where = _Locator(source, data, lines)
        raise PolicyError([where.line(path, "duplicate key (YAML would keep only the last)") for path in duplicates])
    if not isinstance(data, dict):
        raise PolicyError([f"{source}:1: {shape}"])
    return data, lines


def _node_lines(node: yaml.Node, path: Where, out: dict[Where, int], duplicates: list[Where]) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            _node_lines(value_node, (*path, key), out, duplicates)
            out[(*path, key)] = key_node.start_mark.line + 1
            if key in seen:
                # YAML keeps the last of two equal keys; in a rule that silently changes its meaning.
                duplicates.append((*path, key))
            seen.add(key)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _node_lines(item, (*path, index), out, duplicates)


# --- messages -------------------------------------------------------------------------------------


class _Locator:
    """Formats `file:line: rule 'id': key: problem` for a path into the document."""

    def __init__(self, source: str, data: Any, lines: Mapping[Where, int]) -> None:
        self.source = source
        self.data = data
        self.lines = lines

    def line(self, path: Where, message: str) -> str:
        number = self._line_of(path)
        prefix = f"{self.source}:{number}:" if number else f"{self.source}:"
        if len(path) >= 2 and path[0] == "rules" and isinstance(path[1], int):
            rule = self._rule_name(path[1])
            key = _dotted(path[2:])
            return f"{prefix} rule {rule}: {key or '(rule)'}: {_one_line(message)}"
        return f"{prefix} {_dotted(path) or '(policy)'}: {_one_line(message)}"

    def _line_of(self, path: Where) -> int | None:
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None

    def _rule_name(self, index: int) -> str:
        rules = self.data.get("rules") if isinstance(self.data, dict) else None
        rule = rules[index] if isinstance(rules, list) and index < len(rules) else None
        rule_id = rule.get("id") if isinstance(rule, dict) else None
        return repr(rule_id) if isinstance(rule_id, str) and rule_id else f"rules[{index}]"


def _dotted(path: Where) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _one_line(message: str) -> str:
    text = " ".join(message.split())
    return text if len(text) <= 200 else text[:197] + "..."


# --- schema ---------------------------------------------------------------------------------------


def _validator() -> jsonschema.protocols.Validator:
    return schema_validator(SCHEMA_PATH)


def schema() -> dict[str, Any]:
    return cast(dict[str, Any], _validator().schema)


def _schema_problems(data: Any) -> list[tuple[Where, str]]:
    problems: list[tuple[Where, str]] = []
    errors = sorted(_validator().iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    for error in errors:
        problems.extend(_describe(error))
    return problems


def _describe(error: jsonschema.ValidationError) -> list[tuple[Where, str]]:
    path: Where = tuple(error.absolute_path)
    instance: Any = error.instance
    schema_here: dict[str, Any] = error.schema if isinstance(error.schema, dict) else {}
    value: Any = error.validator_value
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        allowed = sorted(schema_here.get("properties", {}))
        return [
            ((*path, key), f"unknown key; expected one of {', '.join(allowed)}")
            for key in sorted(k for k in instance if k not in allowed)
        ]
    if error.validator == "required":
        missing = [k for k in schema_here.get("required", []) if isinstance(instance, dict) and k not in instance]
        return [(path, f"missing required key {k!r}") for k in missing]
    if error.validator == "oneOf" and all(isinstance(b, dict) and set(b) == {"required"} for b in value):
        names = [branch["required"][0] for branch in value]
        return [(path, f"give exactly one of {', '.join(names)}")]
    if error.validator in ("anyOf", "oneOf") and error.context:
        described = _hints().get(json.dumps(value, sort_keys=True))
        if described:
            return [(path, described)]
        best = best_match(error.context)
        return _describe(best) if best is not None else [(path, _one_line(error.message))]
    if error.validator == "enum":
        return [(path, f"{instance!r} is not one of {', '.join(map(str, value))}")]
    if error.validator == "const":
        return [(path, f"{instance!r} must be {value!r}")]
    if error.validator == "type":
        hint = " (YAML reads yes/no/on/off as booleans: quote it)" if isinstance(instance, bool) else ""
        return [(path, f"expected {_type_name(value)}, got {_json_type(instance)}{hint}")]
    if error.validator == "pattern":
        return [(path, f"{instance!r} does not have the expected form")]
    return [(path, _one_line(error.message))]


def _type_name(value: Any) -> str:
    names: list[str] = value if isinstance(value, list) else [value]
    words = {"object": "a mapping", "array": "a list", "string": "a string"}
    return " or ".join(words.get(n, n) for n in names)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if value is None:
        return "null"
    words: dict[type, str] = {dict: "a mapping", list: "a list", str: "a string"}
    return words.get(type(value), type(value).__name__)


@cache
def _hints() -> dict[str, str]:
    """Plain words for the schema's either-or shapes, keyed by the branch list as JSON."""
    definitions = schema().get("$defs", {})
    found: dict[str, str] = {}
    hints = {
        "patterns": "expected a glob or a list of globs",
        "set_test": "expected a list of names or a mapping with any/all/none lists",
    }
    for name, text in hints.items():
        any_of = definitions.get(name, {}).get("anyOf")
        if any_of is not None:
            found[json.dumps(any_of, sort_keys=True)] = text
    hours = definitions.get("time", {}).get("properties", {}).get("hours", {}).get("anyOf")
    if hours is not None:
        found[json.dumps(hours, sort_keys=True)] = "expected 'HH:MM-HH:MM' or a list of them"
    return found


# --- building the model ---------------------------------------------------------------------------

_HOURS = re.compile(r"([0-9]{1,2}):([0-9]{2})-([0-9]{1,2}):([0-9]{2})")


class _Builder:
    """Builds model objects from schema-valid data, collecting every semantic problem."""

    def __init__(self, where: _Locator, timezone: str) -> None:
        self.where = where
        self.problems: list[str] = []
        self.timezone = timezone

    def problem(self, path: Where, message: str) -> None:
        self.problems.append(self.where.line(path, message))

    def policy(self, data: Mapping[str, Any]) -> Policy:
        if "timezone" in data:
            self._zone(("timezone",), data["timezone"])
        rules: list[Rule] = []
        seen: dict[str, int] = {}
        for index, raw in enumerate(data["rules"]):
            path: Where = ("rules", index)
            if raw["id"] in seen:
                self.problem((*path, "id"), f"duplicate rule id (also rules[{seen[raw['id']]}])")
            seen.setdefault(raw["id"], index)
            rules.append(self.rule(path, raw))
        default_reason = data.get("default_reason", "no policy rule allows this")
        return Policy(
            rules=tuple(rules),
            default=Effect(data["default"]),
            default_reason=default_reason,
            name=data.get("name"),
            timezone=self.timezone,
            source=self.where.source,
        )

    def rule(self, path: Where, raw: Mapping[str, Any]) -> Rule:
        effect = Effect(raw["effect"])
        reason = raw.get("reason") or f"allowed by rule {raw['id']}"
        when = self.conditions((*path, "when"), raw.get("when") or {})
        line = self.where.lines.get(path)
        return Rule(id=raw["id"], effect=effect, reason=reason, when=when, line=line)

    def conditions(self, path: Where, raw: Mapping[str, Any]) -> Conditions:
        targets = [key for key in ("tool", "prompt", "resource") if key in raw]
        if len(targets) > 1:
            self.problem(path, f"name at most one of tool, prompt, resource (got {', '.join(targets)})")
        values: dict[str, Any] = {}
        for key in ("subject", "tenant", "upstream", "method", "tool", "prompt", "resource"):
            if key in raw:
                values[key] = self.patterns((*path, key), raw[key], templated=key in _TEMPLATED_KEYS)
        if "authenticated" in raw:
            values["authenticated"] = raw["authenticated"]
        for key in ("roles", "scopes"):
            if key in raw:
                values[key] = self.set_test(raw[key])
        if "claims" in raw:
            values["claims"] = tuple(
                self.value_test((*path, "claims", i), item, templated=False) for i, item in enumerate(raw["claims"])
            )
        if "args" in raw:
            values["args"] = tuple(
                self.value_test((*path, "args", i), item, templated=True) for i, item in enumerate(raw["args"])
            )
        if "time" in raw:
            values["time"] = self.time((*path, "time"), raw["time"])
        if "findings" in raw:
            values["findings"] = tuple(
                self.finding((*path, "findings", i), item) for i, item in enumerate(raw["findings"])
            )
        return Conditions(**values)

    def patterns(self, path: Where, raw: str | list[str], *, templated: bool) -> Patterns:
        globs = (raw,) if isinstance(raw, str) else tuple(raw)
        for index, glob in enumerate(globs):
            where = path if isinstance(raw, str) else (*path, index)
            self.check_variables(where, glob, templated)
            try:
                re.compile(glob_to_regex(glob))
            except re.error as exc:  # a class like [z-a]
                self.problem(where, f"invalid glob {glob!r}: {exc}")
        return Patterns(globs)

    def check_variables(self, path: Where, text: str, templated: bool) -> None:
        names = variables_in(text)
        if not names:
            return
        if not templated:
            self.problem(path, "${...} variables are only allowed in tool, prompt, resource and args equals/glob")
            return
        unknown = [n for n in names if n not in VARIABLES]
        if unknown:
            self.problem(path, f"unknown variable ${{{unknown[0]}}}; use ${{subject}} or ${{tenant}}")

    def set_test(self, raw: list[str] | Mapping[str, list[str]]) -> SetTest:
        if isinstance(raw, list):
            return SetTest((("any", frozenset(raw)),))
        modes: tuple[SetMode, ...] = ("any", "all", "none")
        return SetTest(tuple((mode, frozenset(raw[mode])) for mode in modes if mode in raw))

    def value_test(self, path: Where, raw: Mapping[str, Any], *, templated: bool) -> ValueTest:
        try:
            json_path = parse(raw["path"])
        except JsonPathError as exc:
            self.problem((*path, "path"), str(exc))
            json_path = parse("$")
        operator = next(op for op in _OPERATORS if op in raw)
        operand = raw[operator]
        if operator == "regex":
            try:
                re.compile(operand)
            except re.error as exc:
                self.problem((*path, "regex"), f"invalid regex: {exc}")
        elif operator == "range":
            self.check_range((*path, "range"), operand)
        elif operator == "equals" and isinstance(operand, str):
            self.check_variables((*path, operator), operand, templated)
        elif operator == "glob":
            self.patterns((*path, operator), operand, templated=templated)
        elif operator == "in":
            for index, item in enumerate(operand):
                if isinstance(item, str):
                    self.check_variables((*path, "in", index), item, False)
        as_path = bool(raw.get("as_path", False))
        if as_path and operator in ("range", "exists"):
            self.problem((*path, "as_path"), f"as_path applies to string tests, not {operator}")
        return ValueTest(json_path, operator, operand, negate=bool(raw.get("not", False)), as_path=as_path)

    def check_range(self, path: Where, bounds: Mapping[str, float]) -> None:
        if "gt" in bounds and "gte" in bounds:
            self.problem(path, "give gt or gte, not both")
        if "lt" in bounds and "lte" in bounds:
            self.problem(path, "give lt or lte, not both")
        low = bounds.get("gt", bounds.get("gte"))
        high = bounds.get("lt", bounds.get("lte"))
        if low is not None and high is not None and low > high:
            self.problem(path, f"empty range: lower bound {low} is above upper bound {high}")

    def time(self, path: Where, raw: Mapping[str, Any]) -> TimeWindow:
        timezone = raw.get("timezone", self.timezone)
        if "timezone" in raw:  # the policy-wide zone was checked once already
            self._zone((*path, "timezone"), timezone)
        days: frozenset[int] | None = None
        if "days" in raw:
            chosen: set[int] = set()
            for item in raw["days"]:
                first, _, last = item.partition("-")
                start, end = _DAYS.index(first), _DAYS.index(last or first)
                span = range(start, end + 1) if start <= end else [*range(start, 7), *range(0, end + 1)]
                chosen.update(span)
            days = frozenset(chosen)
        hours: tuple[tuple[int, int], ...] | None = None
        if "hours" in raw:
            items = [raw["hours"]] if isinstance(raw["hours"], str) else raw["hours"]
            parsed: list[tuple[int, int]] = []
            for index, item in enumerate(items):
                where = (*path, "hours") if isinstance(raw["hours"], str) else (*path, "hours", index)
                window = self.hours(where, item)
                if window is not None:
                    parsed.append(window)
            hours = tuple(parsed)
        return TimeWindow(days=days, hours=hours, timezone=timezone)

    def hours(self, path: Where, text: str) -> tuple[int, int] | None:
        match = _HOURS.fullmatch(text)
        if match is None:  # pragma: no cover - the schema's pattern is the same
            self.problem(path, f"{text!r} is not HH:MM-HH:MM")
            return None
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2 != 0):
            self.problem(path, f"{text!r}: hours are 00:00 to 24:00")
            return None
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if start == end:
            self.problem(path, f"{text!r}: empty window (start equals end)")
            return None
        return start, end

    def finding(self, path: Where, raw: Mapping[str, Any]) -> FindingTest:
        def patterns(key: str) -> Patterns | None:
            value = raw.get(key)
            return None if value is None else self.patterns((*path, key), value, templated=False)

        return FindingTest(
            detector=patterns("detector"),
            kind=patterns("kind"),
            min_action=_ACTIONS[raw["action"]] if "action" in raw else None,
            min_score=float(raw["min_score"]) if "min_score" in raw else None,
        )

    def _zone(self, path: Where, name: str) -> None:
        if name.upper() == "UTC":
            return
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            self.problem(path, f"unknown time zone {name!r}")
