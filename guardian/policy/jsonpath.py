"""A small JSON-path subset for policy conditions: `$.a.b[0]`, `$['odd key']`, `$.items[*].path`.

Documents are JSON-shaped: mappings (any `Mapping`, so read-only token claims work) and
lists or tuples.

Policies point into tool arguments and token claims; that needs member access, array
indices (negative counts from the end) and a `[*]` / `.*` wildcard, nothing more. No filters,
no recursive descent, no slices: a policy a reviewer can read beats a query language.
Parsing happens once, at policy load; `select` is a tight loop over the parsed steps.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

WILDCARD: Final = "*"

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_INDEX = re.compile(r"\[(-?[0-9]+)\]")
_QUOTED = re.compile(r"""\[\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")\s*\]""")


class JsonPathError(ValueError):
    """A path outside the supported subset; the message says where."""


@dataclass(frozen=True, slots=True)
class JsonPath:
    """A parsed path: a tuple of steps, each a member name, an index, or the wildcard."""

    text: str
    steps: tuple[str | int | object, ...]

    @property
    def has_wildcard(self) -> bool:
        return any(step is _ANY for step in self.steps)

    def select(self, document: Any) -> list[Any]:
        """Every value the path reaches in `document` (empty when it reaches nothing)."""
        if not self.has_wildcard:
            found, value = self.get(document)
            return [value] if found else []
        return list(_walk(document, self.steps, 0))

    def get(self, document: Any) -> tuple[bool, Any]:
        """(found, value) for a path without wildcards: the fast path for most conditions."""
        node = document
        for step in self.steps:
            if isinstance(step, str):
                if not isinstance(node, dict | Mapping) or step not in node:
                    return False, None
                node = node[step]
            elif isinstance(step, int):
                if not isinstance(node, list | tuple) or not -len(node) <= step < len(node):
                    return False, None
                node = node[step]
            else:
                raise TypeError("get() on a path with a wildcard; use select()")
        return True, node


_ANY: Final = object()
"""The wildcard step (an object, so a member literally named "*" stays a member)."""


def _walk(node: Any, steps: tuple[str | int | object, ...], at: int) -> Iterator[Any]:
    if at == len(steps):
        yield node
        return
    step = steps[at]
    if step is _ANY:
        # A wildcard over a single value reaches that value: a server that accepts "x" for ["x"]
        # must not let a scalar slip past a test written for each element.
        if isinstance(node, dict | Mapping):
            children: Iterable[Any] = node.values()
        else:
            children = node if isinstance(node, list | tuple) else (node,)
        for child in children:
            yield from _walk(child, steps, at + 1)
    elif isinstance(step, str):
        if isinstance(node, dict | Mapping) and step in node:
            yield from _walk(node[step], steps, at + 1)
    elif isinstance(step, int) and isinstance(node, list | tuple) and -len(node) <= step < len(node):
        yield from _walk(node[step], steps, at + 1)


def parse(text: str) -> JsonPath:
    """Parse `$`, `.name`, `.*`, `[N]`, `[*]`, `['name']` / `["name"]` steps; raise `JsonPathError`."""
    if not text.startswith("$"):
        raise JsonPathError(f"{text!r}: a path starts with '$'")
    steps: list[str | int | object] = []
    at = 1
    while at < len(text):
        if text.startswith(".*", at):
            steps.append(_ANY)
            at += 2
        elif text.startswith("[*]", at):
            steps.append(_ANY)
            at += 3
        elif text[at] == ".":
            match = _NAME.match(text, at + 1)
            if match is None:
                raise JsonPathError(f"{text!r}: expected a name after '.' at position {at}; quote odd names: ['a b']")
            steps.append(match.group())
            at = match.end()
        elif (match := _INDEX.match(text, at)) is not None:
            steps.append(int(match.group(1)))
            at = match.end()
        elif (match := _QUOTED.match(text, at)) is not None:
            raw = match.group(1) if match.group(1) is not None else match.group(2)
            steps.append(re.sub(r"\\(.)", r"\1", raw))
            at = match.end()
        else:
            raise JsonPathError(f"{text!r}: unexpected {text[at]!r} at position {at}")
    return JsonPath(text, tuple(steps))
