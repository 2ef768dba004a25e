"""The in-memory backend: limits for one gateway process (the default).

Every call is plain synchronous code with no `await` inside, so under anyio's single
event-loop thread a check-and-take is atomic without a lock, and the limiter can run
as a sync hook (inline, before any async inspector). Time is `time.monotonic()` unless
a clock is injected (tests), so wall-clock jumps neither refill nor drain buckets.

Memory is bounded: at most `max_keys` buckets are kept, least recently used evicted
first. Client-chosen names reach keys (a per-tool limit keys on the tool name called),
so without the bound a client could grow the table without end. An evicted bucket comes
back full, which only forgives a client that has been quiet the longest; a bucket idle
for `burst / rate` seconds is full anyway. Slot sets are never evicted while a member
is alive (that would free a slot early); dead ones are swept when the table is large.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from guardian.ratelimit.bucket import Bucket, BucketCheck, Check, Rate, refill, wait_for

DEFAULT_MAX_KEYS = 100_000


class MemoryBackend:
    """Token buckets and slot sets in dicts; see the module docstring."""

    def __init__(self, max_keys: int = DEFAULT_MAX_KEYS, clock: Callable[[], float] = time.monotonic) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: dict[str, Bucket] = {}
        """Insertion order is recency: a used bucket is moved to the end; eviction takes the front."""
        self._slots: dict[str, dict[str, float]] = {}
        """key -> member -> expiry."""

    def check(self, checks: Sequence[Check]) -> list[tuple[int, float]]:
        """Take from every bucket and hold every slot, or change nothing.

        Returns the failing checks as (index, seconds to wait; 0 for slots); empty means taken.
        All-or-nothing, so a request refused by one limit does not spend the others.
        """
        now = self._clock()
        failed: list[tuple[int, float]] = []
        tokens: list[float] = []
        for index, check in enumerate(checks):
            if isinstance(check, BucketCheck):
                available = refill(self._buckets.get(check.key), check.limit, now)
                tokens.append(available)
                if available < 1.0:
                    failed.append((index, wait_for(available, check.limit)))
            else:
                tokens.append(0.0)
                members = self._slots.get(check.key)
                if members and check.member not in members and len(members) >= check.limit:
                    _purge(members, now)
                    if len(members) >= check.limit:
                        failed.append((index, 0.0))
        if failed:
            return failed
        for check, available in zip(checks, tokens, strict=True):
            if isinstance(check, BucketCheck):
                self._buckets.pop(check.key, None)
                self._buckets[check.key] = Bucket(available - 1.0, now)
            else:
                self._slots.setdefault(check.key, {})[check.member] = now + check.ttl
        self._bound(now)
        return []

    def release(self, key: str, member: str) -> None:
        """Free a slot (releasing one that is not held, or no longer, is harmless)."""
        members = self._slots.get(key)
        if members is not None:
            members.pop(member, None)
            if not members:
                del self._slots[key]

    def held(self, key: str) -> int:
        """Live members in a slot set (for tests and diagnostics)."""
        members = self._slots.get(key)
        if not members:
            return 0
        _purge(members, self._clock())
        return len(members)

    def tokens(self, key: str, burst: float, rate: float) -> float:
        """Tokens a bucket holds now (for tests and diagnostics)."""
        return refill(self._buckets.get(key), Rate(rate, burst), self._clock())

    def __len__(self) -> int:
        return len(self._buckets) + len(self._slots)

    def _bound(self, now: float) -> None:
        while len(self._buckets) > self.max_keys:
            del self._buckets[next(iter(self._buckets))]
        if len(self._slots) > self.max_keys:
            for key in list(self._slots):
                members = self._slots[key]
                _purge(members, now)
                if not members:
                    del self._slots[key]


def _purge(members: dict[str, float], now: float) -> None:
    for member in [m for m, expiry in members.items() if expiry <= now]:
        del members[member]
