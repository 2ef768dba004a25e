"""API keys: `mcpg_<id>_<secret>`, stored only as hashes, each bound to one identity.

A key is `mcpg_` (so leaked keys are recognisable by secret scanners), a public 12-hex-digit
id (for lookup, listing and revocation) and 32 random bytes (base64url). Only
`sha256:<hex>` of the whole key is stored. A fast hash is right here: slow password
hashes (bcrypt, argon2) exist to make guessing low-entropy passwords expensive, but a
256-bit random secret cannot be guessed at any hash speed, so a stolen key file gives
nothing away, while a slow hash would cost milliseconds on every request.

The presented key's hash is compared with `hmac.compare_digest`, and a key with an
unknown id is compared against a dummy hash, so response timing tells nothing about
which ids exist or how much of a hash matched.

Keys come from config (`authentication.api_keys.keys`) and/or a key file (JSON or YAML,
managed by `guardian keys`), re-read when it changes so revocations take effect
without a restart.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from guardian.auth.errors import AuthFailure
from guardian.auth.identity import Identity
from guardian.documents import read_file
from guardian.errors import ConfigError

logger = logging.getLogger("guardian.auth")

PREFIX = "mcpg_"
_ID_RE = re.compile(r"[0-9a-f]{12}")
_HASH_RE = re.compile(r"sha256:[0-9a-f]{64}")
_SECRET_BYTES = 32
_DUMMY_HASH = "sha256:" + "0" * 64
_RECORD_KEYS = {"id", "hash", "subject", "tenant", "scopes", "roles", "created", "revoked"}


def generate_key() -> tuple[str, str]:
    """A new random key: (its id, the key). The key is shown once and never stored."""
    key_id = secrets.token_hex(6)
    secret = base64.urlsafe_b64encode(secrets.token_bytes(_SECRET_BYTES)).rstrip(b"=").decode("ascii")
    return key_id, f"{PREFIX}{key_id}_{secret}"


def digest(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_id_of(key: str) -> str | None:
    """The id part of a well-formed key, or None."""
    if not key.startswith(PREFIX):
        return None
    key_id, sep, secret = key[len(PREFIX):].partition("_")
    if not sep or len(secret) < 32 or not _ID_RE.fullmatch(key_id):
        return None
    return key_id


def looks_like_key(token: str) -> bool:
    """Whether a bearer credential is one of our API keys rather than a JWT."""
    return token.startswith(PREFIX)


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    key_id: str
    hash: str
    subject: str
    tenant: str | None = None
    scopes: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    created: str | None = None
    revoked: str | None = None
    """When the key was revoked (ISO 8601); a revoked key is refused but kept for the record."""

    def identity(self) -> Identity:
        return Identity(
            subject=self.subject,
            method="api_key",
            tenant=self.tenant,
            scopes=self.scopes,
            roles=self.roles,
            claims={"key_id": self.key_id},
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.key_id, "hash": self.hash, "subject": self.subject}
        if self.tenant is not None:
            out["tenant"] = self.tenant
        out["scopes"] = sorted(self.scopes)
        out["roles"] = sorted(self.roles)
        if self.created is not None:
            out["created"] = self.created
        if self.revoked is not None:
            out["revoked"] = self.revoked
        return out


def parse_records(data: Any, path: str) -> tuple[tuple[ApiKeyRecord, ...], list[str]]:
    """Key records from a list of mappings; problems name `path[i].<key>`."""
    problems: list[str] = []
    if not isinstance(data, list):
        return (), [f"{path}: must be a list of key records"]
    records: list[ApiKeyRecord] = []
    seen: set[str] = set()
    for index, raw in enumerate(data):
        where = f"{path}[{index}]"
        if not isinstance(raw, Mapping):
            problems.append(f"{where}: must be a mapping")
            continue
        if "key" in raw:
            problems.append(f"{where}.key: plain keys are never stored; give its `hash` (see `guardian keys create`)")
        unknown = sorted(str(k) for k in raw if k not in _RECORD_KEYS | {"key"})
        problems += [f"{where}.{k}: unknown key" for k in unknown]
        key_id, key_hash, subject = raw.get("id"), raw.get("hash"), raw.get("subject")
        ok = True
        if not isinstance(key_id, str) or not _ID_RE.fullmatch(key_id):
            problems.append(f"{where}.id: must be 12 lower-case hex digits")
            ok = False
        elif key_id in seen:
            problems.append(f"{where}.id: duplicate id {key_id!r}")
            ok = False
        if not isinstance(key_hash, str) or not _HASH_RE.fullmatch(key_hash):
            problems.append(f"{where}.hash: must be 'sha256:' and 64 lower-case hex digits")
            ok = False
        if not isinstance(subject, str) or not subject:
            problems.append(f"{where}.subject: must be a non-empty string")
            ok = False
        lists: dict[str, frozenset[str]] = {}
        for name in ("scopes", "roles"):
            value = raw.get(name, [])
            if isinstance(value, str):
                value = value.split()
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                problems.append(f"{where}.{name}: must be a list of non-empty strings")
                ok = False
                value = []
            lists[name] = frozenset(value)
        optional: dict[str, str | None] = {}
        for name in ("tenant", "created", "revoked"):
            value = raw.get(name)
            if value is not None and not isinstance(value, str):
                problems.append(f"{where}.{name}: must be a string")
                ok = False
                value = None
            optional[name] = value
        if ok:
            assert isinstance(key_id, str) and isinstance(key_hash, str) and isinstance(subject, str)
            seen.add(key_id)
            records.append(ApiKeyRecord(key_id, key_hash, subject, optional["tenant"], lists["scopes"],
                                        lists["roles"], optional["created"], optional["revoked"]))
    return tuple(records), problems


def load_key_file(path: str | os.PathLike[str]) -> tuple[ApiKeyRecord, ...]:
    """Records from a key file (`{"keys": [...]}`, JSON or YAML); `ConfigError` if unusable."""
    data = read_file(path)
    if set(data) - {"keys"}:
        raise ConfigError([f"{path}: must be a mapping with one key, `keys`"])
    records, problems = parse_records(data.get("keys", []), f"{path}: keys")
    if problems:
        raise ConfigError(problems)
    return records


def save_key_file(path: str | os.PathLike[str], records: Iterable[ApiKeyRecord]) -> None:
    """Write atomically (readers never see half a file), readable by the owner only."""
    target = Path(path)
    document = {"keys": [record.to_dict() for record in records]}
    if target.suffix == ".json":
        text = json.dumps(document, indent=2) + "\n"
    else:
        text = "# MCP Guardian API keys: hashes only (manage with `guardian keys`).\n"
        text += yaml.safe_dump(document, sort_keys=False)
    handle, temporary = tempfile.mkstemp(dir=target.parent or ".", prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, 0o600)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class ApiKeyStore:
    """Looks up presented keys; re-reads the key file (at most every `reload_interval` s) when it changed."""

    def __init__(
        self,
        records: Iterable[ApiKeyRecord] = (),
        file: str | os.PathLike[str] | None = None,
        reload_interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inline = tuple(records)
        self._file = Path(file) if file is not None else None
        self._reload_interval = reload_interval
        self._clock = clock
        self._checked_at = clock()
        self._stamp: tuple[int, int] | None = None
        self._by_id: dict[str, ApiKeyRecord] = {}
        self._identities: dict[str, Identity] = {}
        file_records: tuple[ApiKeyRecord, ...] = ()
        if self._file is not None:
            self._stamp = self._file_stamp()
            file_records = load_key_file(self._file)
        self._index(file_records)

    def _index(self, file_records: tuple[ApiKeyRecord, ...]) -> None:
        by_id: dict[str, ApiKeyRecord] = {}
        for record in (*self._inline, *file_records):
            current = by_id.get(record.key_id)
            # The same id twice (config and file): a revocation anywhere wins.
            if current is None or (record.revoked and not current.revoked):
                by_id[record.key_id] = record
        self._by_id = by_id
        self._identities = {key_id: record.identity() for key_id, record in by_id.items()}

    def _file_stamp(self) -> tuple[int, int] | None:
        assert self._file is not None
        try:
            stat = self._file.stat()
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size)

    def _maybe_reload(self) -> None:
        if self._file is None:
            return
        now = self._clock()
        if now - self._checked_at < self._reload_interval:
            return
        self._checked_at = now
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return
        try:
            records = load_key_file(self._file)
        except ConfigError as exc:
            logger.warning("API key file not reloaded, keeping the previous keys: %s", "; ".join(exc.problems))
            return
        self._stamp = stamp
        self._index(records)
        logger.info("API key file %s reloaded: %d keys", self._file, len(records))

    def authenticate(self, key: str) -> Identity:
        key_id = key_id_of(key)
        if key_id is None:
            raise AuthFailure.invalid_token("malformed API key")
        self._maybe_reload()
        record = self._by_id.get(key_id)
        matches = hmac.compare_digest(digest(key), record.hash if record is not None else _DUMMY_HASH)
        if record is None or not matches:
            raise AuthFailure.invalid_token("unknown API key")
        if record.revoked is not None:
            raise AuthFailure.invalid_token("API key revoked")
        return self._identities[key_id]
