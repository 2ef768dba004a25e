"""Prometheus metrics for one gateway: what was decided, what was found, how long it took.

Each `Metrics` owns its own `CollectorRegistry`, not prometheus_client's global one:
several `Guardian` objects can live in one process (tests, embedding), and each serves
only its own numbers at its `/metrics`.

Label values never come from what a client or upstream sends. A method outside the
known MCP set counts as `other`; tool names, URIs, identities and message text are
never labels (they would leak content into dashboards and let a caller grow the series
count without bound). Detector names and finding kinds come from our own code (and from
inspectors the embedding code registers); they are capped all the same, as a backstop.

The hot path (`observe`, once per message) looks its label children up in plain dicts
keyed by already-bounded values, so a message costs a few dict lookups and one counter
increment and histogram observation (see bench/bench_metrics.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from guardian.decision import Action, Decision, Finding
from guardian.pipeline import DETECTOR_ERROR, TIMED_OUT

OTHER: Final = "other"

MCP_METHODS: Final = frozenset({
    "initialize", "ping", "logging/setLevel", "completion/complete", "server/discover",
    "tools/list", "tools/call", "prompts/list", "prompts/get",
    "resources/list", "resources/templates/list", "resources/read", "resources/subscribe", "resources/unsubscribe",
    "roots/list", "sampling/createMessage", "elicitation/create", "subscriptions/listen",
    "tasks/get", "tasks/list", "tasks/result", "tasks/cancel",
    "notifications/initialized", "notifications/cancelled", "notifications/progress", "notifications/message",
    "notifications/tools/list_changed", "notifications/prompts/list_changed",
    "notifications/resources/list_changed", "notifications/resources/updated",
    "notifications/roots/list_changed", "notifications/elicitation/complete", "notifications/tasks/status",
    "notifications/subscriptions/acknowledged",
})  # fmt: skip
"""MCP methods (2024-11-05 through 2025-11-25 and the SDK's drafts) that get their own label value."""

TRANSPORTS: Final = frozenset({"stdio", "sse", "streamable-http", "library"})

DURATION_BUCKETS: Final = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
)  # fmt: skip
"""Seconds: the regex gates take tens of microseconds, model detectors on large results up to a second."""

MAX_FINDING_SERIES: Final = 1000
"""Distinct (detector, kind) pairs before further new pairs count as (other, other)."""

_ACTIONS: Final = {action: str(action) for action in Action}
_TIMED_OUT: Final = f"inspector {TIMED_OUT}"


class Metrics:
    """The gateway's metrics in a registry of their own; `exposition()` renders them for a scrape."""

    def __init__(self, *, process: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        if process:  # the usual process_*/python_* series, as the global registry would have them
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        registry = self.registry
        self._messages = Counter(
            "guardian_messages", "Messages inspected, by direction, MCP method and decision.",
            ["direction", "method", "action"], registry=registry,
        )
        self._findings = Counter(
            "guardian_findings", "Findings raised by inspectors, by detector and kind.",
            ["detector", "kind"], registry=registry,
        )
        self._duration = Histogram(
            "guardian_pipeline_duration_seconds", "Time to inspect one message and decide, by direction.",
            ["direction"], buckets=DURATION_BUCKETS, registry=registry,
        )
        self._detector_errors = Counter(
            "guardian_detector_errors", "Inspector hooks that raised (error) or ran out of time (timeout).",
            ["inspector", "reason"], registry=registry,
        )
        self._sessions_active = Gauge(
            "guardian_sessions_active", "Sessions being relayed now, by downstream transport.",
            ["transport"], registry=registry,
        )
        self._sessions = Counter(
            "guardian_sessions", "Sessions opened, by downstream transport.", ["transport"], registry=registry,
        )
        self._upstream_failures = Counter(
            "guardian_upstream_failures", "Sessions the upstream could not serve: it failed to start, "
            "failed, or closed the connection.", registry=registry,
        )  # fmt: skip
        # Label children, resolved once: `.labels()` builds and hashes a tuple under a lock on every call.
        self._message_children: dict[tuple[str, str, Action], Counter] = {}
        self._duration_children: dict[str, Histogram] = {}
        self._finding_children: dict[tuple[str, str], Counter] = {}
        self._error_children: dict[tuple[str, str], Counter] = {}

    def observe(self, direction: str, method: str | None, decision: Decision, seconds: float) -> None:
        """One message's decision; `seconds` is the time the pipeline took on it."""
        if method not in MCP_METHODS:
            method = OTHER
        action = decision.action
        key = (direction, method, action)
        counter = self._message_children.get(key)
        if counter is None:
            counter = self._message_children[key] = self._messages.labels(direction, method, _ACTIONS[action])
        counter.inc()
        histogram = self._duration_children.get(direction)
        if histogram is None:
            histogram = self._duration_children[direction] = self._duration.labels(direction)
        histogram.observe(seconds)
        if decision.findings:
            self._observe_findings(decision.findings)

    def _observe_findings(self, findings: Sequence[Finding]) -> None:
        children = self._finding_children
        for finding in findings:
            key = (finding.detector, finding.kind)
            counter = children.get(key)
            if counter is None:
                counter = self._new_child(children, key, self._findings, (OTHER, OTHER))
            counter.inc()
            if finding.kind == DETECTOR_ERROR:
                reason = "timeout" if finding.message.startswith(_TIMED_OUT) else "error"
                self._detector_error(finding.detector, reason)

    def _detector_error(self, inspector: str, reason: str) -> None:
        key = (inspector, reason)
        counter = self._error_children.get(key)
        if counter is None:
            counter = self._new_child(self._error_children, key, self._detector_errors, (OTHER, reason))
        counter.inc()

    @staticmethod
    def _new_child(
        children: dict[tuple[str, str], Counter], key: tuple[str, str], parent: Counter, overflow: tuple[str, str]
    ) -> Counter:
        """The child for a label pair not seen before; past the cap, the shared overflow pair's."""
        if len(children) >= MAX_FINDING_SERIES:
            key = overflow
            if key in children:
                return children[key]
        child = children[key] = parent.labels(*key)
        return child

    def session_opened(self, transport: str) -> None:
        transport = transport if transport in TRANSPORTS else OTHER
        self._sessions.labels(transport).inc()
        self._sessions_active.labels(transport).inc()

    def session_closed(self, transport: str) -> None:
        self._sessions_active.labels(transport if transport in TRANSPORTS else OTHER).dec()

    def upstream_failed(self) -> None:
        self._upstream_failures.inc()

    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """The scrape body and its content type: the text format, or OpenMetrics when `accept` asks."""
        encode, content_type = choose_encoder(accept or "")
        return encode(self.registry), content_type
