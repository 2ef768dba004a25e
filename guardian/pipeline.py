"""Inspectors → findings → decision, for one event.

Synchronous hooks run inline first (they are the cheap gates: limits, allow-lists);
if one of them blocks, the expensive async hooks are not run at all. Async hooks run
concurrently, each under its own timeout. A CPU-heavy synchronous detector (PII, a
classifier) sets `offload_above` (characters of text): on messages with more text than
that its hook runs in a worker thread, alongside the async hooks and under the same
timeout, so one large result neither stalls every other session on the event loop nor
escapes the hung-detector rule; small messages stay inline, where a thread hop would
cost more than the check. Last, `review(event, findings)` hooks (the access policy) see
what every other inspector found on the message and may add their own verdict.

A hook that raises or times out produces a `detector_error` finding that blocks (fail
closed, the default) or only warns (fail open), per inspector.
"""

from __future__ import annotations

import inspect
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from time import perf_counter
from typing import TYPE_CHECKING, Protocol, cast

import anyio

from guardian.content import apply_patches
from guardian.decision import ALLOW, Action, Decision, Finding
from guardian.events import Event
from guardian.inspector import HOOK_NAMES, HookResult, Inspector

if TYPE_CHECKING:
    from guardian.observability.metrics import Metrics

logger = logging.getLogger("guardian.pipeline")

SyncHook = Callable[[Event], HookResult]
AsyncHook = Callable[[Event], Awaitable[HookResult]]
ReviewHook = Callable[[Event, Sequence[Finding]], HookResult]

DETECTOR_ERROR = "detector_error"
"""The kind of the finding a hook that raised or timed out produces."""
TIMED_OUT = "timed out"
"""How a timeout is worded in that finding's message (`inspector timed out after 5s`); metrics
tell timeouts from other errors by it."""


@dataclass(frozen=True, slots=True)
class InspectorSettings:
    """How the pipeline runs one inspector; set from config per inspector name."""

    timeout: float = 5.0
    fail_closed: bool = True
    monitor: bool = False
    """Record what the inspector would do, enforce nothing (for rollout)."""


class _TracksRequests(Protocol):
    async def abandoned(self, event: Event) -> None: ...


@dataclass(frozen=True, slots=True)
class _Entry:
    name: str
    hook: SyncHook | AsyncHook | ReviewHook
    settings: InspectorSettings
    offload_above: int | None = None


