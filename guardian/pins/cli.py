"""`guardian pins list | show | approve | reject | reset | export | import`: review pinned definitions.

A gateway that withholds a changed tool tells the client to run `guardian pins approve
NAME`; this is that command. `show` prints the approved and the pending definition and
a diff between them (ASCII-escaped: definitions are server text, and a review must show
hidden characters, not let them act on the terminal); `approve --hash PREFIX` approves
only if the pending definition is still the one reviewed. A running gateway picks
approvals up on its next check (it re-reads the store when the file changes).

Selecting: NAME, with `--kind`, `--upstream` (the upstream's label: its `name`, else its
command line or URL) and `--tenant` (`--tenant ''` is the default namespace) to narrow
it; a NAME that matches pending changes in several places is refused until narrowed.
Exit status: 0 done, 1 nothing matched / refused / a baseline failed verification,
2 the store or a file could not be used.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

from guardian.pins import baseline as baselines
from guardian.pins.fingerprint import KINDS
from guardian.pins.store import (
    Approval,
    PinEntry,
    PinStore,
    PinStoreError,
    Table,
    approve_pending,
    default_store_path,
    now,
)


class Refused(Exception):
    """The command cannot be carried out as asked; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Selector:
    name: str | None = None
    kind: str | None = None
    upstream: str | None = None
    tenant: str | None = None
    any_tenant: bool = True

    def matches(self, entry: PinEntry) -> bool:
        return ((self.name is None or entry.name == self.name)
                and (self.kind is None or entry.kind == self.kind)
                and (self.upstream is None or entry.upstream == self.upstream)
                and (self.any_tenant or entry.tenant == self.tenant))

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Selector:
        tenant = getattr(args, "tenant", None)
        return cls(getattr(args, "name", None), getattr(args, "kind", None), getattr(args, "upstream", None),
                   tenant or None, tenant is None)


# --- operations (also the library API the tests use) --------------------------------------------


def approve(
    store: PinStore, selector: Selector, *, every: bool = False, hash_prefix: str | None = None
) -> list[PinEntry]:
    """Approve the pending (or, by `hash_prefix`, a rejected) definition of what `selector` picks."""

    def change(table: Table) -> list[PinEntry]:
        chosen = _candidates(table, selector, hash_prefix)
        if not chosen:
            raise Refused(_nothing(selector, hash_prefix, table))
        if len(chosen) > 1 and not every:
            raise Refused(_ambiguous(chosen))
        approved = []
        for entry in chosen:
            if hash_prefix is not None and not (entry.pending and entry.pending.hash.startswith(hash_prefix)):
                digest = next(h for h in entry.rejected if h.startswith(hash_prefix))
                entry = replace(entry, pending=None, approved=Approval(digest, entry.rejected[digest], now(), "cli"),
                                rejected={h: d for h, d in entry.rejected.items() if h != digest}, removed=None)
            else:
                entry = approve_pending(entry, "cli")
            table[entry.key] = entry
            approved.append(entry)
        return approved

    return store.update(change)


def reject(store: PinStore, selector: Selector, *, hash_prefix: str | None = None) -> list[PinEntry]:
    """Reject the pending definition of what `selector` picks: it stays withheld, and is not asked about again."""

    def change(table: Table) -> list[PinEntry]:
        chosen = [e for e in _candidates(table, selector, hash_prefix) if e.pending is not None]
        if not chosen:
            raise Refused(_nothing(selector, hash_prefix, table))
        if len(chosen) > 1:
            raise Refused(_ambiguous(chosen))
        entry = chosen[0]
        assert entry.pending is not None
        entry = replace(entry, pending=None, rejected={**entry.rejected, entry.pending.hash: entry.pending.definition})
        table[entry.key] = entry
        return [entry]

    return store.update(change)


def reset(store: PinStore, selector: Selector) -> int:
    """Forget every pin `selector` picks (all of them by default); the next listing starts afresh."""

    def change(table: Table) -> int:
        doomed = [key for key, entry in table.items() if selector.matches(entry)]
        for key in doomed:
            del table[key]
        return len(doomed)

    return store.update(change)


def export(store: PinStore, path: str | Path, selector: Selector, key: bytes | None) -> int:
    document = baselines.build((e for e in store.entries() if selector.matches(e)), key)
    baselines.write(path, document)
    return len(document["pins"])


def import_baseline(store: PinStore, path: str | Path, key: bytes | None, as_upstream: str | None = None) -> int:
    """Approve every definition in a verified baseline file; `BaselineError` if it does not verify."""
    loaded = baselines.load(path, key)
    pins = list(loaded.pins.values())
    if as_upstream is not None:
        if len({pin.upstream for pin in pins}) > 1:
            raise Refused(f"{path} holds pins of several upstreams; --as-upstream needs one")
        pins = [replace(pin, upstream=as_upstream) for pin in pins]
    by = f"baseline:{Path(path).name}"

    def change(table: Table) -> int:
        at = now()
        for pin in pins:
            entry = table.get(pin.key) or PinEntry(*pin.key)
            pending = entry.pending if entry.pending is not None and entry.pending.hash != pin.hash else None
            rejected = {h: d for h, d in entry.rejected.items() if h != pin.hash}
            table[pin.key] = replace(entry, approved=Approval(pin.hash, pin.definition, at, by), pending=pending,
                                     rejected=rejected, removed=None)
        return len(pins)

    return store.update(change)


