"""Token-bucket arithmetic, and the checks a limiter asks a backend to make.

A bucket holds up to `burst` tokens and gains `rate` tokens per second; a request
takes one. The state is two numbers (tokens left, when they were counted), refilled
lazily when the bucket is next looked at, so an idle bucket costs nothing and a bucket
left alone for `burst / rate` seconds is exactly a fresh one (which is why backends may
forget it then). The Redis backend does the same sums in Lua (see `redis.py`); this
module is the reference they are tested against.

A slot is the other kind of limit: a set of members (sessions, requests in flight)
that may hold at most `limit` at once, each member expiring after its own time-to-live
so a member nobody releases (a crashed gateway, a lost answer) frees itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Rate:
    """`rate` tokens per second, up to `burst` saved up (`burst` >= 1, `rate` > 0)."""

    rate: float
    burst: float

    @property
    def full_after(self) -> float:
        """Seconds an empty bucket takes to fill: after that, its state is that of a new one."""
        return self.burst / self.rate


@dataclass(slots=True)
class Bucket:
    tokens: float
    stamp: float
    """When `tokens` was counted (the backend's clock, in seconds)."""


def refill(bucket: Bucket | None, limit: Rate, now: float) -> float:
    """Tokens in `bucket` at `now`: a missing bucket is full; a clock going backwards adds none."""
    if bucket is None:
        return limit.burst
    return min(limit.burst, bucket.tokens + max(0.0, now - bucket.stamp) * limit.rate)


def wait_for(tokens: float, limit: Rate, cost: float = 1.0) -> float:
    """Seconds until a bucket holding `tokens` can pay `cost` (0 when it already can)."""
    return 0.0 if tokens >= cost else (cost - tokens) / limit.rate


# --- what the limiter asks of a backend ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BucketCheck:
    """Take one token from the bucket at `key`."""

    key: str
    limit: Rate
    scope: str
    """Which configured limit this is, as shown to the client (`per_identity`, `per_tool`, ...)."""


@dataclass(frozen=True, slots=True)
class SlotCheck:
    """Put `member` in the slot set at `key` (already there: refresh it) unless `limit` are held."""

    key: str
    limit: int
    member: str
    ttl: float
    """Seconds the member lives unless refreshed or released."""
    scope: str
    retry_after: float
    """What to tell a refused client: a slot frees when someone finishes, which no clock predicts."""


Check = BucketCheck | SlotCheck


@dataclass(frozen=True, slots=True)
class Refusal:
    """The limit that said no, and how long the client should wait before trying again."""

    scope: str
    retry_after: float


def refusal(checks: Sequence[Check], failed: Sequence[tuple[int, float]]) -> Refusal | None:
    """The refusal to report from (index into `checks`, bucket wait) pairs: the longest wait.

    Every failing limit must pass before a retry can succeed, so the longest wait is the
    honest lower bound. A slot's wait is its own hint (the backend reports 0 for slots).
    """
    best: Refusal | None = None
    for index, wait in failed:
        check = checks[index]
        seconds = wait if isinstance(check, BucketCheck) else check.retry_after
        if best is None or seconds > best.retry_after:
            best = Refusal(check.scope, seconds)
    return best


# --- what a shared backend offers -----------------------------------------------------------------


class BackendError(Exception):
    """A shared store could not answer; the message says why in one line."""


class SharedBackend(Protocol):
    """A store several gateway hosts share (Redis): the memory backend's calls, over I/O."""

    async def check(self, checks: Sequence[Check]) -> list[tuple[int, float]]: ...

    async def release(self, key: str, member: str) -> None: ...

    async def aclose(self) -> None: ...
