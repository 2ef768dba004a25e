"""The pin store: approved and pending definitions, in one JSON file that survives restarts.

Several processes share it: every gateway worker, every `guardian wrap` a desktop client
starts, and the `guardian pins` CLI that approves changes. So:

- every read-modify-write holds an advisory lock (`fcntl.flock` on `<file>.lock`, kept
  beside the file and never deleted, so two processes always lock the same inode) and
  re-reads the file under it: no process overwrites another's approval. The wait for the
  lock is bounded (`lock_timeout`), so a wedged peer cannot stall a gateway;
- writes are atomic: a temporary file in the same directory, `fsync`, `os.replace`, then
  an `fsync` of the directory; a reader sees the old file or the new one, never half;
- readers take no lock (the replace is atomic) and re-read only when the file's identity
  (device, inode, size, mtime, ctime) changed, one `stat` per check. Timestamps are
  coarse, so a file written within the last two seconds is re-read anyway, at most every
  20 ms (git's "racily clean" rule): an approval is never missed because it landed in the
  same clock tick.

A pending change keeps the definition that was seen and its hash, so `approve` approves
exactly what was seen, not whatever the server says next.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TypeVar, cast

from guardian.pins.fingerprint import KINDS, PinKind

logger = logging.getLogger("guardian.pins")

STORE_ENV: Final = "MCP_GUARDIAN_PINS_FILE"
"""Overrides the default store path (for the gateway and the CLI alike)."""
FORMAT: Final = "mcp-guardian-pins"
VERSION: Final = 1
_RACY_NS: Final = 2_000_000_000
_RACY_RECHECK_NS: Final = 20_000_000
"""While racy, re-read at most this often: an approval is seen within 20 ms, and a busy gateway does
not read the file on every call for two seconds after each write."""

EntryKey = tuple[str, str | None, PinKind, str]
"""(upstream, tenant, kind, name); tenant None is the default namespace."""
Scope = tuple[str, str | None]

T = TypeVar("T")


class PinStoreError(Exception):
    """The store file is unreadable or not a pin store; the message says why, in one line."""


def default_store_path(environ: Mapping[str, str] | None = None) -> Path:
    """`$MCP_GUARDIAN_PINS_FILE`, else `$XDG_STATE_HOME/mcp-guardian/pins.json`,
    else `~/.local/state/mcp-guardian/pins.json`."""
    environ = os.environ if environ is None else environ
    if explicit := environ.get(STORE_ENV):
        return Path(explicit).expanduser()
    state = environ.get("XDG_STATE_HOME") or str(Path("~/.local/state").expanduser())
    return Path(state) / "mcp-guardian" / "pins.json"


def now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Approval:
    hash: str
    definition: Mapping[str, Any]
    at: str
    by: str
    """`tofu` (first sight), `cli`, or `baseline:<file>`."""


@dataclass(frozen=True, slots=True)
class Pending:
    hash: str
    definition: Mapping[str, Any]
    seen: str
    change: str
    """`changed` (differs from the approved definition) or `new` (held on first sight)."""


@dataclass(frozen=True, slots=True)
class PinEntry:
    """Everything known about one tool, prompt, resource template or server's instructions."""

    upstream: str
    tenant: str | None
    kind: PinKind
    name: str
    approved: Approval | None = None
    pending: Pending | None = None
    rejected: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Rejected definitions by hash: still withheld when shown, never re-queued for review."""
    removed: str | None = None
    """When a complete listing last lacked this approved entry (cleared when it comes back)."""

    @property
    def key(self) -> EntryKey:
        return (self.upstream, self.tenant, self.kind, self.name)

    @property
    def status(self) -> str:
        if self.pending is not None:
            return self.pending.change
        if self.approved is None:
            return "rejected" if self.rejected else "unknown"
        return "removed" if self.removed else "approved"

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {"upstream": self.upstream, "tenant": self.tenant, "kind": self.kind,
                                  "name": self.name}
        if self.approved is not None:
            a = self.approved
            record["approved"] = {"hash": a.hash, "definition": a.definition, "at": a.at, "by": a.by}
        if self.pending is not None:
            p = self.pending
            record["pending"] = {"hash": p.hash, "definition": p.definition, "seen": p.seen, "change": p.change}
        if self.rejected:
            record["rejected"] = {h: dict(d) for h, d in sorted(self.rejected.items())}
        if self.removed is not None:
            record["removed"] = self.removed
        return record

    @classmethod
    def from_dict(cls, record: Any) -> PinEntry:
        if not isinstance(record, dict):
            raise ValueError("an entry is not an object")
        upstream, tenant, kind, name = (record.get(k) for k in ("upstream", "tenant", "kind", "name"))
        if not isinstance(upstream, str) or not isinstance(name, str) or kind not in KINDS:
            raise ValueError("an entry lacks upstream, kind or name")
        if tenant is not None and not isinstance(tenant, str):
            raise ValueError(f"entry {name!r}: tenant is not a string")
        approved = pending = None
        if (a := record.get("approved")) is not None:
            approved = Approval(_text(a, "hash"), _object(a, "definition"), _text(a, "at"), _text(a, "by"))
        if (p := record.get("pending")) is not None:
            pending = Pending(_text(p, "hash"), _object(p, "definition"), _text(p, "seen"), _text(p, "change"))
        rejected = record.get("rejected") or {}
        if not isinstance(rejected, dict) or not all(isinstance(v, dict) for v in rejected.values()):
            raise ValueError(f"entry {name!r}: rejected is not an object of definitions")
        removed = record.get("removed")
        return cls(upstream, tenant, cast(PinKind, kind), name, approved, pending, dict(rejected),
                   removed if isinstance(removed, str) else None)


def _text(record: Any, key: str) -> str:
    value = record.get(key) if isinstance(record, dict) else None
    if not isinstance(value, str):
        raise ValueError(f"{key} is missing or not a string")
    return value


def _object(record: Any, key: str) -> dict[str, Any]:
    value = record.get(key) if isinstance(record, dict) else None
    if not isinstance(value, dict):
        raise ValueError(f"{key} is missing or not an object")
    return value


Table = dict[EntryKey, PinEntry]


class PinStore:
    """The pins of every upstream and tenant, cached in memory and kept in sync with the file."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, lock_timeout: float = 5.0) -> None:
        """`lock_timeout`: seconds `update` waits for another process's lock before `PinStoreError`."""
        self.path = Path(path).expanduser() if path is not None else default_store_path()
        self.lock_timeout = lock_timeout
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._table: Table = {}
        self._scopes: dict[Scope, dict[tuple[PinKind, str], PinEntry]] = {}
        self._stamp: tuple[int, ...] | None = None
        self._raw: bytes | None = None
        self._racy = False
        self._racy_checked = 0
        self.generation = 0
        """Bumped whenever the pins in memory change (a reload or a write)."""
        self._mutex = threading.Lock()
        """For embedders that write from worker threads: `refresh` skips while a write is under way."""
        self._tool_names: tuple[int, dict[str | None, dict[str, dict[str, str]]]] = (-1, {})
        self._reload()

    # -- reading ----------------------------------------------------------------------------------

    def get(self, key: EntryKey) -> PinEntry | None:
        return self._table.get(key)

    def scope(self, upstream: str, tenant: str | None) -> Mapping[tuple[PinKind, str], PinEntry]:
        """The entries of one upstream and tenant, by (kind, name)."""
        return self._scopes.get((upstream, tenant), {})

    def entries(self) -> list[PinEntry]:
        return sorted(self._table.values(), key=_sort_key)

    def tool_names(self, tenant: str | None) -> Mapping[str, Mapping[str, str]]:
        """upstream -> tool name -> first recorded (ISO time), for the tenant's tools each upstream
        lists now: approved and not removed, or pending. Does not re-read the file (call `refresh`);
        computed once per `generation` and tenant, so asking again costs a dict lookup.

        "First recorded" is the earlier of the approval and the pending sighting: for a pin taken on
        first sight it is when the tool was first listed (a CLI approval moves it to approval time).
        Treat the result as read-only.
        """
        generation, by_tenant = self._tool_names
        if generation != self.generation:
            by_tenant = {}
            self._tool_names = (self.generation, by_tenant)
        names = by_tenant.get(tenant)
        if names is None:
            names = {}
            for (upstream, entry_tenant, kind, name), entry in self._table.items():
                if kind != "tool" or entry_tenant != tenant:
                    continue
                times = [entry.pending.seen] if entry.pending is not None else []
                if entry.approved is not None and entry.removed is None:
                    times.append(entry.approved.at)
                if times:
                    names.setdefault(upstream, {})[name] = min(times)
            by_tenant[tenant] = names
        return names

    def refresh(self) -> bool:
        """Re-read the file if another process changed it; True if the pins changed.

        A file that cannot be read keeps the last good pins (logged): a half-edited store
        must not make every tool look new.
        """
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            stamp = None
        except OSError as exc:
            logger.warning("pins: cannot stat %s: %s", self.path, exc)
            return False
        else:
            stamp = _stamp(stat)
        if stamp == self._stamp:
            if not self._racy:
                return False
            clock = time.monotonic_ns()
            if clock - self._racy_checked < _RACY_RECHECK_NS:
                return False
            self._racy_checked = clock
        if not self._mutex.acquire(blocking=False):
            return False  # a write in progress installs the newest pins itself
        try:
            return self._reload()
        except PinStoreError as exc:
            logger.error("pins: keeping the last good pins: %s", exc)
            self._stamp, self._racy = stamp, False  # don't re-read a broken file on every check
            return False
        finally:
            self._mutex.release()

    def _reload(self) -> bool:
        try:
            handle = open(self.path, "rb")  # noqa: SIM115 - fstat on the very file we read
        except FileNotFoundError:
            raw, stamp, mtime = None, None, None
        except OSError as exc:
            raise PinStoreError(f"{self.path}: cannot read: {exc.strerror or exc}") from None
        else:
            with handle:
                stat = os.fstat(handle.fileno())
                raw, stamp, mtime = handle.read(), _stamp(stat), stat.st_mtime_ns
        self._racy = mtime is not None and time.time_ns() - mtime < _RACY_NS
        self._stamp = stamp
        if raw == self._raw:
            return False
        self._install(parse(raw, self.path) if raw is not None else {}, raw)
        return True

    def _install(self, table: Table, raw: bytes | None) -> None:
        self._table, self._raw = table, raw
        scopes: dict[Scope, dict[tuple[PinKind, str], PinEntry]] = {}
        for (upstream, tenant, kind, name), entry in table.items():
            scopes.setdefault((upstream, tenant), {})[(kind, name)] = entry
        self._scopes = scopes
        self.generation += 1

    # -- writing ----------------------------------------------------------------------------------

    def update(self, change: Callable[[Table], T]) -> T:
        """Apply `change` to the current pins under the file lock; write if it changed anything.

        `change` gets a private copy of the table (freshly re-read under the lock) and may
        add, replace or delete entries; its return value is passed back.
        """
        with self._mutex, self._locked():
            self._reload()
            table = dict(self._table)
            result = change(table)
            if table != self._table:
                raw = render(table)
                self._write(raw)
                self._install(table, raw)
            return result

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + self.lock_timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise PinStoreError(f"{self.path}: locked by another process for over "
                                            f"{self.lock_timeout:g}s") from None
                    time.sleep(0.005)  # lock holders keep it for a write: milliseconds
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _write(self, raw: bytes) -> None:
        fd, temp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(raw)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself must survive a crash
        finally:
            os.close(directory)
        stat = os.stat(self.path)
        self._stamp, self._racy = _stamp(stat), True


