"""Baseline files: approved pins as a reviewable, checkable file (for CI and fleets).

`guardian pins export FILE` writes the approved definitions, sorted, with no timestamps,
so exporting the same pins twice gives the same bytes and a checked-in baseline diffs
cleanly. The file carries `sha256` over its canonical content, and, when
`MCP_GUARDIAN_PINS_KEY` is set, an HMAC-SHA256 `signature` with that key. Loading one
(`guardian pins import`, or the inspector's `baseline` option) checks the hash, the
signature (a signed file needs the key; with a key set, an unsigned file is refused),
and that every pin's hash matches its definition, so a hand edit of a description
cannot ride on an old hash.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, cast

from guardian.pins.fingerprint import KINDS, PinKind, canonical_definition, canonical_json, digest
from guardian.pins.store import EntryKey, PinEntry

KEY_ENV: Final = "MCP_GUARDIAN_PINS_KEY"
FORMAT: Final = "mcp-guardian-pins-baseline"
VERSION: Final = 1
SIGNATURE_PREFIX: Final = "hmac-sha256:"


class BaselineError(Exception):
    """A baseline file that cannot be trusted or read; the message says why, in one line."""


@dataclass(frozen=True, slots=True)
class BaselinePin:
    upstream: str
    tenant: str | None
    kind: PinKind
    name: str
    hash: str
    definition: Mapping[str, Any]

    @property
    def key(self) -> EntryKey:
        return (self.upstream, self.tenant, self.kind, self.name)

    def to_dict(self) -> dict[str, Any]:
        return {"upstream": self.upstream, "tenant": self.tenant, "kind": self.kind, "name": self.name,
                "hash": self.hash, "definition": dict(self.definition)}


@dataclass(frozen=True, slots=True)
class Baseline:
    pins: Mapping[EntryKey, BaselinePin]
    source: str
    signed: bool


def signing_key(environ: Mapping[str, str] | None = None) -> bytes | None:
    value = (os.environ if environ is None else environ).get(KEY_ENV)
    return value.encode("utf-8") if value else None


def build(entries: Iterable[PinEntry], key: bytes | None) -> dict[str, Any]:
    """The baseline document for the approved definitions among `entries`."""
    pins = [
        BaselinePin(e.upstream, e.tenant, e.kind, e.name, e.approved.hash, e.approved.definition).to_dict()
        for e in entries
        if e.approved is not None
    ]
    pins.sort(key=lambda p: (p["upstream"], p["tenant"] or "", KINDS.index(p["kind"]), p["name"]))
    document: dict[str, Any] = {"format": FORMAT, "version": VERSION, "pins": pins}
    content = _content(document)
    document["sha256"] = hashlib.sha256(content).hexdigest()
    if key is not None:
        document["signature"] = SIGNATURE_PREFIX + hmac.new(key, content, hashlib.sha256).hexdigest()
    return document


def write(path: str | os.PathLike[str], document: Mapping[str, Any]) -> None:
    Path(path).write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def load(path: str | os.PathLike[str], key: bytes | None = None) -> Baseline:
    """Read and verify a baseline file; `BaselineError` says what is wrong."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise BaselineError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BaselineError(f"{path}: not JSON: {exc}") from None
    return verify(document, str(path), key)


def verify(document: Any, source: str, key: bytes | None) -> Baseline:
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise BaselineError(f"{source}: not a pins baseline (format is not {FORMAT!r})")
    if document.get("version") != VERSION:
        raise BaselineError(f"{source}: unsupported baseline version {document.get('version')!r}")
    content = _content(document)
    stated = document.get("sha256")
    if not isinstance(stated, str) or not hmac.compare_digest(stated, hashlib.sha256(content).hexdigest()):
        raise BaselineError(f"{source}: content hash does not match: the file was changed after export")
    signature = document.get("signature")
    if signature is not None:
        if key is None:
            raise BaselineError(f"{source}: the baseline is signed; set {KEY_ENV} to verify it")
        expected = SIGNATURE_PREFIX + hmac.new(key, content, hashlib.sha256).hexdigest()
        if not isinstance(signature, str) or not hmac.compare_digest(signature, expected):
            raise BaselineError(f"{source}: bad signature (wrong {KEY_ENV}, or the file was re-hashed by hand)")
    elif key is not None:
        raise BaselineError(f"{source}: the baseline is not signed, but {KEY_ENV} is set")
    pins: dict[EntryKey, BaselinePin] = {}
    records = document.get("pins")
    if not isinstance(records, list):
        raise BaselineError(f"{source}: `pins` is not a list")
    for index, record in enumerate(records):
        pin = _pin(record, f"{source}: pins[{index}]")
        pins[pin.key] = pin
    return Baseline(pins, source, signature is not None)


def _pin(record: Any, where: str) -> BaselinePin:
    if not isinstance(record, dict):
        raise BaselineError(f"{where}: not an object")
    upstream, tenant, kind, name, stated = (record.get(k) for k in ("upstream", "tenant", "kind", "name", "hash"))
    definition = record.get("definition")
    if not (isinstance(upstream, str) and isinstance(name, str) and isinstance(stated, str)
            and kind in KINDS and isinstance(definition, dict) and (tenant is None or isinstance(tenant, str))):
        raise BaselineError(f"{where}: needs upstream, tenant, kind, name, hash and definition")
    canonical = canonical_definition(cast(PinKind, kind), definition)
    if digest(canonical) != stated:
        raise BaselineError(f"{where} ({name}): hash does not match the definition")
    return BaselinePin(upstream, tenant, cast(PinKind, kind), name, stated, canonical)


def _content(document: Mapping[str, Any]) -> bytes:
    """What the hash and signature cover: everything but themselves, canonically."""
    body = {k: v for k, v in document.items() if k not in ("sha256", "signature")}
    return canonical_json(body).encode("utf-8")
