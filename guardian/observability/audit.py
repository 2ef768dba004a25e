"""Decision records: one JSON line per decision other than allow.

Records carry what was decided and why (detectors, kinds, paths, redacted excerpts),
never the content itself.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import IO, Any

from guardian.decision import Decision
from guardian.events import Event

logger = logging.getLogger("guardian.audit")


class AuditLog:
    """Appends decision records to a file, or to the `guardian.audit` logger when no file is set."""

    def __init__(self, path: str | Path | None = None) -> None:
        self._file: IO[str] | None = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115

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
        line = json.dumps(entry, default=str, separators=(",", ":"))
        if self._file is None:
            logger.info("%s", line)
        else:
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
