"""Decision records: one JSON line per decision other than allow (or per message), hash-chained.

Records carry what was decided and why (detectors, kinds, paths, redacted excerpts),
never the content itself.

Each record carries `seq` (1, 2, …), `prev` (the `hash` of the record before it; 64
zeros for the first record of a file) and `hash`: the SHA-256 of the record's canonical
JSON without its `hash` field (`canonical()` below). `verify()` walks a file and names
the first line that was edited, deleted, reordered, forged or truncated. The chain is
not keyed: it proves that a file is internally consistent, so anchor it by keeping the
last `hash` (printed by `guardian audit verify`) somewhere the writer of the file cannot
change.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from guardian.decision import Action, Decision
from guardian.events import Event

logger = logging.getLogger("guardian.audit")

GENESIS = "0" * 64
"""`prev` of the first record of a file."""

_TAIL_BLOCK = 8192


class AuditLogError(Exception):
    """An existing audit log cannot be continued (its last record does not verify)."""


def canonical(record: dict[str, Any]) -> bytes:
    """The bytes a record's hash covers: sorted keys, no spaces, UTF-8, without `hash`."""
    body = {key: value for key, value in record.items() if key != "hash"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return text.encode("utf-8", "surrogatepass")


def record_hash(record: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(record)).hexdigest()


def _check_record(record: Any) -> str | None:
    """What is wrong with one parsed line on its own, or None."""
    if not isinstance(record, dict):
        return "not an audit record (not a JSON object)"
    seq, prev, digest = record.get("seq"), record.get("prev"), record.get("hash")
    if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(prev, str) or not isinstance(digest, str):
        return "not an audit record (missing seq/prev/hash)"
    if record_hash(record) != digest:
        return "hash mismatch (record edited)"
    return None


class AuditLog:
    """Appends hash-chained decision records to a file, or to the `guardian.audit` logger
    when no file is set (chained too, from seq 1 per process).

    Appending to an existing file continues its chain; a file whose last line is not a
    complete, verifying record is refused with `AuditLogError` rather than extended.
    """

    def __init__(self, path: str | Path | None = None, *, all_messages: bool = False) -> None:
        self.all_messages = all_messages
        self._lock = threading.Lock()
        self._seq = 0
        self._prev = GENESIS
        self._file: IO[bytes] | None = None
        if path:
            self._seq, self._prev = _read_tail(Path(path))
            self._file = open(path, "ab", buffering=0)  # noqa: SIM115

    def wants(self, decision: Decision) -> bool:
        """Whether `decision` gets a record: anything but a clean allow, or everything if asked."""
        return self.all_messages or decision.action is not Action.ALLOW or bool(decision.findings)

    def record(self, event: Event, decision: Decision) -> None:
        entry: dict[str, Any] = {
            "time": time.time(),
            "event_id": decision.event_id,
            "session": event.session.session_id,
            "transport": event.session.transport,
            "upstream": event.session.upstream,
            "direction": str(event.direction),
            "kind": str(event.kind),
            "method": event.method,
            "target": event.target,
            "jsonrpc_id": event.id,
            **decision.to_dict(),
        }
        if event.session.identity is not None:
            entry["identity"] = event.session.identity
        if event.session.tenant is not None:
            entry["tenant"] = event.session.tenant
        # Plain JSON values only, so that a reader re-canonicalizing the line gets the same bytes.
        entry = json.loads(json.dumps(entry, default=str, ensure_ascii=False))
        with self._lock:
            entry["seq"] = self._seq + 1
            entry["prev"] = self._prev
            entry["hash"] = record_hash(entry)
            text = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            if self._file is None:
                logger.info("%s", text)
            else:
                # Lone surrogates become `\udxxx`, which is the same JSON string escaped.
                _write_all(self._file, (text + "\n").encode("utf-8", "backslashreplace"))
            self._seq = entry["seq"]
            self._prev = entry["hash"]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _write_all(file: IO[bytes], data: bytes) -> None:
    """One write of the whole line (O_APPEND); loop only if the OS takes part of it."""
    view = memoryview(data)
    while view:
        written = file.write(view)
        if written is None:  # pragma: no cover - only non-blocking files answer None
            continue
        view = view[written:]
    file.flush()


def _read_tail(path: Path) -> tuple[int, str]:
    """(seq, hash) of the file's last record, reading backwards from the end; (0, GENESIS) if empty."""
    try:
        handle = open(path, "rb")  # noqa: SIM115
    except FileNotFoundError:
        return 0, GENESIS
    with handle:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            return 0, GENESIS
        buffer = b""
        position = size
        while position > 0 and b"\n" not in buffer[:-1]:
            step = min(_TAIL_BLOCK, position)
            position -= step
            handle.seek(position)
            buffer = handle.read(step) + buffer
    refuse = f"audit log {path}: cannot continue it: last line"
    advice = f"check it with `guardian audit verify {path}`, then move it aside"
    if not buffer.endswith(b"\n"):
        raise AuditLogError(f"{refuse} is incomplete (no newline: truncated write?); {advice}")
    line = buffer[:-1].rsplit(b"\n", 1)[-1]
    try:
        record = json.loads(line)
    except ValueError:
        raise AuditLogError(f"{refuse} is not JSON; {advice}") from None
    problem = _check_record(record)
    if problem is not None:
        raise AuditLogError(f"{refuse}: {problem}; {advice}")
    return record["seq"], record["hash"]


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    records: int
    """Records that verified (all of them when `ok`)."""
    problem: str | None = None
    """The first bad line: `line 7: hash mismatch (record edited)`."""
    last_hash: str | None = None
    """The `hash` of the last verified record: keep it elsewhere to anchor the chain."""


def verify(path: str | Path) -> VerifyResult:
    """Walk the chain in `path`; stop at the first line that does not follow from the one before.

    Raises `OSError` (e.g. `FileNotFoundError`) when the file cannot be read.
    """
    count = 0
    seq, digest = 0, GENESIS
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            problem = _link_problem(line, number, seq, digest, handle)
            if problem is not None:
                return VerifyResult(False, count, f"line {number}: {problem}", digest if count else None)
            record = json.loads(line)
            count += 1
            seq, digest = record["seq"], record["hash"]
    return VerifyResult(True, count, None, digest if count else None)


def _link_problem(line: bytes, number: int, seq: int, digest: str, handle: IO[bytes]) -> str | None:
    """What is wrong with line `number`, given the seq and hash of the line before it."""
    if not line.endswith(b"\n"):
        return "truncated final line (no newline)"
    try:
        record = json.loads(line)
    except ValueError:
        return "not JSON"
    problem = _check_record(record)
    if problem is not None:
        return problem
    if record["seq"] != seq + 1:
        where = f"after {seq}" if seq else "at start of file, expected 1"
        if record["seq"] > seq + 1 and not _seq_later(handle, seq + 1):
            return f"seq {record['seq']} {where} (record deleted)"
        return f"seq {record['seq']} {where} (records reordered)"
    if record["prev"] != digest:
        if number == 1:
            return "prev is not the chain start (record inserted or file cut)"
        return f"prev does not match line {number - 1} (record inserted, deleted or reordered)"
    return None


def _seq_later(handle: IO[bytes], wanted: int) -> bool:
    """Whether a record with seq `wanted` appears in the rest of the file (a move, not a deletion)."""
    for line in handle:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("seq") == wanted:
            return True
    return False
