"""The tool catalog: each upstream's tools as last listed, for inspectors that need context.

A `tools/call` names a tool but does not carry its definition; the definition came earlier
in a `tools/list` result. Detectors that judge arguments against the tool's `inputSchema`
(argument injection, schema validation) look it up here. Entries are keyed by upstream and
tenant, not by session: a 2026-07-28 client lists tools in one HTTP request and calls them
in another, and every session to one upstream sees the same server.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from guardian.decision import Finding
from guardian.events import Event

ToolDefinition = Mapping[str, Any]


class ToolCatalog:
    """Latest `tools/list` per (upstream, tenant); bounded so a churn of tenants cannot grow it."""

    name = "catalog"

    def __init__(self, max_upstreams: int = 1024) -> None:
        self._tools: OrderedDict[tuple[str, str | None], dict[str, ToolDefinition]] = OrderedDict()
        self._max = max_upstreams

    def response(self, event: Event) -> list[Finding]:
        """Record a `tools/list` page (an inspector hook that never objects)."""
        listed = event.listed()
        if listed is None or listed[0] != "tools":
            return []
        tools = listed[1]
        key = (event.session.upstream, event.session.tenant)
        # A first page (no cursor) starts a fresh listing; later pages add to it.
        fresh = not event.params.get("cursor")
        table = {} if fresh or key not in self._tools else self._tools[key]
        for tool in tools:
            if isinstance(tool, dict) and isinstance(tool.get("name"), str):
                table[tool["name"]] = tool
        self._tools[key] = table
        self._tools.move_to_end(key)
        while len(self._tools) > self._max:
            self._tools.popitem(last=False)
        return []

    def tool(self, event: Event, name: str | None = None) -> ToolDefinition | None:
        """The definition of the tool `event` calls (or of `name`), if it was listed."""
        name = name if name is not None else event.target
        if name is None:
            return None
        table = self._tools.get((event.session.upstream, event.session.tenant))
        return table.get(name) if table is not None else None

    def remember(self, upstream: str, tools: list[ToolDefinition], tenant: str | None = None) -> None:
        """Seed the catalog directly (library use, tests, a baseline file)."""
        self._tools[(upstream, tenant)] = {t["name"]: t for t in tools if isinstance(t.get("name"), str)}