class Pipeline:
    """Runs the inspectors that apply to an event and folds their findings into a decision."""

    def __init__(self, *, timed: bool = False, metrics: Metrics | None = None) -> None:
        self.timed = timed
        """Give every decision, allows included, its per-inspector latencies (audit of every message)."""
        self.metrics = metrics
        """Where every decision is counted (action, findings, time taken); None counts nothing."""
        self._inspectors: list[tuple[Inspector, InspectorSettings]] = []
        self._sync: dict[str, list[_Entry]] = {name: [] for name in set(HOOK_NAMES.values())}
        self._async: dict[str, list[_Entry]] = {name: [] for name in set(HOOK_NAMES.values())}
        self._abandon_hooks: list[_TracksRequests] = []
        self._review: list[_Entry] = []

    @property
    def inspectors(self) -> list[Inspector]:
        return [inspector for inspector, _ in self._inspectors]

    def add(self, inspector: Inspector, settings: InspectorSettings | None = None) -> None:
        """Register an inspector; its hooks are looked up now, not per message."""
        settings = settings or InspectorSettings()
        if not isinstance(getattr(inspector, "name", None), str):
            raise TypeError(f"inspector {inspector!r} needs a string `name`")
        if any(existing.name == inspector.name for existing, _ in self._inspectors):
            raise ValueError(f"an inspector named {inspector.name!r} is already registered")
        self._inspectors.append((inspector, settings))
        review = getattr(inspector, "review", None)
        if review is not None:
            self._review.append(_Entry(inspector.name, review, settings))
        if inspect.iscoroutinefunction(getattr(inspector, "abandoned", None)):
            self._abandon_hooks.append(cast(_TracksRequests, inspector))
        for hook_name in self._sync:
            hook = getattr(inspector, hook_name, None)
            if hook is None:
                continue
            is_async = inspect.iscoroutinefunction(hook)
            offload = None if is_async else getattr(inspector, "offload_above", None)
            entry = _Entry(inspector.name, hook, settings, offload)
            (self._async if is_async else self._sync)[hook_name].append(entry)

    async def abandon(self, event: Event) -> None:
        """Tell inspectors that track requests (rate limits) that this one will not be forwarded."""
        for inspector in self._abandon_hooks:
            await inspector.abandoned(event)

    async def run(self, event: Event) -> Decision:
        started = perf_counter()
        hook_name = HOOK_NAMES[event.kind]
        findings: list[Finding] = []
        latencies: dict[str, float] = {}
        async_entries = self._async[hook_name]
        text_size: int | None = None
        for entry in self._sync[hook_name]:
            if entry.offload_above is not None:
                if text_size is None:
                    text_size = sum(len(item.text) for item in event.texts())
                if text_size > entry.offload_above:
                    async_entries = [*async_entries, entry]
                    continue
            findings.extend(self._call_sync(entry, event, latencies))
        if async_entries and not _blocks(findings):
            if len(async_entries) == 1:
                findings.extend(await self._call_async(async_entries[0], event, latencies))
            else:
                results: list[list[Finding]] = [[] for _ in async_entries]

                async def run_one(index: int, entry: _Entry) -> None:
                    results[index] = await self._call_async(entry, event, latencies)

                async with anyio.create_task_group() as tg:
                    for index, entry in enumerate(async_entries):
                        tg.start_soon(run_one, index, entry)
                for result in results:
                    findings.extend(result)
        for entry in self._review:
            findings.extend(self._call_review(entry, event, findings, latencies))
        if not findings:
            decision = Decision(latencies=latencies) if self.timed else ALLOW
        else:
            decision = decide(event, findings)
            decision.latencies = latencies
        if self.metrics is not None:
            self.metrics.observe(event.direction, event.method, decision, perf_counter() - started)
        return decision

    def _call_sync(self, entry: _Entry, event: Event, latencies: dict[str, float]) -> list[Finding]:
        started = perf_counter()
        try:
            return _settle(entry, cast(SyncHook, entry.hook)(event))
        except Exception as exc:
            return [_error_finding(entry, f"failed: {type(exc).__name__}", exc)]
        finally:
            latencies[entry.name] = perf_counter() - started

    def _call_review(
        self, entry: _Entry, event: Event, findings: list[Finding], latencies: dict[str, float]
    ) -> list[Finding]:
        started = perf_counter()
        try:
            return _settle(entry, cast(ReviewHook, entry.hook)(event, tuple(findings)))
        except Exception as exc:
            return [_error_finding(entry, f"failed: {type(exc).__name__}", exc)]
        finally:
            latencies[entry.name] = perf_counter() - started

    async def _call_async(self, entry: _Entry, event: Event, latencies: dict[str, float]) -> list[Finding]:
        started = perf_counter()
        try:
            with anyio.fail_after(entry.settings.timeout):
                if entry.offload_above is not None:
                    # A timed-out thread cannot be stopped; it is abandoned and its result ignored.
                    hook = cast(SyncHook, entry.hook)
                    return _settle(entry, await anyio.to_thread.run_sync(hook, event, abandon_on_cancel=True))
                return _settle(entry, await cast(AsyncHook, entry.hook)(event))
        except TimeoutError as exc:
            return [_error_finding(entry, f"{TIMED_OUT} after {entry.settings.timeout:g}s", exc)]
        except Exception as exc:
            return [_error_finding(entry, f"failed: {type(exc).__name__}", exc)]
        finally:
            latencies[entry.name] = perf_counter() - started


def _settle(entry: _Entry, result: HookResult) -> list[Finding]:
    """The hook's findings as a list; anything but a sequence of `Finding` is the hook's error."""
    if not result:
        return []
    if not all(isinstance(f, Finding) for f in result):
        raise TypeError("a hook must return a sequence of Finding")
    if entry.settings.monitor:
        return [replace(f, action=Action.WARN, monitor=True) for f in result]
    return list(result)


def _error_finding(entry: _Entry, what: str, exc: BaseException) -> Finding:
    logger.warning("inspector %s %s", entry.name, what, exc_info=not isinstance(exc, TimeoutError))
    action = Action.BLOCK if entry.settings.fail_closed else Action.WARN
    finding = Finding(entry.name, DETECTOR_ERROR, f"inspector {what}", action=action)
    return replace(finding, action=Action.WARN, monitor=True) if entry.settings.monitor else finding


def _blocks(findings: list[Finding]) -> bool:
    return any(f.action is Action.BLOCK for f in findings)


def decide(event: Event, findings: list[Finding]) -> Decision:
    """Strictest finding wins; a redaction carries the patched copy of the message."""
    action = max(f.action for f in findings)
    decision = Decision(action=action, findings=findings, event_id=uuid.uuid4().hex[:16])
    if action is Action.REDACT:
        patches = [p for p in (f.patch() for f in findings) if p is not None]
        decision.patched = apply_patches(event.message, patches)
    return decision