def _candidates(table: Table, selector: Selector, hash_prefix: str | None) -> list[PinEntry]:
    chosen = []
    for entry in sorted(table.values(), key=lambda e: (e.upstream, e.tenant or "", e.kind, e.name)):
        if not selector.matches(entry):
            continue
        if hash_prefix is None:
            if entry.pending is not None:
                chosen.append(entry)
        elif (entry.pending is not None and entry.pending.hash.startswith(hash_prefix)) or any(
            h.startswith(hash_prefix) for h in entry.rejected
        ):
            chosen.append(entry)
    return chosen


def _nothing(selector: Selector, hash_prefix: str | None, table: Table) -> str:
    what = f"named {selector.name!r} " if selector.name else ""
    if hash_prefix is not None:
        seen = [e for e in table.values() if selector.matches(e) and e.pending is not None]
        if seen:
            now_pending = ", ".join(f"{e.name} {e.pending.hash[:12]}" for e in seen if e.pending)
            return (f"no definition {what}with hash {hash_prefix}: pending now is {now_pending} "
                    f"(it changed again; review it with `guardian pins show`)")
        return f"no pending or rejected definition {what}with hash {hash_prefix}"
    return f"nothing pending {what}(see `guardian pins list`)"


def _ambiguous(chosen: Iterable[PinEntry]) -> str:
    places = "; ".join(f"{e.kind} {e.name} of {e.upstream} (tenant {e.tenant or 'default'})" for e in chosen)
    return f"several pending changes match: {places}; narrow with --kind, --upstream or --tenant, or use --all"


# --- argparse wiring -------------------------------------------------------------------------------


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `pins list|show|approve|reject|reset|export|import` under the CLI's subcommands."""
    pins = commands.add_parser(
        "pins", help="review pinned tool definitions (rug-pull protection)",
        description="Review, approve and reject the tool, prompt and resource template definitions the "
                    "gateway pinned; export and import baseline files.",
    )
    actions = pins.add_subparsers(dest="pins_action", metavar="SUBCOMMAND", required=True)

    listing = actions.add_parser("list", help="list pins and their status")
    _scope_flags(listing)
    listing.add_argument("--pending", action="store_true", help="only definitions awaiting a decision")
    listing.add_argument("--json", action="store_true", help="JSON lines (with definitions) instead of a table")

    show = actions.add_parser("show", help="show a pin's approved and pending definitions, and the diff")
    show.add_argument("name", metavar="NAME")
    _scope_flags(show, kind=True)

    approving = actions.add_parser("approve", help="approve a pending definition (exactly the one seen)")
    approving.add_argument("name", metavar="NAME", nargs="?")
    approving.add_argument("--all", action="store_true", dest="every", help="approve every pending definition "
                                                                            "(that the other flags select)")
    approving.add_argument("--hash", metavar="PREFIX", help="only if the pending definition has this hash "
                                                            "(as `show` printed it); also approves a rejected one")
    _scope_flags(approving, kind=True)

    rejecting = actions.add_parser("reject", help="reject a pending definition: it stays withheld")
    rejecting.add_argument("name", metavar="NAME")
    rejecting.add_argument("--hash", metavar="PREFIX", help="only if the pending definition has this hash")
    _scope_flags(rejecting, kind=True)

    resetting = actions.add_parser("reset", help="forget pins (all, or one upstream's / tenant's)")
    _scope_flags(resetting)

    exporting = actions.add_parser("export", help=f"write approved pins to a baseline file (signed when "
                                                   f"{baselines.KEY_ENV} is set)")
    exporting.add_argument("file", metavar="FILE")
    _scope_flags(exporting)

    importing = actions.add_parser("import", help="verify a baseline file and approve its definitions")
    importing.add_argument("file", metavar="FILE")
    importing.add_argument("--store", metavar="FILE", help=f"the pin store (default {default_store_path()})")
    importing.add_argument("--as-upstream", metavar="LABEL", help="file the pins under this upstream label")


def _scope_flags(parser: argparse.ArgumentParser, kind: bool = False) -> None:
    parser.add_argument("--store", metavar="FILE", help=f"the pin store (default {default_store_path()})")
    parser.add_argument("--upstream", metavar="LABEL", help="only this upstream (its name, command line or URL)")
    parser.add_argument("--tenant", metavar="TENANT", help="only this tenant ('' = the default namespace)")
    if kind:
        parser.add_argument("--kind", choices=KINDS, help="only this kind of definition")


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Carry out a parsed `pins` command: 0 done, 1 nothing matched or refused, 2 unusable file."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        store = PinStore(args.store)
        return _COMMANDS[args.pins_action](store, args, out, err)
    except (Refused, baselines.BaselineError) as exc:
        print(f"guardian: {exc}", file=err)
        return 1
    except PinStoreError as exc:
        print(f"guardian: {exc}", file=err)
        return 2
    except OSError as exc:
        print(f"guardian: {exc.filename or args.store or default_store_path()}: {exc.strerror or exc}", file=err)
        return 2


