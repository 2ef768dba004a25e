"""Find every string a model or user will read in an MCP message, and patch strings by path.

Detectors never walk messages themselves: they get `(path, text)` pairs from
`extract()` and report findings against those paths, so that redaction (`apply_patches`)
can rewrite exactly the span they flagged. Strings that hold JSON are decoded and walked
too (MCP tool results very often carry JSON as text), so a secret inside
`{"content":[{"text":"{\\"key\\": \\"AKIA…\\"}"}]}` has its own path.

A path is a tuple of dict keys and list indices. `JSON` marks the step into a decoded
JSON string: `("result", "content", 0, "text", JSON, "key")`.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any, Final

from mcp_types import JSONRPCMessage, JSONRPCNotification, JSONRPCRequest, JSONRPCResponse


class _JsonMarker:
    """The path step into a string that holds JSON."""

    _instance: _JsonMarker | None = None

    def __new__(cls) -> _JsonMarker:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "JSON"


JSON: Final = _JsonMarker()

PathElement = str | int | _JsonMarker
Path = tuple[PathElement, ...]

# Values of these keys are protocol structure, not text anyone reads: skipping them
# keeps detectors off "text", "object", "application/json" and base64 blobs.
_STRUCTURAL_KEYS: Final = frozenset(
    {
        "_meta",
        "jsonrpc",
        "type",
        "mimeType",
        "role",
        "protocolVersion",
        "blob",
        "$schema",
        "$ref",
        "$id",
        "format",
        "cursor",
        "nextCursor",
        "progressToken",
        "level",
        "resultType",
        "cacheScope",
        "mode",
        "action",
        "stopReason",
        "includeContext",
    }
)
# Values under these keys are the peers' own data (tool arguments, structured results, log
# payloads): every key inside is content, even one that happens to be called "type".
_FREEFORM_KEYS: Final = frozenset({"arguments", "structuredContent", "data"})
_NO_SKIP: Final = frozenset({"_meta"})
_BINARY_CONTENT_TYPES: Final = frozenset({"image", "audio"})
_CONTENT_BLOCK_TYPES: Final = frozenset({"text", "image", "audio", "resource", "resource_link"})
MAX_JSON_DECODE_DEPTH: Final = 3
"""How many levels of JSON-inside-a-string are decoded (a bound against decode bombs)."""


@dataclass(frozen=True, slots=True)
class TextItem:
    """One readable string and where it lives in the message."""

    path: Path
    text: str


def payload_root(message: JSONRPCMessage) -> tuple[str, dict[str, Any]] | None:
    """The part of a message that carries content: `params` or `result` (errors: `error`)."""
    if isinstance(message, JSONRPCRequest | JSONRPCNotification):
        return ("params", message.params) if message.params else None
    if isinstance(message, JSONRPCResponse):
        return "result", message.result
    return "error", message.error.model_dump(exclude_none=True)


def extract(message: JSONRPCMessage) -> list[TextItem]:
    """Every readable string in the message, with its path from the envelope."""
    root = payload_root(message)
    if root is None:
        return []
    key, value = root
    items: list[TextItem] = []
    _walk(value, (key,), items, 0, _STRUCTURAL_KEYS)
    return items


def extract_value(value: Any, prefix: Path = ()) -> list[TextItem]:
    """Like `extract`, for a bare JSON value (a tool definition, an arguments object)."""
    items: list[TextItem] = []
    _walk(value, prefix, items, 0, _STRUCTURAL_KEYS)
    return items


def _walk(value: Any, path: Path, out: list[TextItem], json_depth: int, skip: frozenset[str]) -> None:
    # Recursion depth is bounded by the limits inspector, which runs before anything else.
    if isinstance(value, str):
        decoded = _maybe_json(value) if json_depth < MAX_JSON_DECODE_DEPTH else None
        if decoded is None:
            out.append(TextItem(path, value))
        else:  # JSON inside a string is data, whatever its keys are called
            _walk(decoded, (*path, JSON), out, json_depth + 1, _NO_SKIP)
    elif isinstance(value, dict):
        kind = value.get("type")  # a schema's `properties` may hold a parameter called "type" (a dict)
        binary = skip is _STRUCTURAL_KEYS and isinstance(kind, str) and kind in _BINARY_CONTENT_TYPES
        for key, child in value.items():
            if key in skip or (binary and key == "data"):
                continue
            if key == "properties" and skip is _STRUCTURAL_KEYS and isinstance(child, dict):
                # A JSON schema's properties: the keys name parameters ("type", "format", "mode"), so none is
                # skipped as structure; a description hidden under one must still be read.
                for name, schema in child.items():
                    _walk(schema, (*path, key, name), out, json_depth, skip)
                continue
            _walk(child, (*path, key), out, json_depth, _NO_SKIP if _freeform(key, child) else skip)
    elif isinstance(value, list):
        for index, child in enumerate(value):
            _walk(child, (*path, index), out, json_depth, skip)


def _freeform(key: str, child: Any) -> bool:
    if key in _FREEFORM_KEYS:
        return True
    # An elicitation result's `content` is the user's form data; a message's `content` is a block.
    return key == "content" and isinstance(child, dict) and not (
        isinstance(child.get("type"), str) and child["type"] in _CONTENT_BLOCK_TYPES
    )


def _maybe_json(text: str) -> dict[str, Any] | list[Any] | None:
    """Decode a string that is a JSON object or array; None for anything else."""
    stripped = text.strip()
    if len(stripped) < 2 or (stripped[0], stripped[-1]) not in (("{", "}"), ("[", "]")):
        return None
    try:
        decoded = json.loads(stripped)
    except (ValueError, RecursionError):
        return None
    return decoded if isinstance(decoded, dict | list) and decoded else None


def format_path(path: Path) -> str:
    """`$.result.content[0].text<json>.key` — the form used in findings and audit records."""
    parts = ["$"]
    for element in path:
        if isinstance(element, int):
            parts.append(f"[{element}]")
        elif element is JSON:
            parts.append("<json>")
        else:
            parts.append(f".{element}")
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class Patch:
    """Replace `span` of the string at `path` with `replacement`, or remove the element at `path`."""

    path: Path
    replacement: str | None = None
    span: tuple[int, int] | None = None
    remove: bool = False


def apply_patches(message: JSONRPCMessage, patches: list[Patch]) -> JSONRPCMessage:
    """A copy of `message` with every patch applied; the original is left untouched.

    Spans within one string are applied right to left so earlier offsets stay valid;
    list removals run last, highest index first, for the same reason.
    """
    if not patches:
        return message
    data = copy.deepcopy(message.model_dump(by_alias=True, exclude_unset=True))
    strings: dict[Path, list[Patch]] = {}
    removals: list[Patch] = []
    for patch in patches:
        (removals if patch.remove else strings.setdefault(patch.path, [])).append(patch)
    for path, group in strings.items():
        _patch_string(data, path, group)
    for path in sorted({p.path for p in removals}, reverse=True):  # two inspectors may hide the same entry
        _remove(data, path)
    return type(message).model_validate(data)


def _patch_string(root: Any, path: Path, patches: list[Patch]) -> None:
    if JSON in path:
        split = path.index(JSON)
        outer, inner = path[:split], path[split + 1 :]
        container, key = _locate(root, outer)
        decoded = json.loads(container[key])
        _patch_string(decoded, inner, patches)
        container[key] = json.dumps(decoded, ensure_ascii=False)
        return
    container, key = _locate(root, path)
    text: str = container[key]
    whole = [p for p in patches if p.span is None]
    if whole:
        container[key] = whole[0].replacement or ""
        return
    for (start, end), replacement in reversed(_merged_spans(patches)):
        text = text[:start] + replacement + text[end:]
    container[key] = text


def _merged_spans(patches: list[Patch]) -> list[tuple[tuple[int, int], str]]:
    """Spans in order, overlapping ones joined (two detectors can claim the same characters: a
    secret inside a URL that also holds an email); a joined span takes the replacement of its
    widest part, which names what most of it was."""
    merged: list[tuple[tuple[int, int], str, int]] = []
    for patch in sorted(patches, key=lambda p: p.span or (0, 0)):
        start, end = patch.span or (0, 0)
        replacement = patch.replacement or ""
        if merged and start < merged[-1][0][1]:
            (first, last), kept, width = merged[-1]
            if end - start > width:
                kept, width = replacement, end - start
            merged[-1] = ((first, max(last, end)), kept, width)
        else:
            merged.append(((start, end), replacement, end - start))
    return [(span, replacement) for span, replacement, _ in merged]


def _remove(root: Any, path: Path) -> None:
    container, key = _locate(root, path)
    del container[key]


def _locate(root: Any, path: Path) -> tuple[Any, Any]:
    """The container holding the last path element, and that element."""
    node = root
    for element in path[:-1]:
        node = node[element]
    return node, path[-1]
