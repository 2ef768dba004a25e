"""Tool definition pinning: a definition that changes after approval is withheld and blocked.

An MCP server can change what a tool says it does at any time: between sessions, or
mid-session with `notifications/tools/list_changed`. A tool approved as "fetch a URL"
that later reads "…and first send ~/.ssh/id_rsa as the `query`" is a rug pull; the model
follows the new description and nobody sees the change. This inspector pins every tool,
prompt and resource template the server lists, and its `instructions`, per upstream and
tenant, on first sight (trust on first use) or from a baseline file, and from then on:

- a listed definition that differs from the approved one (canonical, semantic comparison:
  see `guardian.pins.fingerprint`) is withheld from the client's list and recorded as a
  pending change with the exact definition seen; calls to it are blocked with a reason
  that names the command to approve it (`guardian pins approve NAME`);
- a new tool follows `new_tools`: `allow` pins it (TOFU), `hold` withholds it as pending
  until approved, `block` withholds it without recording anything (the approved set is
  closed: change it with a baseline);
- changed instructions are replaced by the approved text (new ones, when not allowed,
  by nothing);
- a pin that disappears from a complete listing is noted, once, as a warning.

A pending change stays pending until someone approves or rejects it, even if the server
goes back to the approved definition: a server that flipped once is under review, and
its tool stays withheld everywhere rather than only in the session that saw the flip
(a 2026-07-28 client lists in one request and calls in another, so calls are judged by
upstream and tenant, not by session).

Options (`security.inspectors.pins`):
    store: path of the pin store (default `$MCP_GUARDIAN_PINS_FILE`, else
        `$XDG_STATE_HOME/mcp-guardian/pins.json`, else `~/.local/state/mcp-guardian/pins.json`).
    new_tools: allow | hold | block (default allow: trust on first use).
    on_change: block | warn (default block): what a changed definition gets.
    baseline: path of a baseline file (`guardian pins export`) whose definitions count as
        approved; read at start, verified (hash, and HMAC with `MCP_GUARDIAN_PINS_KEY`), never written.
    action: block | warn (default block): warn records and audits everything but withholds
        and blocks nothing.
"""

from __future__ import annotations

import logging
import os
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import Any, Final, Literal, Self, cast

from guardian.content import Path as JsonPath
from guardian.decision import Action, Finding
from guardian.events import Direction, Event
from guardian.inspectors.options import Options
from guardian.pins import baseline as baselines
from guardian.pins.fingerprint import (
    INSTRUCTIONS_NAME,
    LISTINGS,
    Fingerprint,
    PinKind,
    fingerprint,
    instructions_fingerprint,
)
from guardian.pins.store import (
    Approval,
    EntryKey,
    Pending,
    PinEntry,
    PinStore,
    PinStoreError,
    Scope,
    Table,
    default_store_path,
    now,
)

logger = logging.getLogger("guardian.pins")

NewTools = Literal["allow", "hold", "block"]
MAX_ENTRIES_PER_SCOPE: Final = 4096
"""Definitions recorded per upstream and tenant; beyond it new ones are withheld, not stored."""
_MAX_SEEN: Final = 65536
LOCK_TIMEOUT: Final = 1.0
"""Seconds a gateway waits for the store's lock before keeping a write in memory (logged)."""

_CALLS: Final[dict[str, PinKind]] = {"tools/call": "tool", "prompts/get": "prompt"}
_DISCOVERY: Final = frozenset({"initialize", "server/discover"})
_PINNED_RESULTS: Final = _DISCOVERY | frozenset(LISTINGS)
_NOUN: Final[dict[PinKind, str]] = {
    "tool": "tool", "prompt": "prompt", "resource_template": "resource template", "instructions": "server instructions",
}
_SHOWABLE_NAME = re.compile(r"[A-Za-z0-9_.:/-]{1,64}")


class Status(Enum):
    OK = "ok"
    CHANGED = "rug_pull"
    REVIEW = "rug_pull_review"
    HELD = "pending_approval"
    NEW_BLOCKED = "new_definition_blocked"
    REJECTED = "rejected_definition"
    FULL = "pin_store_full"


