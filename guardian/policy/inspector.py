"""The access-policy inspector: applies a policy file to client requests and filters listings.

It runs *after* the detectors, through the pipeline's `review(event, findings)` hook, so
that rules can say "deny when detector X found Y" about the same message. What it does:

- A client request (tools/call, prompts/get, resources/read, ...) that the policy denies
  is blocked with the rule's reason; `require-approval` blocks with "approval required"
  until the gateway can ask a human.
- A `tools/list`, `prompts/list`, `resources/list` or `resources/templates/list` result
  loses the entries the caller may not use (REDACT findings with `remove=True`), so a
  model is never shown what it would be refused.
- With `reload_interval` > 0 and a policy file, `watch()` (run it in the gateway's task
  group) reloads the file when it changes; a broken edit keeps the old policy.

Findings recorded in monitor mode are not shown to the policy: monitoring a detector
must not enforce it through the back door.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import anyio
import anyio.to_thread

from guardian.decision import Action, Finding
from guardian.errors import ConfigError
from guardian.events import Event, SessionInfo
from guardian.inspectors.options import Options
from guardian.policy.engine import CompiledPolicy
from guardian.policy.loader import PolicyError, build_policy
from guardian.policy.model import LIST_METHODS, Effect, Request, SubjectLike, Verdict, subject_of
from guardian.policy.reload import PolicySource

logger = logging.getLogger("guardian.policy")

SubjectResolver = Callable[[SessionInfo], SubjectLike]
Clock = Callable[[], datetime]

_TARGET_PATHS = {"tool": ("params", "name"), "prompt": ("params", "name"), "resource": ("params", "uri")}


class AccessPolicyInspector:
    """Options: `file` (the policy YAML; required unless `policy` is given), `policy` (the
    policy inline, as a mapping; no reload), `reload_interval` (seconds between checks of
    `file` for changes, default 2; 0 turns reloading off), `action` (`block`, the default,
    enforces; `warn` records what the policy would deny and hide, and enforces nothing)."""

    name = "access_policy"

    def __init__(
        self,
        policy: CompiledPolicy,
        *,
        source: PolicySource | None = None,
        reload_interval: float = 2.0,
        action: Action = Action.BLOCK,
        subject_resolver: SubjectResolver = subject_of,
        clock: Clock | None = None,
    ) -> None:
        if action not in (Action.BLOCK, Action.WARN):
            raise ValueError("action must be BLOCK or WARN")
        self._policy = policy
        self.source = source
        self.reload_interval = reload_interval
        self.action = action
        self.subject_resolver = subject_resolver
        self.clock = clock
        self._subjects: dict[int, tuple[SessionInfo, SubjectLike]] = {}

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **kwargs: Any) -> AccessPolicyInspector:
        """Load `path` (raising `PolicyError` naming every problem) and watch it for changes."""
        source = PolicySource(path)
        return cls(source.load(), source=source, **kwargs)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> AccessPolicyInspector:
        read = Options(cls.name, options)
        action = read.action("action", Action.BLOCK)
        if action not in (Action.BLOCK, Action.WARN):
            read.problem("action", f"{str(action)!r}: the access policy can block or warn")
            action = Action.BLOCK
        interval = read.number("reload_interval", 2.0, low=0, high=86400)
        path = read.raw("file", None)
        inline = read.mapping("policy") if read.has("policy") else None
        if path is not None and not isinstance(path, str):
            read.problem("file", f"{path!r} is not a file path")
        if path is None and inline is None:
            read.problem("file", "required: the access policy file (or an inline `policy`)")
        if path is not None and inline is not None:
            read.problem("policy", "give `file` or `policy`, not both")
        read.done()
        try:
            if isinstance(path, str):
                return cls.from_file(path, reload_interval=interval, action=action)
            policy = CompiledPolicy(build_policy(inline, "inline policy"))
        except PolicyError as exc:
            key = "file" if path is not None else "policy"
            raise ConfigError([f"$.security.inspectors.{cls.name}.{key}: {p}" for p in exc.problems]) from None
        return cls(policy, reload_interval=0, action=action)

    # --- the policy in force ----------------------------------------------------------------------

    @property
    def policy(self) -> CompiledPolicy:
        return self._policy

    def replace(self, policy: CompiledPolicy) -> None:
        """Put `policy` in force; messages already being judged finish under the old one."""
        self._policy = policy

    def reload_now(self) -> bool:
        """Check the file once; True when a changed, valid policy was put in force."""
        if self.source is None:
            return False
        policy = self.source.poll()
        if policy is None:
            return False
        self.replace(policy)
        return True

    async def watch(self) -> None:
        """Reload on change until cancelled. Start it in the gateway's task group."""
        if self.source is None or self.reload_interval <= 0:
            return
        while True:
            await anyio.sleep(self.reload_interval)
            try:
                # Reading and compiling a large policy must not stall the event loop.
                await anyio.to_thread.run_sync(self.reload_now)
            except Exception:  # a reload bug must not take the gateway down; the old policy stays
                logger.exception("access policy %s: reload failed, keeping the previous policy", self.source.path)

    # --- evaluation -------------------------------------------------------------------------------

    def evaluate(self, event: Event, findings: Sequence[Finding] = ()) -> Verdict | None:
        """The policy's verdict on a client request (None for anything else); see the module doc."""
        request = Request.from_event(event)
        return self._verdict(event, request, findings) if request is not None else None

    def review(self, event: Event, findings: Sequence[Finding]) -> list[Finding]:
        """The pipeline hook that runs after every other inspector of the event."""
        request = Request.from_event(event)
        if request is not None:
            verdict = self._verdict(event, request, findings)
            return [] if verdict.allowed else [self._deny(request, verdict)]
        if event.method in LIST_METHODS and event.result is not None:
            return self.hide(event)
        return []

    def hide(self, event: Event) -> list[Finding]:
        """REDACT-remove findings for the listing entries the caller may not use."""
        hidden = self._policy.hidden_entries(event, self.subject(event.session), self._now())
        enforce = self.action is Action.BLOCK
        return [
            Finding(
                self.name,
                "hidden",
                "entry hidden from listing by access policy",
                action=Action.REDACT if enforce else Action.WARN,
                path=("result", key, index),
                excerpt=f"rule={verdict.rule or 'default'}",
                remove=enforce,
            )
            for key, index, verdict in hidden
        ]

    def _verdict(self, event: Event, request: Request, findings: Sequence[Finding]) -> Verdict:
        return self._policy.evaluate(self.subject(event.session), request, _visible(findings, self.name), self._now())

    def _deny(self, request: Request, verdict: Verdict) -> Finding:
        approval = verdict.effect is Effect.REQUIRE_APPROVAL
        target = request.target
        return Finding(
            self.name,
            "approval_required" if approval else "denied",
            f"approval required: {verdict.reason}" if approval else verdict.reason,
            action=self.action,
            path=_TARGET_PATHS[target[0]] if target is not None and request.method != "completion/complete" else None,
            excerpt=f"rule={verdict.rule or 'default'}",
        )

    def subject(self, session: SessionInfo) -> SubjectLike:
        """The caller of `session`, resolved once per session object (sessions are immutable)."""
        hit = self._subjects.get(id(session))
        if hit is not None and hit[0] is session:  # the entry holds the session, so its id is not reused
            return hit[1]
        subject = self.subject_resolver(session)
        if len(self._subjects) >= _SUBJECT_CACHE:
            self._subjects.clear()
        self._subjects[id(session)] = (session, subject)
        return subject

    def _now(self) -> datetime | None:
        return self.clock() if self.clock is not None else None


_SUBJECT_CACHE = 4096


def _visible(findings: Sequence[Finding], own: str) -> Sequence[Finding]:
    if not findings:
        return findings
    return [f for f in findings if not f.monitor and f.detector != own]
