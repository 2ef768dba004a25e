"""Findings (what an inspector saw) and decisions (what the gateway does about a message)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from mcp_types import JSONRPCError, JSONRPCMessage, RequestId

from guardian import errors
from guardian.content import Patch, Path, format_path


class Action(IntEnum):
    """Ordered by severity, so the strictest of several findings is simply `max()`."""

    ALLOW = 0
    WARN = 1
    REDACT = 2
    BLOCK = 3

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing an inspector noticed, and the action it asks for.

    `message` is shown to the client in a block reason, so it names the problem and
    never echoes the content; `excerpt` (for the audit log) is already redacted.
    """

    detector: str
    kind: str
    message: str
    action: Action = Action.BLOCK
    score: float = 1.0
    path: Path | None = None
    span: tuple[int, int] | None = None
    excerpt: str | None = None
    replacement: str | None = None
    remove: bool = False
    """For REDACT: drop the list element at `path` (a denied tool in `tools/list`)."""
    monitor: bool = False
    """Recorded in monitor mode: the action was not enforced."""
    error_code: int | None = None
    """For BLOCK: the JSON-RPC code to answer with instead of BLOCKED (e.g. `errors.RATE_LIMITED`)."""
    error_data: Mapping[str, Any] | None = None
    """With `error_code`: extra keys for `error.data.guardian` (e.g. `retry_after`)."""

    def patch(self) -> Patch | None:
        if self.action is not Action.REDACT or self.path is None:
            return None
        return Patch(self.path, self.replacement, self.span, self.remove)

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "detector": self.detector,
            "kind": self.kind,
            "action": str(self.action),
            "score": self.score,
            "message": self.message,
        }
        if self.path is not None:
            record["path"] = format_path(self.path)
        if self.span is not None:
            record["span"] = list(self.span)
        if self.excerpt is not None:
            record["excerpt"] = self.excerpt
        if self.monitor:
            record["monitor"] = True
        return record

    @property
    def reason(self) -> str:
        return f"{self.detector}: {self.message}"


@dataclass(slots=True)
class Decision:
    """The gateway's verdict on one message: strictest finding wins."""

    action: Action = Action.ALLOW
    findings: list[Finding] = field(default_factory=list)
    patched: JSONRPCMessage | None = None
    """For REDACT: the message to forward instead of the original."""
    event_id: str | None = None
    """Correlates the client-visible error with the audit record."""
    latencies: dict[str, float] | None = None
    """Seconds each inspector took on this message (for the audit record)."""

    @property
    def reasons(self) -> list[str]:
        seen: dict[str, None] = {}
        for finding in self.findings:
            if finding.action >= Action.REDACT and not finding.monitor:
                seen.setdefault(finding.reason, None)
        return list(seen)

    def block_error(self, request_id: RequestId, message: str = "blocked by gateway policy") -> JSONRPCError:
        """The JSON-RPC error that stands in for a blocked message: stable code, reasons, audit id."""
        data: dict[str, Any] = {"decision": "block", "reasons": self.reasons, "request_id": self.event_id}
        code = errors.BLOCKED
        blocking = [f for f in self.findings if f.action is Action.BLOCK]
        own = blocking[0].error_code if blocking else None
        if own is not None and all(f.error_code == own for f in blocking):
            # Every block asks for the same code of its own (a rate limit): that, not BLOCKED, tells the
            # client what to do (wait `retry_after`); a policy block alongside keeps the generic answer.
            code, message = own, blocking[0].message
            extra = {k: v for f in blocking for k, v in (f.error_data or {}).items()}
            data = {**extra, **data}
        return errors.error_response(request_id, code, message, {"guardian": data})

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "decision": str(self.action),
            "findings": [f.to_dict() for f in self.findings],
            "event_id": self.event_id,
        }
        if self.latencies:
            record["latency_ms"] = {name: round(s * 1000, 3) for name, s in self.latencies.items()}
        return record


ALLOW = Decision()
"""The shared verdict for the common case; never mutate it."""
