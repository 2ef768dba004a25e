"""Security profiles: named bundles of inspectors, thresholds and actions, kept as YAML.

A profile (`policies/profiles/<name>.yaml`, or any file given by path) says which
inspectors run and with which options; the config's `security.inspectors.<name>` blocks
are merged over it key by key, so an operator changes one threshold without restating
the profile. Profiles are data rather than code so that a security reviewer can read
exactly what `standard` does, diff it against `enterprise`, and ship a house profile.

One merge rule beyond "the config wins": an `action` set in the config replaces the
profile's per-kind actions (`*_action` keys) for that inspector too, because "make the
secrets inspector warn" means every secrets finding, not only the default kind.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from guardian.documents import merge, read_file, schema_problems
from guardian.errors import ConfigError

_ROOT = Path(__file__).resolve().parent.parent
PROFILE_SCHEMA_PATH = _ROOT / "schemas" / "profile.schema.json"
POLICIES_ENV = "MCP_GUARDIAN_POLICIES"
"""Directory holding `profiles/*.yaml`, for installs where the repo's `policies/` is elsewhere."""

BUILTIN = ("basic", "standard", "enterprise")

GENERIC_KEYS = frozenset({"enabled", "monitor", "timeout", "fail_closed"})
"""Per-inspector keys the gateway handles itself; the rest are the inspector's options."""


def policies_dir() -> Path:
    return Path(os.environ.get(POLICIES_ENV) or _ROOT / "policies")


@dataclass(frozen=True, slots=True)
class Profile:
    """A loaded profile: its name, its fail-closed default and one option block per inspector."""

    name: str
    fail_closed: bool = True
    inspectors: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    description: str = ""
    source: str = "<builtin>"

    def block(self, inspector: str, override: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The profile's block for `inspector` with the config's `override` merged over it."""
        base = dict(self.inspectors.get(inspector, {}))
        if not override:
            return base
        if "action" in override:
            base = {k: v for k, v in base.items() if not k.endswith("_action")}
        return merge(base, override)


def profile_path(name_or_path: str) -> Path:
    """`standard` → the shipped file; anything else is a path to a profile file."""
    if name_or_path in BUILTIN:
        return policies_dir() / "profiles" / f"{name_or_path}.yaml"
    return Path(name_or_path)


@cache
def load_profile(name_or_path: str) -> Profile:
    """Read and validate a profile; one-line `ConfigError`s name the file and the JSON path."""
    path = profile_path(name_or_path)
    if name_or_path in BUILTIN and not path.exists():
        hint = f"set {POLICIES_ENV} to the policies/ directory"
        raise ConfigError([f"{path}: shipped profile {name_or_path!r} not found ({hint})"])
    data = read_file(path)
    problems = [f"{path}: {problem}" for problem in schema_problems(data, PROFILE_SCHEMA_PATH)]
    if problems:
        raise ConfigError(problems)
    return Profile(
        name=data.get("name", path.stem),
        fail_closed=data.get("fail_closed", True),
        inspectors={name: dict(block or {}) for name, block in data.get("inspectors", {}).items()},
        description=data.get("description", ""),
        source=str(path),
    )
