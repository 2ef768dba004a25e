"""Embedding MCP Guardian in your own code: plugin mode and a custom inspector.

Run it::

    python examples/embed.py

It builds a `Guardian` from a config mapping (the same keys as a config file), adds two
inspectors of its own, and asks the gateway for its decision on a handful of MCP messages
with `await guardian.inspect(message, direction=..., request=...)`. Nothing is relayed and
no server is started: this is "plugin mode", for hosts that already have the messages in
hand (an agent framework, an MCP client, a proxy of your own).

An inspector is any object with a `name` and one or more hook methods, `request`,
`response` or `notification`, each taking an `Event` and returning findings. A hook may
be a plain function (cheap checks, run inline first) or a coroutine function (run
concurrently with the other async hooks, each under its own timeout). Inspectors never
modify a message: they report findings, and the pipeline turns the strictest finding
into a decision - allow, warn, redact (forward a patched copy) or block.

To serve the same gateway over HTTP instead, give the config an `upstream_mcp_server`
and run `guardian.asgi_app()` with any ASGI server, e.g.
``uvicorn.run(guardian.asgi_app(), host="127.0.0.1", port=8080)``.
"""

from __future__ import annotations

import json
import re
from typing import Any

import anyio

from guardian import Action, Decision, Direction, Event, Finding, Guardian

# --- two inspectors of our own ---------------------------------------------------------------------


class NoProductionHosts:
    """Refuse tool calls whose arguments mention a production host (a sync, inline check)."""

    name = "no-production-hosts"
    PATTERN = re.compile(r"\bprod\.internal\b")

    def request(self, event: Event) -> list[Finding]:
        if event.method != "tools/call":
            return []
        # `event.texts()` is every readable string in the message with its JSON path,
        # extracted once and shared by all inspectors (nested JSON strings included).
        return [
            Finding(self.name, "production_host", "production hosts are off limits", path=item.path)
            for item in event.texts()
            if self.PATTERN.search(item.text)
        ]


class EmailRedactor:
    """Redact e-mail addresses in everything servers send back (an async hook)."""

    name = "email-redactor"
    PATTERN = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")

    async def response(self, event: Event) -> list[Finding]:
        if event.direction is not Direction.SERVER_TO_CLIENT:
            return []
        return [
            Finding(
                self.name,
                "email",
                "e-mail address redacted",
                action=Action.REDACT,
                path=item.path,
                span=match.span(),
                replacement="[EMAIL]",
            )
            for item in event.texts()
            for match in self.PATTERN.finditer(item.text)
        ]


# --- the gateway --------------------------------------------------------------------------------------

CONFIG: dict[str, Any] = {
    "security_profile": "standard",
    "security": {
        "tools": {"deny": ["delete_*"]},  # refused on tools/call, hidden from tools/list
        "inspectors": {
            "email-redactor": {"timeout": 2},  # per-inspector settings, by name
            "pii": {"enabled": False},  # the built-in PII detector would redact the emails too; off to show ours
        },
    },
    "monitoring": {"log_level": "WARNING"},
}


def show(label: str, decision: Decision) -> None:
    """One line per decision: the action, and the reasons a blocked/redacted sender would see."""
    reasons = f" ({'; '.join(decision.reasons)})" if decision.reasons else ""
    print(f"{label}: {decision.action}{reasons}")


def call(id: int, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}


async def main() -> None:
    guardian = Guardian(CONFIG)  # also: Guardian("guardian.yaml") or Guardian.from_file(path)
    guardian.add_inspector(NoProductionHosts())
    guardian.add_inspector(EmailRedactor())

    # 1. A benign tool call is allowed.
    show("echo call", await guardian.inspect(call(1, "echo", {"text": "hello"}), direction="client_to_server"))

    # 2. The config denies delete_* tools.
    show("delete_repo call", await guardian.inspect(call(2, "delete_repo", {"repo": "acme/site"})))

    # 3. Our own inspector blocks this one (the host hides inside a JSON string argument).
    payload = json.dumps({"target": "db1.prod.internal", "query": "select 1"})
    show("query call", await guardian.inspect(call(3, "run_query", {"request": payload})))

    # 4. Responses are inspected knowing the request they answer: a tools/list result
    #    loses the denied tools; the decision carries the patched message to forward.
    list_request = {"jsonrpc": "2.0", "id": 4, "method": "tools/list"}
    listing = {
        "jsonrpc": "2.0",
        "id": 4,
        "result": {
            "tools": [
                {"name": name, "description": f"The {name} tool", "inputSchema": {"type": "object"}}
                for name in ("echo", "delete_repo", "search")
            ]
        },
    }
    decision = await guardian.inspect(listing, direction="server_to_client", request=list_request)
    show("tools/list result", decision)
    assert decision.patched is not None
    print("  tools forwarded:", ", ".join(tool["name"] for tool in decision.patched.result["tools"]))  # type: ignore[union-attr]

    # 5. An async inspector redacts e-mail addresses in a tool result.
    result = {
        "jsonrpc": "2.0",
        "id": 5,
        "result": {"content": [{"type": "text", "text": "Contact jane.doe@example.com or ops@example.org."}]},
    }
    decision = await guardian.inspect(result, direction="server_to_client", request=call(5, "lookup", {}))
    show("lookup result", decision)
    assert decision.patched is not None
    print("  forwarded text:", decision.patched.result["content"][0]["text"])  # type: ignore[union-attr]
    for finding in decision.findings:
        print("  finding:", json.dumps(finding.to_dict(), sort_keys=True))


if __name__ == "__main__":
    anyio.run(main)
