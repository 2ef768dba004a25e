"""`guardian keys create | list | revoke --file F`: manage an API key file.

`create` prints the new key once, on stdout and alone (so `KEY=$(guardian keys create …)`
works); only its hash is written. `revoke` keeps the record, marked with the time, so
the file doubles as a history; a running gateway picks revocations up when it next
re-reads the file (`authentication.api_keys.reload_interval`, 5 s by default).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from guardian.auth.api_keys import ApiKeyRecord, digest, generate_key, load_key_file, save_key_file
from guardian.errors import ConfigError


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _load(path: str | Path) -> list[ApiKeyRecord]:
    return list(load_key_file(path)) if Path(path).exists() else []


def create_key(
    path: str | Path,
    subject: str,
    *,
    tenant: str | None = None,
    scopes: Iterable[str] = (),
    roles: Iterable[str] = (),
) -> tuple[str, ApiKeyRecord]:
    """Add a new key for `subject` to the file (created if missing): (the key, its record)."""
    records = _load(path)
    taken = {r.key_id for r in records}
    key_id, key = generate_key()
    while key_id in taken:  # 48-bit ids: a clash is improbable, but cheap to rule out
        key_id, key = generate_key()
    record = ApiKeyRecord(key_id, digest(key), subject, tenant, frozenset(scopes), frozenset(roles), _now())
    save_key_file(path, [*records, record])
    return key, record


def list_keys(path: str | Path) -> tuple[ApiKeyRecord, ...]:
    return load_key_file(path)


def revoke_key(path: str | Path, key_id: str) -> ApiKeyRecord:
    """Mark a key revoked (idempotent); `KeyError` if the file has no such id."""
    records = _load(path)
    for index, record in enumerate(records):
        if record.key_id == key_id:
            if record.revoked is None:
                record = ApiKeyRecord(record.key_id, record.hash, record.subject, record.tenant, record.scopes,
                                      record.roles, record.created, _now())
                records[index] = record
                save_key_file(path, records)
            return record
    raise KeyError(key_id)


# --- argparse wiring -------------------------------------------------------------------------------


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `keys create|list|revoke` under the CLI's subcommands."""
    keys = commands.add_parser("keys", help="manage API keys", description="Manage an API key file (hashes only).")
    actions = keys.add_subparsers(dest="keys_action", metavar="SUBCOMMAND", required=True)

    create = actions.add_parser("create", help="create a key and print it once",
                                description="Create a key bound to an identity; the key is printed once.")
    create.add_argument("--file", "-f", required=True, help="the key file (JSON or YAML; created if missing)")
    create.add_argument("--subject", required=True, help="the identity the key stands for")
    create.add_argument("--tenant", help="the identity's tenant")
    create.add_argument("--scope", action="append", default=[], dest="scopes", help="a granted scope (repeatable)")
    create.add_argument("--role", action="append", default=[], dest="roles", help="a role (repeatable)")

    listing = actions.add_parser("list", help="list keys (never the keys themselves)")
    listing.add_argument("--file", "-f", required=True)
    listing.add_argument("--json", action="store_true", help="JSON lines instead of a table")

    revoke = actions.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("--file", "-f", required=True)
    revoke.add_argument("key_id", metavar="ID")


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Carry out a parsed `keys` command: 0 done, 1 no such key, 2 unusable file."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        if args.keys_action == "create":
            key, record = create_key(args.file, args.subject, tenant=args.tenant, scopes=args.scopes,
                                     roles=args.roles)
            print(key, file=out)
            print(f"guardian: key {record.key_id} for {record.subject!r} added to {args.file}; "
                  "it is shown only now: store it safely", file=err)
            return 0
        if args.keys_action == "list":
            records = list_keys(args.file)
            if args.json:
                for record in records:
                    row = {k: v for k, v in record.to_dict().items() if k != "hash"}
                    print(json.dumps(row), file=out)
            else:
                _table(records, out)
            return 0
        try:
            record = revoke_key(args.file, args.key_id)
        except KeyError:
            print(f"guardian: {args.file}: no key with id {args.key_id!r}", file=err)
            return 1
        print(f"guardian: key {record.key_id} ({record.subject}) revoked at {record.revoked}", file=err)
        return 0
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"guardian: {problem}", file=err)
        return 2
    except OSError as exc:
        print(f"guardian: {args.file}: {exc.strerror or exc}", file=err)
        return 2


def _table(records: Iterable[ApiKeyRecord], out: TextIO) -> None:
    rows = [("ID", "SUBJECT", "TENANT", "SCOPES", "ROLES", "CREATED", "STATUS")]
    for r in records:
        status = f"revoked {r.revoked}" if r.revoked else "active"
        rows.append((r.key_id, r.subject, r.tenant or "-", " ".join(sorted(r.scopes)) or "-",
                     " ".join(sorted(r.roles)) or "-", r.created or "-", status))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip(), file=out)
