"""Canonical, semantic fingerprints of what a server tells the model it can do.

A rug pull changes a tool's description or schema after the user approved it. To notice
that, every definition is reduced to the fields the model reads (name, title,
description, schemas, annotations; a prompt's arguments; a resource template's URI
template) and hashed in a canonical form, so that re-serialising the same definition
never looks like a change while any change in meaning does:

- key order and JSON whitespace do not matter (sorted keys, compact separators);
- runs of whitespace inside `description` and `title` strings collapse to one space and
  the ends are trimmed: servers re-wrap docstrings between versions, and a re-wrap is not
  a new instruction. Everything else (letters, punctuation, invisible characters such as
  U+200B, which `str.split` does not treat as whitespace) stays significant;
- `required` lists are compared as sets (JSON Schema gives their order no meaning);
  every other list keeps its order (`enum`, `prefixItems`, prompt arguments);
- `1.0` and `1` are the same JSON number; an absent top-level field and `null` are the same
  (inside a schema `null` is a value: `"default": null` stays);
- `_meta`, `icons` and fields the model never reads are left out, so an SDK upgrade that
  adds bookkeeping does not re-prompt every approval.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

PinKind = Literal["tool", "prompt", "resource_template", "instructions"]
KINDS: Final[tuple[PinKind, ...]] = ("tool", "prompt", "resource_template", "instructions")

INSTRUCTIONS_NAME: Final = "instructions"
"""The name under which a server's `instructions` (initialize / discover result) are pinned."""

LISTINGS: Final[dict[str, PinKind]] = {
    "tools/list": "tool",
    "prompts/list": "prompt",
    "resources/templates/list": "resource_template",
}
"""Pinned list methods -> the kind of their entries (`Event.listed()` finds the entries)."""

_FIELDS: Final[dict[PinKind, tuple[str, ...]]] = {
    "tool": ("name", "title", "description", "inputSchema", "outputSchema", "annotations"),
    "prompt": ("name", "title", "description", "arguments"),
    "resource_template": ("name", "title", "uriTemplate", "description", "mimeType", "annotations"),
    "instructions": ("instructions",),
}
_PROSE_KEYS: Final = frozenset({"description", "title", "instructions"})


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """One definition as pinned: its canonical form and the SHA-256 of that form."""

    kind: PinKind
    name: str
    hash: str
    definition: dict[str, Any]


def item_name(kind: PinKind, item: Mapping[str, Any]) -> str | None:
    """The name a listed item is pinned under (a template without a name: its URI template)."""
    name = item.get("name")
    if kind == "resource_template" and not (isinstance(name, str) and name):
        name = item.get("uriTemplate")
    return name if isinstance(name, str) and name else None


def canonical_definition(kind: PinKind, item: Mapping[str, Any]) -> dict[str, Any]:
    """The pinned fields of `item`, normalised (see the module docstring); idempotent."""
    definition: dict[str, Any] = {}
    for key in _FIELDS[kind]:
        value = item.get(key)
        if value is None or (key == "annotations" and value == {}):
            continue
        definition[key] = _normalise(value, key)
    return definition


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def digest(definition: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a canonical definition's canonical JSON."""
    return hashlib.sha256(canonical_json(definition).encode("utf-8")).hexdigest()


def fingerprint(kind: PinKind, item: Mapping[str, Any]) -> Fingerprint | None:
    """The fingerprint of a listed tool, prompt or resource template; None if it has no name."""
    name = item_name(kind, item)
    if name is None:
        return None
    definition = canonical_definition(kind, item)
    return Fingerprint(kind, name, digest(definition), definition)


def instructions_fingerprint(text: str) -> Fingerprint:
    """The fingerprint of a server's `instructions` string."""
    definition = canonical_definition("instructions", {"instructions": text})
    return Fingerprint("instructions", INSTRUCTIONS_NAME, digest(definition), definition)


def _normalise(value: Any, key: str | None) -> Any:
    if isinstance(value, str):
        return " ".join(value.split()) if key in _PROSE_KEYS else value
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, Mapping):
        return {str(k): _normalise(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        items = [_normalise(v, None) for v in value]
        if key == "required" and all(isinstance(v, str) for v in items):
            return sorted(set(items))
        return items
    return value
