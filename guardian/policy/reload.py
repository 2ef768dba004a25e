"""Hot reload: watch a policy file and hand over a newly compiled policy when it changes.

Polling (stat every few seconds, read and hash the file when its size, mtime or inode
moved, and every tenth poll regardless) works the same on every platform, on network
filesystems and in containers with bind-mounted config, where inotify-style events
are unreliable; a policy file is small, so the cost is nothing. The swap is a single
attribute assignment, so sessions and in-flight messages are never disturbed: each
message is judged by the policy that was current when its evaluation started.

A file that no longer loads (bad YAML, a typo in a key, a regex that doesn't compile, the
file deleted mid-save) keeps the previous policy in force and logs one line naming the
problem, once per broken version.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from guardian.policy.engine import CompiledPolicy
from guardian.policy.loader import PolicyError, parse_policy

logger = logging.getLogger("guardian.policy")

MAX_POLICY_BYTES = 8 * 1024 * 1024
_REHASH_EVERY = 10
"""Polls between unconditional re-reads (filesystems with coarse mtimes can hide an edit)."""


class PolicySource:
    """A policy file and the version of it last loaded."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.digest: str | None = None
        self._signature: tuple[int, int, int] | None = None
        self._failed: str | None = None
        self._polls = 0

    def load(self) -> CompiledPolicy:
        """The policy as the file says now; raises `PolicyError` (used at start-up)."""
        data = self._read()
        policy = self._compile(data)
        self.digest = hashlib.sha256(data).hexdigest()
        return policy

    def poll(self) -> CompiledPolicy | None:
        """A new policy if the file changed and loads; None otherwise (a broken file is logged)."""
        self._polls += 1
        try:
            stat = self.path.stat()
        except OSError as exc:
            self._fail(f"missing:{exc.errno}", f"cannot read: {exc.strerror or exc}")
            return None
        signature = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if signature == self._signature and self._polls % _REHASH_EVERY:
            return None
        self._signature = signature
        try:
            data = self._read()
        except PolicyError as exc:
            self._fail(f"unreadable:{exc.problems[0]}", _summary(exc))
            return None
        digest = hashlib.sha256(data).hexdigest()
        if digest == self.digest:
            self._failed = None  # back to the version in force: a later breakage is news again
            return None
        if digest == self._failed:
            return None
        try:
            policy = self._compile(data)
        except PolicyError as exc:
            self._fail(digest, _summary(exc))
            return None
        self.digest, self._failed = digest, None
        logger.info("access policy %s reloaded: %d rules", self.path, policy.rule_count)
        return policy

    def _read(self) -> bytes:
        try:
            with self.path.open("rb") as handle:
                data = handle.read(MAX_POLICY_BYTES + 1)
        except OSError as exc:
            raise PolicyError([f"{self.path}: cannot read: {exc.strerror or exc}"]) from None
        if len(data) > MAX_POLICY_BYTES:
            raise PolicyError([f"{self.path}: larger than {MAX_POLICY_BYTES // (1024 * 1024)} MiB"])
        return data

    def _compile(self, data: bytes) -> CompiledPolicy:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PolicyError([f"{self.path}: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
        return CompiledPolicy(parse_policy(text, str(self.path)))

    def _fail(self, key: str, problem: str) -> None:
        if key == self._failed:
            return
        self._failed = key
        logger.error("access policy %s not reloaded, keeping the previous policy: %s", self.path, problem)


def _summary(exc: PolicyError) -> str:
    first = exc.problems[0] if exc.problems else str(exc)
    more = len(exc.problems) - 1
    return first + (f" (and {more} more problem{'s' if more > 1 else ''})" if more > 0 else "")
