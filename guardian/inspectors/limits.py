"""Message limits: size, JSON nesting depth, and the length of any one string.

These bound the work every later inspector does, so they run first and inline. Size
is the wire size when the transport knows it; otherwise it is estimated during the
same walk that measures depth (string lengths plus a byte per node), which is within a
few percent of the JSON size for text-heavy MCP messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from guardian.content import payload_root
from guardian.decision import Action, Finding
from guardian.events import Event
from guardian.inspector import EveryMessage


@dataclass(frozen=True, slots=True)
class Limits:
    max_message_bytes: int = 4 * 1024 * 1024
    max_depth: int = 64
    max_string_length: int = 1024 * 1024


class LimitsInspector(EveryMessage):
    """Blocks messages that exceed the configured limits, in both directions."""

    name = "limits"

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()

    def check(self, event: Event) -> list[Finding]:
        root = payload_root(event.message)
        if root is None:
            return []
        limits = self.limits
        depth, longest, estimate = measure(root[1], limits.max_depth)
        size = event.size if event.size is not None else estimate
        findings = []
        if size > limits.max_message_bytes:
            findings.append(self._finding("size", f"message exceeds {limits.max_message_bytes} bytes"))
        if depth > limits.max_depth:
            findings.append(self._finding("depth", f"JSON nesting exceeds depth {limits.max_depth}"))
        if longest > limits.max_string_length:
            findings.append(
                self._finding("string_length", f"a string exceeds {limits.max_string_length} characters")
            )
        return findings

    def _finding(self, kind: str, message: str) -> Finding:
        return Finding(self.name, kind, message, action=Action.BLOCK)


def measure(value: Any, depth_cap: int) -> tuple[int, int, int]:
    """(nesting depth, longest string, estimated bytes), without recursion.

    The walk stops descending below `depth_cap + 1`, so a hostile payload costs no
    more than the cap allows.
    """
    max_depth = 0
    longest = 0
    estimate = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        estimate += 2
        if isinstance(node, str):
            length = len(node)
            estimate += length
            longest = max(longest, length)
            continue
        if isinstance(node, dict):
            children: Any = node.values()
            estimate += sum(len(k) + 3 for k in node)
        elif isinstance(node, list):
            children = node
        else:
            estimate += 4
            continue
        max_depth = max(max_depth, depth)
        if depth > depth_cap:
            continue
        stack.extend((child, depth + 1) for child in children)
    return max_depth, longest, estimate
