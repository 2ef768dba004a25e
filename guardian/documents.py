"""Documents the gateway reads (config, profiles): JSON or YAML files, a deep merge, and JSON
Schema validation whose every problem is one line naming its JSON path, so a user can act on
`guardian check-config` output without reading the schema.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from guardian.errors import ConfigError


def read_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a JSON or YAML file into a mapping; one-line `ConfigError` on any failure."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    try:
        data = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise ConfigError([f"{path}: line {exc.lineno}: invalid JSON: {exc.msg}"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise ConfigError([f"{path}: {where}invalid YAML: {getattr(exc, 'problem', None) or exc}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: $: the top level must be a mapping, not {type(data).__name__}"])
    return data


def merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge `overlay` over `base` (mappings merge, everything else replaces)."""
    merged = dict(base)
    for key, value in overlay.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = merge(current, value)
        else:
            merged[key] = value
    return merged


@cache
def schema_validator(schema_path: Path) -> jsonschema.protocols.Validator:
    """The checked validator for a JSON Schema file, built once per file."""
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def schema_problems(data: Any, schema_path: Path) -> list[str]:
    """One line per problem of `data` against the schema file, each starting with its JSON path."""
    problems: list[str] = []
    errors = schema_validator(schema_path).iter_errors(data)
    for error in sorted(errors, key=lambda e: list(map(str, e.absolute_path))):
        problems.extend(_describe(error))
    return problems


def _describe(error: jsonschema.ValidationError) -> list[str]:
    path = _json_path(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        schema = error.schema if isinstance(error.schema, dict) else {}
        allowed = set(schema.get("properties", {}))
        return [f"{_join(path, key)}: unknown key" for key in sorted(k for k in error.instance if k not in allowed)]
    if error.validator == "oneOf" and error.context:
        branch = _intended_branch(error.context)
        if branch:
            return [line for sub in branch for line in _describe(sub)]
    return [f"{path}: {_short(error.message)}"]


def _intended_branch(errors: list[jsonschema.ValidationError]) -> list[jsonschema.ValidationError]:
    """Of a `oneOf`'s failed branches, the errors of the one the value was meant for.

    That is a branch whose failure is not a type mismatch at the value itself (an object
    given for "string or object" was meant as the object form).
    """
    branches: dict[Any, list[jsonschema.ValidationError]] = {}
    for sub in errors:
        branches.setdefault(sub.schema_path[0] if sub.schema_path else None, []).append(sub)
    for subs in branches.values():
        if not any(s.validator == "type" and not s.path for s in subs):
            return subs
    return []


def _json_path(parts: Any) -> str:
    path = "$"
    for part in parts:
        path = f"{path}[{part}]" if isinstance(part, int) else _join(path, part)
    return path


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if key.isidentifier() else f"{path}[{json.dumps(key)}]"


def _short(message: str) -> str:
    return message if len(message) <= 160 else message[:157] + "..."
