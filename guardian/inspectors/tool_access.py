"""Tool allow/deny lists from config (glob patterns), enforced on calls and on listings.

A denied tool is hidden from `tools/list` as well as refused on `tools/call`: a model
that never sees a tool is not tempted into calling it, and a rug-pulled listing cannot
reintroduce it. Deny wins over allow; an empty allow list allows everything not denied.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from functools import lru_cache

from guardian.decision import Action, Finding
from guardian.events import Direction, Event


class ToolAccessInspector:
    name = "tool_access"

    def __init__(self, allow: Sequence[str] = (), deny: Sequence[str] = ()) -> None:
        self._allow = compile_globs(allow)
        self._deny = compile_globs(deny)

    @lru_cache(maxsize=4096)  # noqa: B019 - inspectors live as long as the gateway
    def permits(self, tool: str) -> bool:
        if self._deny is not None and self._deny.fullmatch(tool):
            return False
        return self._allow is None or self._allow.fullmatch(tool) is not None

    def request(self, event: Event) -> list[Finding]:
        if event.direction is not Direction.CLIENT_TO_SERVER or event.method != "tools/call":
            return []
        tool = event.target
        if tool is not None and self.permits(tool):
            return []
        return [Finding(self.name, "tool_denied", "tool is not allowed by gateway policy", path=("params", "name"))]

    def response(self, event: Event) -> list[Finding]:
        listed = event.listed()
        if listed is None or listed[0] != "tools":
            return []
        return [
            Finding(
                self.name,
                "tool_hidden",
                "tool hidden from listing by gateway policy",
                action=Action.REDACT,
                path=("result", "tools", index),
                remove=True,
            )
            for index, tool in enumerate(listed[1])
            if not (isinstance(tool, dict) and isinstance(tool.get("name"), str) and self.permits(tool["name"]))
        ]


def compile_globs(patterns: Sequence[str]) -> re.Pattern[str] | None:
    """One regex matching any of the shell-style globs (case-sensitive, `*` crosses `/`); None for none."""
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))