@dataclass(frozen=True, slots=True)
class PinPolicy:
    new_tools: NewTools = "allow"
    on_change: Action = Action.BLOCK
    action: Action = Action.BLOCK


@dataclass(frozen=True, slots=True)
class _Listing:
    scope: Scope
    kind: PinKind
    items: tuple[tuple[JsonPath, Fingerprint], ...]
    complete: bool
    """First page without a next page: what is missing from it was removed."""


class PinsInspector:
    """Pins definitions per upstream and tenant; withholds and blocks rug pulls (see module doc)."""

    name = "pins"

    def __init__(
        self,
        store: PinStore | str | os.PathLike[str] | None = None,
        policy: PinPolicy | None = None,
        *,
        baseline: baselines.Baseline | None = None,
        upstream: str | None = None,
    ) -> None:
        """`upstream` fixes the key pins are filed under; by default each session's upstream label."""
        self.store = store if isinstance(store, PinStore) else PinStore(store)
        self.policy = policy or PinPolicy()
        self._baseline: Mapping[EntryKey, baselines.BaselinePin] = baseline.pins if baseline else {}
        self._upstream = upstream
        self._seen: OrderedDict[EntryKey, str] = OrderedDict()
        """Hash of each definition as last listed through this process."""
        self._templates: dict[Scope, dict[str, str]] = {}
        """URI template of each resource template as last listed, for judging `resources/read`."""
        self._unsaved: Table = {}
        """Pins the store could not take (disk trouble): kept in memory, retried on the next write."""

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Self:
        read = Options(cls.name, options)
        store_path = read.raw("store", None)
        if store_path is not None and not isinstance(store_path, str | os.PathLike):
            read.problem("store", f"{store_path!r} is not a path")
            store_path = None
        new_tools = read.raw("new_tools", "allow")
        if new_tools not in ("allow", "hold", "block"):
            read.problem("new_tools", f"{new_tools!r} is not one of allow, hold, block")
            new_tools = "allow"
        on_change = _block_or_warn(read, "on_change")
        action = _block_or_warn(read, "action")
        baseline_path = read.raw("baseline", None)
        if baseline_path is not None and not isinstance(baseline_path, str | os.PathLike):
            read.problem("baseline", f"{baseline_path!r} is not a path")
            baseline_path = None
        baseline = store = None
        if baseline_path is not None:
            try:
                baseline = baselines.load(baseline_path, baselines.signing_key())
            except baselines.BaselineError as exc:
                read.problem("baseline", str(exc))
        try:
            store = PinStore(Path(store_path) if store_path is not None else default_store_path(),
                             lock_timeout=LOCK_TIMEOUT)
        except PinStoreError as exc:
            read.problem("store", str(exc))
        read.done()
        assert store is not None  # done() raised otherwise
        return cls(store, PinPolicy(cast(NewTools, new_tools), on_change, action), baseline=baseline)

    # -- calls ------------------------------------------------------------------------------------

    def request(self, event: Event) -> list[Finding]:
        """Block calls to definitions that are not approved as last listed."""
        if event.direction is not Direction.CLIENT_TO_SERVER:
            return []
        method = event.method
        kind = _CALLS.get(method) if method is not None else None
        if kind is None and method != "resources/read":
            return []
        target = event.target
        if target is None:
            return []
        self.store.refresh()
        scope = self._scope(event)
        if kind is not None:
            finding = self._call_finding((*scope, kind, target))
            return [finding] if finding is not None else []
        return self._read_findings(scope, target)

    def _call_finding(self, key: EntryKey) -> Finding | None:
        status = self._call_status(key)
        if status is None:
            return None
        action = self._action(status)
        noun, name = _NOUN[key[2]], _showable(key[3])
        if status is Status.CHANGED:
            message = f"{noun} definition changed since it was approved; run `guardian pins approve {name}`"
        elif status is Status.HELD:
            message = f"new {noun} is awaiting approval; run `guardian pins approve {name}`"
        elif status is Status.REJECTED:
            message = f"{noun} definition was rejected; see `guardian pins show {name}`"
        else:
            message = f"{noun} is not among the approved pins (new definitions are blocked)"
        return Finding(self.name, status.value, message, action=action, path=("params", "name"))

    def _call_status(self, key: EntryKey) -> Status | None:
        entry = self._get(key)
        approved = self._approved(key, entry)
        seen = self._seen.get(key)
        if entry is not None and entry.pending is not None:
            return Status.CHANGED if approved else Status.HELD
        if not approved:
            if entry is not None and entry.rejected:
                return Status.REJECTED
            if seen is None and self.policy.new_tools == "allow":
                return None  # never listed and nothing says otherwise: the server will answer
            return Status.HELD if self.policy.new_tools == "hold" else Status.NEW_BLOCKED
        if seen is not None and seen not in approved:
            return Status.REJECTED if entry is not None and seen in entry.rejected else Status.CHANGED
        return None

    def _read_findings(self, scope: Scope, uri: str) -> list[Finding]:
        """A `resources/read` of a URI that only an unapproved resource template offers."""
        templates = dict(self._templates.get(scope, {}))
        for (kind, name), entry in self.store.scope(*scope).items():
            if kind == "resource_template" and name not in templates:
                for record in (entry.pending, entry.approved):  # the pending one is what the server offers now
                    template = record.definition.get("uriTemplate") if record is not None else None
                    if isinstance(template, str):
                        templates[name] = template
                        break
        for name, template in templates.items():
            finding = self._call_finding((*scope, "resource_template", name))
            if finding is not None and _template_pattern(template).fullmatch(uri):
                return [replace(finding, path=("params", "uri"))]
        return []

    # -- listings ---------------------------------------------------------------------------------

    def response(self, event: Event) -> list[Finding]:
        """Pin, compare and withhold the definitions in a listing (or initialize result).

        Synchronous: every response passes through here and almost none is a listing, so
        the common case must cost nothing. The rare write (first sight, a change) runs
        inline: a few milliseconds, bounded by the store's lock timeout.
        """
        if event.direction is not Direction.SERVER_TO_CLIENT or event.method not in _PINNED_RESULTS:
            return []
        listing = self._listing(event)
        if listing is None:
            return []
        self.store.refresh()
        self._remember(listing)
        at = now()
        findings, writes = self._judge(self._get, self._scope_entries(listing.scope), listing, at)
        if not writes and not self._unsaved:
            return findings
        # Something to record: judge again under the store's lock, against what is on disk now,
        # so two processes that saw the same new tool do not both pin their own version.
        return self._commit(listing, at)

    def _listing(self, event: Event) -> _Listing | None:
        result = event.result
        method = event.method
        if result is None or method is None:
            return None
        scope = self._scope(event)
        if method in _DISCOVERY:
            text = result.get("instructions")
            if not isinstance(text, str):
                return None
            return _Listing(scope, "instructions", ((("result", "instructions"), instructions_fingerprint(text)),),
                            complete=False)
        kind = LISTINGS.get(method)
        listed = event.listed()
        if kind is None or listed is None:
            return None
        field, items = listed
        pinned: list[tuple[JsonPath, Fingerprint]] = []
        for index, item in enumerate(items):
            fp = fingerprint(kind, item) if isinstance(item, dict) else None
            if fp is not None:
                pinned.append((("result", field, index), fp))
        complete = not event.params.get("cursor") and not result.get("nextCursor")
        return _Listing(scope, kind, tuple(pinned), complete)

    def _remember(self, listing: _Listing) -> None:
        for _, fp in listing.items:
            key = (*listing.scope, fp.kind, fp.name)
            self._seen[key] = fp.hash
            self._seen.move_to_end(key)
            if fp.kind == "resource_template":
                template = fp.definition.get("uriTemplate")
                if isinstance(template, str):
                    self._templates.setdefault(listing.scope, {})[fp.name] = template
        while len(self._seen) > _MAX_SEEN:
            self._seen.popitem(last=False)

    def _commit(self, listing: _Listing, at: str) -> list[Finding]:
        unsaved = dict(self._unsaved)

        def change(table: Table) -> list[Finding]:
            for key, entry in unsaved.items():
                table.setdefault(key, entry)
            entries = {(k[2], k[3]): e for k, e in table.items() if (k[0], k[1]) == listing.scope}
            findings, writes = self._judge(table.get, entries, listing, at)
            table.update(writes)
            return findings

        try:
            findings = self.store.update(change)
        except (OSError, PinStoreError) as exc:
            logger.error("pins: cannot write %s (pins kept in memory only): %s", self.store.path, exc)
            entries = self._scope_entries(listing.scope)
            findings, writes = self._judge(self._get, entries, listing, at)
            self._unsaved.update(writes)
            return findings
        for key in unsaved:
            self._unsaved.pop(key, None)
        return findings

    def _scope_entries(self, scope: Scope) -> dict[tuple[PinKind, str], PinEntry]:
        """One scope's stored entries, with any the store could not take laid over them."""
        merged = dict(self.store.scope(*scope))
        for (upstream, tenant, kind, name), entry in list(self._unsaved.items()):  # a writer thread may add
            if (upstream, tenant) == scope:
                merged[(kind, name)] = entry
        return merged

    def _judge(
        self,
        get: Callable[[EntryKey], PinEntry | None],
        entries: Mapping[tuple[PinKind, str], PinEntry],
        listing: _Listing,
        at: str,
    ) -> tuple[list[Finding], Table]:
        """Findings for a listing against the pins `get` sees, and the entries to write."""
        findings: list[Finding] = []
        writes: Table = {}
        room = MAX_ENTRIES_PER_SCOPE - len(entries)
        for path, fp in listing.items:
            key = (*listing.scope, fp.kind, fp.name)
            entry = writes.get(key) or get(key)
            status, new = self._classify(key, entry, fp, at, room > len(writes))
            if new is not None:
                writes[key] = new
            if status is not Status.OK:
                finding = self._listing_finding(status, key, path, entry)
                if finding is not None:
                    findings.append(finding)
        if listing.complete:
            listed = {fp.name for _, fp in listing.items}
            gone = [e for (kind, name), e in entries.items()
                    if kind == listing.kind and name not in listed and e.approved is not None and e.removed is None]
            for entry in gone:
                writes[entry.key] = replace(entry, removed=at)
            if gone:
                noun = _NOUN[listing.kind]
                findings.append(Finding(self.name, "definitions_removed",
                                        f"{len(gone)} pinned {noun}(s) no longer listed", action=Action.WARN))
        return findings, writes

    def _classify(
        self, key: EntryKey, entry: PinEntry | None, fp: Fingerprint, at: str, room: bool
    ) -> tuple[Status, PinEntry | None]:
        approved = self._approved(key, entry)
        if entry is not None and fp.hash in entry.rejected:
            return Status.REJECTED, None
        if fp.hash in approved:
            if entry is not None and entry.pending is not None:
                return Status.REVIEW, None
            if entry is not None and entry.removed is not None:
                return Status.OK, replace(entry, removed=None)
            return Status.OK, None
        base = entry if entry is not None else PinEntry(*key)
        if entry is not None and entry.pending is not None:
            status = Status.CHANGED if approved else Status.HELD
            if entry.pending.hash == fp.hash:
                return status, None
            return status, replace(entry, pending=Pending(fp.hash, fp.definition, at, entry.pending.change))
        if approved:
            return Status.CHANGED, replace(base, pending=Pending(fp.hash, fp.definition, at, "changed"), removed=None)
        if not room:
            return Status.FULL, None
        if self.policy.new_tools == "allow" and not (entry is not None and entry.rejected):
            return Status.OK, replace(base, approved=Approval(fp.hash, fp.definition, at, "tofu"))
        if self.policy.new_tools == "block":
            return Status.NEW_BLOCKED, None
        # `hold`, or a name whose earlier definitions were rejected: a fresh variant waits for review.
        return Status.HELD, replace(base, pending=Pending(fp.hash, fp.definition, at, "new"))

    def _listing_finding(self, status: Status, key: EntryKey, path: JsonPath, entry: PinEntry | None) -> Finding | None:
        kind, name = key[2], _showable(key[3])
        noun = _NOUN[kind]
        action = self._action(status)
        if kind == "instructions":
            if status is Status.REVIEW:
                return None  # the server is showing the approved text: nothing to replace
            message = f"{noun} changed since approved; approved text served until `guardian pins approve " \
                      f"{INSTRUCTIONS_NAME}`" if status is Status.CHANGED else f"{noun} not approved; withheld"
            if action is not Action.BLOCK:
                return Finding(self.name, status.value, message, action=action, path=path)
            return Finding(self.name, status.value, message, action=Action.REDACT, path=path,
                           replacement=self._approved_instructions(key, entry) if status is Status.CHANGED else "")
        messages = {
            Status.CHANGED: f"{noun} definition changed since it was approved; withheld until "
                            f"`guardian pins approve {name}`",
            Status.REVIEW: f"{noun} has a definition change pending review; withheld until approved or rejected",
            Status.HELD: f"new {noun} withheld until `guardian pins approve {name}`",
            Status.NEW_BLOCKED: f"new {noun} withheld: new definitions are blocked",
            Status.REJECTED: f"{noun} definition was rejected; withheld",
            Status.FULL: f"new {noun} withheld: too many pinned definitions for this upstream",
        }
        if action is not Action.BLOCK:
            return Finding(self.name, status.value, messages[status], action=action, path=path)
        return Finding(self.name, status.value, messages[status], action=Action.REDACT, path=path, remove=True)

    # -- helpers ----------------------------------------------------------------------------------

    def _scope(self, event: Event) -> Scope:
        return (self._upstream or event.session.upstream, event.session.tenant)

    def _get(self, key: EntryKey) -> PinEntry | None:
        if self._unsaved:
            entry = self._unsaved.get(key)
            if entry is not None:
                return entry
        return self.store.get(key)

    def _approved(self, key: EntryKey, entry: PinEntry | None) -> frozenset[str]:
        hashes: set[str] = set()
        if entry is not None and entry.approved is not None:
            hashes.add(entry.approved.hash)
        if self._baseline:
            pin = self._baseline.get(key)
            if pin is not None:
                hashes.add(pin.hash)
        return frozenset(hashes)

    def _approved_instructions(self, key: EntryKey, entry: PinEntry | None) -> str:
        definition: Mapping[str, Any] | None = entry.approved.definition if entry and entry.approved else None
        if definition is None and (pin := self._baseline.get(key)) is not None:
            definition = pin.definition
        text = definition.get("instructions") if definition else None
        return text if isinstance(text, str) else ""

    def _action(self, status: Status) -> Action:
        if status in (Status.CHANGED, Status.REVIEW):
            return min(self.policy.on_change, self.policy.action)
        return self.policy.action


