"""What a rate-limit configuration says: the policy, and the reading of its option block.

Kept apart from the limiter so the option contract (names, defaults, problems reported
as `security.inspectors.rate_limit.<key>: <problem>`) is in one place the integrator can
read against `policies/*.yaml` and the config schema.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeGuard

from guardian.decision import Action
from guardian.errors import ConfigError
from guardian.ratelimit.bucket import Rate

Per = Literal["identity", "tenant", "global"]
DEFAULT_REDIS_PREFIX = "guardian:rl:"
DEFAULT_REDIS_TIMEOUT = 0.5
"""Seconds to connect or answer: well under the pipeline's inspector timeout, so the limiter's
own fail-closed/open answer (with `retry_after`) is what the client gets, not a timeout."""
_STANDARD_PER_IDENTITY = Rate(20.0, 100.0)


@dataclass(frozen=True, slots=True)
class ToolRate:
    """A `per_tool` entry: tools matching `pattern` get `rate`, one bucket per tool and per `per`."""

    pattern: str
    rate: Rate
    per: Per = "identity"


@dataclass(frozen=True, slots=True)
class RateLimitPolicy:
    """What is limited; the defaults are the `standard` profile's."""

    per_identity: Rate | None = _STANDARD_PER_IDENTITY
    per_tenant: Rate | None = None
    per_upstream: Rate | None = None
    per_tool: tuple[ToolRate, ...] = ()
    max_sessions_per_identity: int | None = 32
    max_sessions_per_tenant: int | None = None
    max_in_flight_per_identity: int | None = 64
    in_flight_ttl: float = 150.0
    """Seconds a request's slot outlives an answer that never comes (keep above `server.request_timeout`)."""
    session_ttl: float = 1800.0
    """Seconds a session's slot lives without a request (keep at `server.session_idle_timeout`)."""
    exempt_methods: tuple[str, ...] = ("ping",)
    action: Action = Action.BLOCK
    """BLOCK refuses; WARN only records what would have been refused."""



_GATEWAY_KEYS = frozenset({"enabled", "monitor", "timeout"})
_KEYS = frozenset({
    "backend", "redis_url", "redis_prefix", "redis_timeout", "per_identity", "per_tenant", "per_upstream",
    "per_tool", "max_sessions_per_identity", "max_sessions_per_tenant", "max_in_flight_per_identity",
    "in_flight_ttl", "session_ttl", "exempt_methods", "action", "max_keys", "fail_closed",
})
_RATE_KEYS = frozenset({"rate", "burst"})
_PER: tuple[Per, ...] = ("identity", "tenant", "global")


class Options:
    """Reads one options mapping, collecting every problem before raising them together."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.options = options
        self.problems: list[str] = []
        for key in options:
            if key not in _KEYS and key not in _GATEWAY_KEYS:
                self.problem(str(key), "unknown option")

    def problem(self, key: str, text: str) -> None:
        self.problems.append(f"security.inspectors.rate_limit.{key}: {text}")

    def finish(self) -> None:
        if self.problems:
            raise ConfigError(self.problems)

    def policy(self) -> RateLimitPolicy:
        default = RateLimitPolicy()
        action = self.choice("action", ("block", "warn"), "block")
        return RateLimitPolicy(
            per_identity=self.rate("per_identity", default.per_identity),
            per_tenant=self.rate("per_tenant", default.per_tenant),
            per_upstream=self.rate("per_upstream", default.per_upstream),
            per_tool=self.tools(),
            max_sessions_per_identity=self.count("max_sessions_per_identity", default.max_sessions_per_identity),
            max_sessions_per_tenant=self.count("max_sessions_per_tenant", default.max_sessions_per_tenant),
            max_in_flight_per_identity=self.count("max_in_flight_per_identity", default.max_in_flight_per_identity),
            in_flight_ttl=self.positive("in_flight_ttl", default.in_flight_ttl),
            session_ttl=self.positive("session_ttl", default.session_ttl),
            exempt_methods=self.strings("exempt_methods", default.exempt_methods),
            action=Action.WARN if action == "warn" else Action.BLOCK,
        )

    def rate(self, key: str, default: Rate | None) -> Rate | None:
        if key not in self.options:
            return default
        value = self.options[key]
        return None if value is None else self.parse_rate(key, value)

    def parse_rate(self, key: str, value: Any) -> Rate | None:
        if not isinstance(value, Mapping):
            self.problem(key, "must be a mapping {rate, burst} or null")
            return None
        extra = sorted(str(k) for k in value if k not in _RATE_KEYS)
        if extra:
            self.problem(key, f"unknown keys {extra} (expected rate, burst)")
        rate = value.get("rate")
        if not _number(rate) or not 1e-6 <= rate <= 1e6:
            self.problem(f"{key}.rate", "must be a number of requests per second between 0.000001 and 1000000")
            return None
        burst = value.get("burst", max(1.0, rate))
        if not _number(burst) or not 1 <= burst <= 1e9:
            self.problem(f"{key}.burst", "must be a number of requests between 1 and 1000000000")
            return None
        return Rate(float(rate), float(burst))

    def tools(self) -> tuple[ToolRate, ...]:
        value = self.options.get("per_tool") or {}
        if not isinstance(value, Mapping):
            self.problem("per_tool", "must be a mapping of tool-name glob -> {rate, burst, per}")
            return ()
        rules: list[ToolRate] = []
        for pattern, spec in value.items():
            key = f"per_tool.{pattern}"
            if not isinstance(pattern, str) or not pattern:
                self.problem("per_tool", "tool-name globs must be non-empty strings")
                continue
            if not isinstance(spec, Mapping):
                self.problem(key, "must be a mapping {rate, burst, per}")
                continue
            per = spec.get("per", "identity")
            if per not in _PER:
                self.problem(f"{key}.per", f"must be one of {', '.join(_PER)}")
                continue
            rate = self.parse_rate(key, {k: v for k, v in spec.items() if k != "per"})
            if rate is not None:
                rules.append(ToolRate(pattern, rate, per))
        return tuple(rules)

    def count(self, key: str, default: int | None) -> int | None:
        value = self.options.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            self.problem(key, "must be a positive integer or null")
            return default
        return value

    def positive(self, key: str, default: float) -> float:
        value = self.options.get(key, default)
        if not _number(value) or value <= 0:
            self.problem(key, "must be a positive number of seconds")
            return default
        return float(value)

    def strings(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.options.get(key, default)
        if isinstance(value, str) or not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
            self.problem(key, "must be a list of strings")
            return default
        return tuple(value)

    def text(self, key: str, default: str) -> str:
        value = self.options.get(key, default)
        if value is None:
            return default
        if not isinstance(value, str):
            self.problem(key, "must be a string")
            return default
        return value

    def choice(self, key: str, allowed: tuple[str, ...], default: str) -> str:
        value = self.options.get(key, default)
        if value not in allowed:
            self.problem(key, f"must be one of {', '.join(allowed)}")
            return default
        return str(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self.options.get(key, default)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.problem(key, "must be true or false")
            return default
        return value


def _number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