def _list(store: PinStore, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    selector = Selector.from_args(args)
    entries = [e for e in store.entries() if selector.matches(e) and (not args.pending or e.pending is not None)]
    if args.json:
        for entry in entries:
            print(json.dumps(entry.to_dict(), ensure_ascii=True), file=out)
        return 0
    rows = [("UPSTREAM", "TENANT", "KIND", "NAME", "STATUS", "HASH", "SINCE")]
    for e in entries:
        current = e.pending or e.approved
        digest = current.hash[:12] if current is not None else "-"
        since = e.pending.seen if e.pending else e.removed or (e.approved.at if e.approved else "-")
        rows.append((_printable(e.upstream), _printable(e.tenant or "-"), e.kind, _printable(e.name), e.status,
                     digest, since))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip(), file=out)
    if not entries:
        print(f"guardian: no pins in {store.path}" if not store.entries() else "guardian: no pins match", file=err)
    return 0


def _show(store: PinStore, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    entries = [e for e in store.entries() if Selector.from_args(args).matches(e)]
    if not entries:
        raise Refused(f"no pin named {args.name!r} (see `guardian pins list`)")
    for entry in entries:
        print(f"== {entry.kind} {_printable(entry.name)}  upstream {_printable(entry.upstream)}  "
              f"tenant {_printable(entry.tenant or '-')}  status {entry.status}", file=out)
        approved_text = _pretty(entry.approved.definition) if entry.approved else None
        if entry.approved is not None:
            a = entry.approved
            print(f"-- approved {a.hash} ({a.by}, {a.at})", file=out)
            print(approved_text, file=out)
        if entry.pending is not None:
            p = entry.pending
            print(f"-- pending {p.hash} ({p.change}, seen {p.seen})", file=out)
            pending_text = _pretty(p.definition)
            print(pending_text, file=out)
            if approved_text is not None:
                print("-- diff (approved -> pending)", file=out)
                diff = difflib.unified_diff(approved_text.splitlines(), pending_text.splitlines(), "approved",
                                            "pending", lineterm="")
                for line in diff:
                    print(line, file=out)
        for digest, definition in entry.rejected.items():
            print(f"-- rejected {digest}", file=out)
            print(_pretty(definition), file=out)
    return 0


def _approve(store: PinStore, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.name is None and not args.every:
        raise Refused("approve needs NAME, or --all (which NAME and the other flags narrow)")
    approved = approve(store, Selector.from_args(args), every=args.every, hash_prefix=args.hash)
    for entry in approved:
        assert entry.approved is not None
        print(f"guardian: approved {entry.kind} {_printable(entry.name)} of {_printable(entry.upstream)} "
              f"({entry.approved.hash[:12]})", file=err)
    return 0


def _reject(store: PinStore, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    for entry in reject(store, Selector.from_args(args), hash_prefix=args.hash):
        print(f"guardian: rejected the pending {entry.kind} {_printable(entry.name)} of "
              f"{_printable(entry.upstream)}; it stays withheld", file=err)
    return 0


def _reset(store: PinStore, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    count = reset(store, Selector.from_args(args))
    print(f"guardian: forgot {count} pin(s) in {store.path}", file=err)
    return 0


def _export(store: PinStore, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    key = baselines.signing_key()
    count = export(store, args.file, Selector.from_args(args), key)
    print(f"guardian: {count} approved pin(s) written to {args.file} ({'signed' if key else 'unsigned'})", file=err)
    return 0


def _import(store: PinStore, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    count = import_baseline(store, args.file, baselines.signing_key(), args.as_upstream)
    print(f"guardian: {count} pin(s) from {args.file} approved in {store.path}", file=err)
    return 0


_COMMANDS: Mapping[str, Callable[[PinStore, argparse.Namespace, TextIO, TextIO], int]] = {
    "list": _list, "show": _show, "approve": _approve, "reject": _reject, "reset": _reset,
    "export": _export, "import": _import,
}


def _pretty(definition: Mapping[str, Any]) -> str:
    return json.dumps(definition, indent=2, sort_keys=True, ensure_ascii=True)


def _printable(text: str) -> str:
    """Server-chosen names reach the terminal escaped unless plain printable ASCII."""
    return text if text.isascii() and text.isprintable() else json.dumps(text)


def main(argv: list[str] | None = None) -> int:
    """`python -m guardian.pins ...`: the same commands without the rest of the CLI."""
    parser = argparse.ArgumentParser(prog="guardian")
    add_parser(parser.add_subparsers(dest="action", metavar="COMMAND", required=True))
    return run(parser.parse_args(["pins", *(sys.argv[1:] if argv is None else argv)]))
