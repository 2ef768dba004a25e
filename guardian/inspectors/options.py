"""Reading an inspector's option block (profile YAML merged with the config) into typed values.

Every problem becomes one line naming `$.security.inspectors.<name>.<key>`, and keys nobody
read are reported as unknown, so a typo in a threshold is an error at start-up rather
than a detector silently running with its default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from guardian.decision import Action
from guardian.errors import ConfigError
from guardian.events import Direction
from guardian.profiles import GENERIC_KEYS

T = TypeVar("T")

_ACTIONS = {"block": Action.BLOCK, "redact": Action.REDACT, "warn": Action.WARN, "allow": Action.ALLOW}
BOTH_DIRECTIONS = frozenset(Direction)


class Options:
    """Typed access to one inspector's options; call `done()` to reject unknown keys.

    The generic keys (`enabled`, `monitor`, `timeout`, `fail_closed`) are the pipeline's: a
    whole config block may be passed in, and they are neither read nor reported here.
    """

    def __init__(self, inspector: str, options: Mapping[str, Any] | None) -> None:
        self._name = inspector
        self._options = {k: v for k, v in (options or {}).items() if k not in GENERIC_KEYS}
        self._read: set[str] = set()
        self._problems: list[str] = []

    def _get(self, key: str) -> Any:
        self._read.add(key)
        return self._options.get(key)

    def problem(self, key: str, message: str) -> None:
        self._problems.append(f"$.security.inspectors.{self._name}.{key}: {message}")

    def has(self, key: str) -> bool:
        return key in self._options

    def action(self, key: str, default: Action) -> Action:
        value = self._get(key)
        if value is None:
            return default
        if value not in _ACTIONS:
            self.problem(key, f"{value!r} is not one of block, redact, warn, allow")
            return default
        return _ACTIONS[value]

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.problem(key, f"{value!r} is not true or false")
            return default
        return value

    def number(self, key: str, default: float, *, low: float | None = None, high: float | None = None) -> float:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(key, f"{value!r} is not a number")
            return default
        if (low is not None and value < low) or (high is not None and value > high):
            self.problem(key, f"{value!r} is outside [{low}, {high}]")
            return default
        return float(value)

    def integer(self, key: str, default: int, *, low: int | None = None, high: int | None = None) -> int:
        """`number`, and whole (a count or a size: `4096.0` is taken, `1.5` is a problem)."""
        value = self.number(key, default, low=low, high=high)
        if not float(value).is_integer():  # inf and nan too
            self.problem(key, f"{value!r} is not a whole number")
            return default
        return int(value)

    def strings(self, key: str, default: tuple[str, ...], *, choices: frozenset[str] | None = None) -> tuple[str, ...]:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(key, f"{value!r} is not a list of strings")
            return default
        if choices is not None and (unknown := sorted(set(value) - choices)):
            listed = ", ".join(map(repr, unknown))
            self.problem(key, f"unknown value(s) {listed}; choose from {', '.join(sorted(choices))}")
            return default
        return tuple(value)

    def directions(
        self, key: str = "directions", default: frozenset[Direction] = BOTH_DIRECTIONS
    ) -> frozenset[Direction]:
        names = self.strings(key, tuple(default), choices=frozenset(Direction))
        return frozenset(Direction(n) for n in names)

    def mapping(self, key: str) -> dict[str, Any]:
        value = self._get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.problem(key, f"{value!r} is not a mapping")
            return {}
        return dict(value)

    def raw(self, key: str, default: T) -> Any | T:
        """A value the caller validates itself (use `problem` to report it)."""
        value = self._get(key)
        return default if value is None else value

    def done(self) -> None:
        """Raise one `ConfigError` with every problem, unknown keys included."""
        for key in sorted(set(self._options) - self._read):
            self.problem(key, "unknown option")
        if self._problems:
            raise ConfigError(self._problems)
