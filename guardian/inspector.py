"""The inspector (hook) contract.

An inspector is an ordinary object with a `name` and one or more hook methods, one per
kind of event, each taking the `Event` and returning findings:

    class NoDrop:
        name = "no-drop"
        def request(self, event: Event) -> list[Finding]:
            if event.method == "tools/call" and event.target == "drop_table":
                return [Finding(self.name, "denied", "tool is not allowed")]
            return []

Hooks are `request`, `response` (results and errors), and `notification`; an inspector
that decides from other inspectors' findings (the access policy) also has
`review(event, findings)`, run after all the others on the same message. A hook may be
a plain function (cheap checks run inline, with no scheduling cost) or a coroutine
function (run concurrently with the other async hooks, each under its own timeout).
The pipeline looks the hooks up once, when the inspector is added, not per message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, runtime_checkable

from guardian.decision import Finding
from guardian.events import Event, Kind

HookResult = Sequence[Finding] | None
Hook = Callable[[Event], HookResult | Awaitable[HookResult]]

HOOK_NAMES: dict[Kind, str] = {
    Kind.REQUEST: "request",
    Kind.RESPONSE: "response",
    Kind.ERROR: "response",
    Kind.NOTIFICATION: "notification",
}


@runtime_checkable
class Inspector(Protocol):
    """Anything with a `name`; hooks are optional methods named in `HOOK_NAMES`."""

    name: str


class EveryMessage:
    """Base for inspectors that check every kind of message the same way: implement `check`."""

    name: str

    def check(self, event: Event) -> list[Finding]:
        raise NotImplementedError

    def request(self, event: Event) -> list[Finding]:
        return self.check(event)

    def response(self, event: Event) -> list[Finding]:
        return self.check(event)

    def notification(self, event: Event) -> list[Finding]:
        return self.check(event)
