"""Security profiles as YAML: the shipped files, merging the config over them, custom profile
files, monitor mode, option errors, and what each profile does to the same traffic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from guardian import Action, ConfigError, Guardian
from guardian.config import Config
from guardian.gateway import check_inspectors
from guardian.profiles import BUILTIN, load_profile, policies_dir

pytestmark = pytest.mark.anyio

REPO_ROOT = Path(__file__).resolve().parent.parent
ZWSP = "\u200b"
CALL = {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "fetch", "arguments": {}}}


def result(text: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 5, "result": {"content": [{"type": "text", "text": text}]}}


def aws_key() -> str:
    # Assembled at run time so secret scanners do not flag this file.
    return "AKIA" + "Q3WZ7RTY" + "PX4M2N5K"


@pytest.mark.parametrize("name", BUILTIN)
def test_shipped_profiles_load_and_name_themselves(name: str) -> None:
    profile = load_profile(name)
    assert profile.name == name
    assert profile.source == str(policies_dir() / "profiles" / f"{name}.yaml")
    assert profile.inspectors, "a profile with no inspectors protects nothing"
    Guardian({"security_profile": name})  # every option in the shipped file is accepted


def test_fail_closed_comes_from_the_profile() -> None:
    assert load_profile("basic").fail_closed is False
    assert load_profile("standard").fail_closed is True
    assert Config.from_dict({"security_profile": "basic"}).security.fail_closed is False


def test_config_block_is_merged_over_the_profile_key_by_key() -> None:
    config = Config.from_dict({"security": {"inspectors": {"secrets": {"directions": ["server_to_client"]}}}})
    secrets = config.security.inspectors["secrets"]
    assert secrets.options["directions"] == ["server_to_client"]
    assert secrets.options["action"] == "redact"  # kept from standard.yaml


def test_an_action_in_the_config_replaces_the_profiles_per_kind_actions() -> None:
    config = Config.from_dict({"security": {"inspectors": {"hidden_characters": {"action": "warn"}}}})
    options = config.security.inspectors["hidden_characters"].options
    assert options == {"action": "warn"}


async def test_disabling_an_inspector_removes_it() -> None:
    guardian = Guardian({"security": {"inspectors": {"secrets": {"enabled": False}}}})
    assert "secrets" not in [i.name for i in guardian.pipeline.inspectors]
    decision = await guardian.inspect(result(f"key {aws_key()}"), direction="server_to_client", request=CALL)
    assert decision.action is Action.ALLOW


async def test_monitor_mode_records_but_does_not_enforce() -> None:
    guardian = Guardian({"security": {"inspectors": {"secrets": {"monitor": True}}}})
    decision = await guardian.inspect(result(f"key {aws_key()}"), direction="server_to_client", request=CALL)
    assert decision.action is Action.WARN and decision.patched is None
    assert decision.findings and all(f.monitor for f in decision.findings)
    assert decision.reasons == []  # nothing enforced, nothing to tell the client


def test_unknown_or_bad_options_are_one_line_each() -> None:
    config = Config.from_dict(
        {"security": {"inspectors": {"secrets": {"acton": "block", "directions": ["sideways"]}}}}
    )
    with pytest.raises(ConfigError) as raised:
        check_inspectors(config)
    assert raised.value.problems == [
        "$.security.inspectors.secrets.directions: unknown value(s) 'sideways'; "
        "choose from client_to_server, server_to_client",
        "$.security.inspectors.secrets.acton: unknown option",
    ]


def test_a_profile_file_by_path(tmp_path: Path) -> None:
    path = tmp_path / "house.yaml"
    path.write_text(
        yaml.safe_dump(
            {"name": "house", "fail_closed": False, "inspectors": {"secrets": {"action": "block"}}}
        )
    )
    config = Config.from_dict({"security_profile": str(path)})
    assert config.profile == "house"
    assert config.security.fail_closed is False
    assert set(config.security.inspectors) == {"secrets"}  # no hidden-character inspector in this profile


def test_a_broken_profile_file_names_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("inspectors:\n  secrets:\n    enabled: maybe\n")
    with pytest.raises(ConfigError) as raised:
        Config.from_dict({"security_profile": str(path)})
    (line,) = raised.value.problems
    assert str(path) in line and "$.inspectors.secrets.enabled" in line and "boolean" in line


def test_check_config_runs_the_inspectors_option_checks(tmp_path: Path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text("security:\n  inspectors:\n    hidden_characters:\n      tag_action: explode\n")
    run = subprocess.run(
        [sys.executable, "-m", "guardian", "check-config", str(path)],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=60, check=False,
    )
    assert run.returncode == 1
    key = "$.security.inspectors.hidden_characters.tag_action"
    assert run.stderr.strip() == f"{path}: {key}: 'explode' is not one of block, redact, warn, allow"


@pytest.mark.parametrize(
    ("profile", "text", "expected"),
    [
        ("basic", f"ig{ZWSP}nore", Action.REDACT),
        ("standard", f"ig{ZWSP}nore", Action.REDACT),
        ("enterprise", f"ig{ZWSP}nore", Action.BLOCK),
        ("basic", "plain weather report", Action.ALLOW),
        ("enterprise", "plain weather report", Action.ALLOW),
    ],
)
async def test_profiles_differ_on_the_same_result(profile: str, text: str, expected: Action) -> None:
    guardian = Guardian({"security_profile": profile})
    decision = await guardian.inspect(result(text), direction="server_to_client", request=CALL)
    assert decision.action is expected


async def test_secrets_in_arguments_pass_basic_but_not_standard() -> None:
    call = {**CALL, "params": {"name": "fetch", "arguments": {"token": aws_key()}}}
    basic = await Guardian({"security_profile": "basic"}).inspect(call)
    standard = await Guardian({"security_profile": "standard"}).inspect(call)
    assert basic.action is Action.ALLOW
    assert standard.action is Action.REDACT and standard.patched is not None
    assert aws_key() not in standard.patched.model_dump_json()