def _block_or_warn(read: Options, key: str) -> Action:
    action = read.action(key, Action.BLOCK)
    if action not in (Action.BLOCK, Action.WARN):
        read.problem(key, f"{str(action)!r} is not one of block, warn")
        return Action.BLOCK
    return action


def _showable(name: str) -> str:
    """A name fit for a client-facing message; anything odd is not echoed (it is server text)."""
    return name if _SHOWABLE_NAME.fullmatch(name) else "NAME"


@lru_cache(maxsize=1024)
def _template_pattern(template: str) -> re.Pattern[str]:
    """An RFC 6570 URI template as a regex matching every URI it can expand to."""
    parts: list[str] = []
    position = 0
    for match in re.finditer(r"\{([^}]*)\}", template):
        parts.append(re.escape(template[position:match.start()]))
        expression = match.group(1)
        operator = expression[:1]
        if operator in ("+", "#"):
            parts.append(".*")
        elif operator in ("/", ".", ";"):
            parts.append(f"(?:{re.escape(operator)}[^/?#]*)*")
        elif operator in ("?", "&"):
            parts.append("(?:[?&][^#]*)?")
        else:
            parts.append("[^/?#]*")
        position = match.end()
    parts.append(re.escape(template[position:]))
    return re.compile("".join(parts))