def _stamp(stat: os.stat_result) -> tuple[int, ...]:
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def _sort_key(entry: PinEntry) -> tuple[str, str, int, str]:
    return (entry.upstream, entry.tenant or "", KINDS.index(entry.kind), entry.name)


def render(table: Mapping[EntryKey, PinEntry]) -> bytes:
    entries = [e.to_dict() for e in sorted(table.values(), key=_sort_key)]
    document = {"format": FORMAT, "version": VERSION, "entries": entries}
    return (json.dumps(document, indent=1, ensure_ascii=False, sort_keys=False) + "\n").encode("utf-8")


def parse(raw: bytes, source: object) -> Table:
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PinStoreError(f"{source}: not a JSON pin store: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise PinStoreError(f"{source}: not a pin store (format is not {FORMAT!r})")
    if document.get("version") != VERSION:
        raise PinStoreError(f"{source}: unsupported pin store version {document.get('version')!r}")
    entries = document.get("entries")
    if not isinstance(entries, list):
        raise PinStoreError(f"{source}: `entries` is not a list")
    table: Table = {}
    for index, record in enumerate(entries):
        try:
            entry = PinEntry.from_dict(record)
        except ValueError as exc:
            raise PinStoreError(f"{source}: entries[{index}]: {exc}") from None
        table[entry.key] = entry
    return table


def approve_pending(entry: PinEntry, by: str, at: str | None = None) -> PinEntry:
    """The entry with its pending definition approved (it must have one)."""
    assert entry.pending is not None
    pending = entry.pending
    rejected = {h: d for h, d in entry.rejected.items() if h != pending.hash}
    approval = Approval(pending.hash, pending.definition, at or now(), by)
    return replace(entry, approved=approval, pending=None, rejected=rejected, removed=None)
