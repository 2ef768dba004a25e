"""Processes for the pin store concurrency tests: each is its own OS process with its own `PinStore`.

    python -m tests.support.pins_peer add STORE PREFIX COUNT
        Adds COUNT approved entries named PREFIX0.., one read-modify-write each; prints `done`.
    python -m tests.support.pins_peer hold STORE NAME
        Adds entry NAME inside a read-modify-write, prints `locked` while still holding the
        store's lock, and waits for stdin to close before finishing the write.

Run with the repository root as the working directory.
"""

from __future__ import annotations

import sys
from functools import partial

from guardian.pins.store import Approval, PinEntry, PinStore, Table

UPSTREAM = "peer-upstream"


def entry(name: str) -> PinEntry:
    definition = {"name": name, "description": f"{name} tool"}
    return PinEntry(UPSTREAM, None, "tool", name, approved=Approval(f"hash-{name}", definition, "now", "tofu"))


def _put(new: PinEntry, table: Table) -> None:
    table[new.key] = new


def main(argv: list[str]) -> None:
    mode, path = argv[0], argv[1]
    store = PinStore(path)
    if mode == "add":
        prefix, count = argv[2], int(argv[3])
        for index in range(count):
            store.update(partial(_put, entry(f"{prefix}{index}")))
        print("done", flush=True)
    elif mode == "hold":
        held = entry(argv[2])

        def change(table: Table) -> None:
            table[held.key] = held
            print("locked", flush=True)
            sys.stdin.read()

        store.update(change)
        print("written", flush=True)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
