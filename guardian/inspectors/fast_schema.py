"""A JSON Schema compiled to nested Python checks that only answer "valid or not", fast.

jsonschema interprets a schema on every call (a validator object per step, a registry
lookup per `$ref`): about 200 µs to accept an ordinary `tools/call` against the MCP
schema, which is the whole latency budget of a gateway hop. Almost every message is
valid, so schema validation asks this check first and only runs jsonschema, the
reference that finds and names the violation, when the check says no.

The check must never accept what jsonschema rejects. So it covers exactly the keywords
the MCP schemas and ordinary tool schemas use, with jsonschema's semantics (`True` is
not `1`, `1.0` is an integer, `format` is not asserted, draft-07 `$ref` hides its
siblings), and refuses to compile (`Unsupported`) anything else: other assertion
keywords, `$ref`s outside the document, `$id` below the root, drafts before 6. A
refused schema is simply validated by jsonschema alone. Keywords jsonschema ignores
(annotations, unknown words) are ignored here too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import unquote

from jsonschema import Draft6Validator, Draft7Validator, Draft201909Validator, Draft202012Validator
from jsonschema.protocols import Validator

Check = Callable[[Any], bool]


class Unsupported(Exception):
    """The schema needs something this compiler does not do; use jsonschema alone."""


def compile_check(validator_class: type[Validator], root: Any, pointer: str = "") -> Check:
    """A check of instances against the subschema of `root` at JSON pointer `pointer` ("" = root)."""
    if validator_class not in (Draft6Validator, Draft7Validator, Draft201909Validator, Draft202012Validator):
        raise Unsupported(f"{validator_class.__name__} semantics")
    return _Compiler(validator_class, root).ref("#" + pointer)


def _always(_: Any) -> bool:
    return True


def _never(_: Any) -> bool:
    return False


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _is_integer(x: Any) -> bool:
    if isinstance(x, bool):
        return False
    return isinstance(x, int) or (isinstance(x, float) and x.is_integer())


_TYPES: dict[str, Check] = {
    "object": lambda x: isinstance(x, dict),
    "array": lambda x: isinstance(x, list),
    "string": lambda x: isinstance(x, str),
    "null": lambda x: x is None,
    "boolean": lambda x: isinstance(x, bool),
    "number": _is_number,
    "integer": _is_integer,
}


def equal(one: Any, two: Any) -> bool:
    """JSON equality as jsonschema has it: booleans are not numbers, containers compare deeply."""
    if one is two:
        return True
    if isinstance(one, str) or isinstance(two, str):
        return bool(one == two)
    if isinstance(one, Sequence) and isinstance(two, Sequence):
        return len(one) == len(two) and all(equal(a, b) for a, b in zip(one, two, strict=True))
    if isinstance(one, Mapping) and isinstance(two, Mapping):
        return one.keys() == two.keys() and all(equal(v, two[k]) for k, v in one.items())
    if isinstance(one, bool) or isinstance(two, bool):
        return type(one) is type(two) and one == two
    return bool(one == two)


def _all(checks: list[Check]) -> Check:
    if not checks:
        return _always
    if len(checks) == 1:
        return checks[0]
    frozen = tuple(checks)

    def check(x: Any) -> bool:
        for one in frozen:  # noqa: SIM110  # a plain loop: all() over a generator costs more per call
            if not one(x):
                return False
        return True

    return check


_REF_SIBLINGS_IGNORED = (Draft6Validator, Draft7Validator)
_COMPILED_KEYWORDS = frozenset({
    "$ref", "type", "properties", "required", "dependentRequired", "items", "anyOf", "allOf", "oneOf", "not",
    "const", "enum", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength",
    "pattern", "minItems", "maxItems", "minProperties", "maxProperties",
})
"""Keywords compiled by a `_<keyword>` method (plus `format`, not asserted, and the object members)."""
_SCOPE_KEYWORDS = ("$id", "id", "$anchor", "$dynamicAnchor", "$recursiveAnchor")


class _Compiler:
    def __init__(self, validator_class: type[Validator], root: Any) -> None:
        self.keywords = frozenset(validator_class.VALIDATORS)
        self.legacy_ref = validator_class in _REF_SIBLINGS_IGNORED
        self.root = root
        self.refs: dict[str, Check] = {}

    def ref(self, reference: str) -> Check:
        if not reference.startswith("#") or (len(reference) > 1 and not reference.startswith("#/")):
            raise Unsupported("a $ref outside the document or to an anchor")
        known = self.refs.get(reference)
        if known is not None:
            return known
        cell: list[Check] = []
        self.refs[reference] = lambda x: cell[0](x)  # a cycle reaches the check through this cell
        target = self.root
        for token in reference[2:].split("/") if len(reference) > 1 else ():
            token = unquote(token).replace("~1", "/").replace("~0", "~")
            if isinstance(target, dict) and token in target:
                target = target[token]
            elif isinstance(target, list) and token.isdigit() and int(token) < len(target):
                target = target[int(token)]
            else:
                raise Unsupported("an unresolvable $ref")
        check = self.compile(target, at_root=target is self.root)
        cell.append(check)
        self.refs[reference] = check
        return check

    def compile(self, schema: Any, at_root: bool = False) -> Check:
        if schema is True:
            return _always
        if schema is False:
            return _never
        if not isinstance(schema, dict):
            raise Unsupported("a schema that is neither an object nor a boolean")
        if not at_root and any(key in schema for key in _SCOPE_KEYWORDS):
            raise Unsupported("a nested $id or anchor")
        if self.legacy_ref and "$ref" in schema:
            return self.ref(_string(schema["$ref"]))
        checks: list[Check] = []
        for key, value in schema.items():
            if key not in self.keywords or key in ("format", "additionalProperties", "patternProperties"):
                continue  # annotations and unknown words, as in jsonschema; the last two are done with `properties`
            if key not in _COMPILED_KEYWORDS:
                raise Unsupported(f"keyword {key!r}")
            checks.append(getattr(self, "_" + key.lstrip("$"))(value, schema))
        if any(key in schema and key in self.keywords for key in ("additionalProperties", "patternProperties")):
            checks.append(self._object_members(schema))
        return _all(checks)

    # --- keywords: each returns the check for one keyword ---

    def _ref(self, value: Any, schema: Mapping[str, Any]) -> Check:
        return self.ref(_string(value))

    def _type(self, value: Any, schema: Mapping[str, Any]) -> Check:
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or not all(isinstance(n, str) and n in _TYPES for n in names):
            raise Unsupported("an unknown type")
        checks = tuple(_TYPES[n] for n in names)
        if len(checks) == 1:
            return checks[0]
        return lambda x: any(c(x) for c in checks)

    def _properties(self, value: Any, schema: Mapping[str, Any]) -> Check:
        if not isinstance(value, dict):
            raise Unsupported("properties is not an object")
        members = tuple((name, self.compile(sub)) for name, sub in value.items())

        def check(x: Any) -> bool:
            if isinstance(x, dict):
                for name, sub in members:
                    if name in x and not sub(x[name]):
                        return False
            return True

        return check

    def _object_members(self, schema: Mapping[str, Any]) -> Check:
        """`patternProperties` and `additionalProperties` (which depends on both neighbours)."""
        declared = schema.get("properties", {})
        patterns_value = schema.get("patternProperties", {}) if "patternProperties" in self.keywords else {}
        if not isinstance(declared, dict) or not isinstance(patterns_value, dict):
            raise Unsupported("properties or patternProperties is not an object")
        patterns = tuple((_regex(p), self.compile(sub)) for p, sub in patterns_value.items())
        either = _regex("|".join(patterns_value)) if patterns_value else None
        additional = schema.get("additionalProperties", True)
        extra: Check | None = None if additional is True or additional == {} else self.compile(additional)

        def check(x: Any) -> bool:
            if not isinstance(x, dict):
                return True
            for key, item in x.items():
                for regex, sub in patterns:
                    if regex.search(key) and not sub(item):
                        return False
                if (extra is not None and key not in declared and not (either is not None and either.search(key))
                        and not extra(item)):
                    return False
            return True

        return check

    def _required(self, value: Any, schema: Mapping[str, Any]) -> Check:
        if not isinstance(value, list):
            raise Unsupported("required is not a list")
        names = tuple(value)
        return lambda x: not isinstance(x, dict) or all(n in x for n in names)

    def _dependentRequired(self, value: Any, schema: Mapping[str, Any]) -> Check:
        if not isinstance(value, dict) or not all(isinstance(v, list) for v in value.values()):
            raise Unsupported("dependentRequired is not a map of lists")
        pairs = tuple((k, tuple(v)) for k, v in value.items())
        return lambda x: not isinstance(x, dict) or all(k not in x or all(d in x for d in v) for k, v in pairs)

    def _items(self, value: Any, schema: Mapping[str, Any]) -> Check:
        if isinstance(value, list):
            raise Unsupported("tuple-form items")
        sub = self.compile(value)
        return lambda x: not isinstance(x, list) or all(sub(i) for i in x)

    def _anyOf(self, value: Any, schema: Mapping[str, Any]) -> Check:
        subs = self._list(value)
        return lambda x: any(s(x) for s in subs)

    def _allOf(self, value: Any, schema: Mapping[str, Any]) -> Check:
        return _all(list(self._list(value)))

    def _oneOf(self, value: Any, schema: Mapping[str, Any]) -> Check:
        subs = self._list(value)
        return lambda x: sum(1 for s in subs if s(x)) == 1

    def _not(self, value: Any, schema: Mapping[str, Any]) -> Check:
        sub = self.compile(value)
        return lambda x: not sub(x)

    def _const(self, value: Any, schema: Mapping[str, Any]) -> Check:
        if isinstance(value, str):
            return lambda x: x == value if isinstance(x, str) else False
        return lambda x: equal(x, value)

    def _enum(self, value: Any, schema: Mapping[str, Any]) -> Check:
        if not isinstance(value, list):
            raise Unsupported("enum is not a list")
        if all(isinstance(v, str) for v in value):
            allowed = frozenset(value)
            return lambda x: isinstance(x, str) and x in allowed
        options = tuple(value)
        return lambda x: any(equal(x, v) for v in options)

    def _minimum(self, value: Any, schema: Mapping[str, Any]) -> Check:
        bound = _bound(value)
        return lambda x: not _is_number(x) or x >= bound

    def _maximum(self, value: Any, schema: Mapping[str, Any]) -> Check:
        bound = _bound(value)
        return lambda x: not _is_number(x) or x <= bound

    def _exclusiveMinimum(self, value: Any, schema: Mapping[str, Any]) -> Check:
        bound = _bound(value)
        return lambda x: not _is_number(x) or x > bound

    def _exclusiveMaximum(self, value: Any, schema: Mapping[str, Any]) -> Check:
        bound = _bound(value)
        return lambda x: not _is_number(x) or x < bound

    def _minLength(self, value: Any, schema: Mapping[str, Any]) -> Check:
        bound = _bound(value)
        return lambda x: not isinstance(x, str) or len(x) >= bound

    def _maxLength(self, value: Any, schema: Mapping[str, Any]) -> Check:
        bound = _bound(value)
        return lambda x: not isinstance(x, str) or len(x) <= bound

    def _pattern(self, value: Any, schema: Mapping[str, Any]) -> Check:
        regex = _regex(value)
        return lambda x: not isinstance(x, str) or regex.search(x) is not None

    def _minItems(self, value: Any, schema: Mapping[str, Any]) -> Check:
        bound = _bound(value)
        return lambda x: not isinstance(x, list) or len(x) >= bound

    def _maxItems(self, value: Any, schema: Mapping[str, Any]) -> Check:
        bound = _bound(value)
        return lambda x: not isinstance(x, list) or len(x) <= bound

    def _minProperties(self, value: Any, schema: Mapping[str, Any]) -> Check:
        bound = _bound(value)
        return lambda x: not isinstance(x, dict) or len(x) >= bound

    def _maxProperties(self, value: Any, schema: Mapping[str, Any]) -> Check:
        bound = _bound(value)
        return lambda x: not isinstance(x, dict) or len(x) <= bound

    def _list(self, value: Any) -> tuple[Check, ...]:
        if not isinstance(value, list) or not value:
            raise Unsupported("a combinator that is not a non-empty list")
        return tuple(self.compile(sub) for sub in value)


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise Unsupported("$ref is not a string")
    return value


def _bound(value: Any) -> float:
    if not _is_number(value):
        raise Unsupported("a bound that is not a number")
    return float(value) if isinstance(value, float) else int(value)


def _regex(pattern: Any) -> re.Pattern[str]:
    if not isinstance(pattern, str):
        raise Unsupported("a pattern that is not a string")
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise Unsupported("a pattern Python cannot compile") from exc
