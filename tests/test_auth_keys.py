"""API key files, `guardian keys create|list|revoke`, and the `authentication` config block's checks."""

from __future__ import annotations

import argparse
import io
import json
import re
import stat
from pathlib import Path

import pytest
import yaml

from guardian.auth import keys_cli
from guardian.auth.api_keys import ApiKeyStore, digest, generate_key, load_key_file
from guardian.auth.errors import AuthFailure
from guardian.auth.settings import AuthSettings
from guardian.errors import ConfigError

KEY_RE = re.compile(r"mcpg_([0-9a-f]{12})_[A-Za-z0-9_-]{43}")


def cli(*argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="guardian")
    keys_cli.add_parser(parser.add_subparsers(dest="action", required=True))
    out, err = io.StringIO(), io.StringIO()
    code = keys_cli.run(parser.parse_args(list(argv)), out, err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("name", ["keys.yaml", "keys.json"])
def test_create_prints_the_key_once_and_stores_only_its_hash(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    code, out, err = cli("keys", "create", "--file", str(path), "--subject", "ci-bot", "--tenant", "acme",
                         "--scope", "mcp:tools", "--scope", "deploy", "--role", "ops")
    assert code == 0
    key = out.strip()
    match = KEY_RE.fullmatch(key)
    assert match is not None and out == key + "\n"
    assert "shown only now" in err and key not in err
    text = path.read_text()
    secret = key.split("_", 2)[2]  # after `mcpg_<id>_`; the secret itself may contain `_`
    assert key not in text and secret not in text
    assert digest(key) in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    document = json.loads(text) if name.endswith(".json") else yaml.safe_load(text)
    assert document["keys"][0]["id"] == match.group(1) and document["keys"][0]["scopes"] == ["deploy", "mcp:tools"]

    identity = ApiKeyStore(file=path).authenticate(key)
    assert (identity.subject, identity.tenant, identity.method) == ("ci-bot", "acme", "api_key")
    assert identity.scopes == {"mcp:tools", "deploy"} and identity.roles == {"ops"}


def test_list_shows_keys_without_secrets_and_revoke_marks_them(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    _, first, _ = cli("keys", "create", "-f", str(path), "--subject", "one")
    _, second, _ = cli("keys", "create", "-f", str(path), "--subject", "two")
    first_id = KEY_RE.fullmatch(first.strip()).group(1)  # type: ignore[union-attr]

    code, out, _ = cli("keys", "revoke", "-f", str(path), first_id)
    assert code == 0
    code, out, _ = cli("keys", "list", "-f", str(path))
    assert code == 0
    assert first.strip() not in out and second.strip() not in out and "sha256:" not in out
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["ID", "SUBJECT"]
    assert f"{first_id}  one" in lines[1] and "revoked" in lines[1]
    assert lines[2].endswith("active")
    code, out, _ = cli("keys", "list", "-f", str(path), "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [row["subject"] for row in rows] == ["one", "two"] and "hash" not in rows[0] and "revoked" in rows[0]

    code, _, err = cli("keys", "revoke", "-f", str(path), "0123456789ab")
    assert code == 1 and "no key with id" in err
    (tmp_path / "broken.yaml").write_text("keys: [{id: nope}]")
    code, _, err = cli("keys", "list", "-f", str(tmp_path / "broken.yaml"))
    assert code == 2 and ".id: must be 12 lower-case hex digits" in err


def test_store_rereads_the_file_so_revocation_needs_no_restart(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    key, record = keys_cli.create_key(path, "svc")
    now = [100.0]
    store = ApiKeyStore(file=path, reload_interval=5.0, clock=lambda: now[0])
    assert store.authenticate(key).subject == "svc"
    keys_cli.revoke_key(path, record.key_id)
    now[0] += 1
    assert store.authenticate(key).subject == "svc", "within the reload interval the file is not re-read"
    now[0] += 5
    with pytest.raises(AuthFailure, match="API key revoked"):
        store.authenticate(key)
    # A file broken mid-edit keeps the keys last read instead of locking everyone out.
    other, _ = keys_cli.create_key(path, "svc-2")
    now[0] += 6
    assert store.authenticate(other).subject == "svc-2"
    path.write_text("keys: [{")
    now[0] += 6
    assert store.authenticate(other).subject == "svc-2"


def test_keys_in_config_and_their_mistakes() -> None:
    key_id, key = generate_key()
    settings = AuthSettings.from_dict({"api_keys": {"keys": [
        {"id": key_id, "hash": digest(key), "subject": "inline", "scopes": "a b"},
    ]}})  # fmt: skip
    assert settings.enabled and settings.api_keys is not None
    assert settings.api_keys.keys[0].scopes == {"a", "b"}
    with pytest.raises(ConfigError) as caught:
        AuthSettings.from_dict({"api_keys": {"keys": [
            {"id": key_id, "key": key, "subject": "oops"},
            {"id": "XYZ", "hash": "md5:abc", "subject": "", "colour": "red"},
        ]}})  # fmt: skip
    problems = caught.value.problems
    assert "authentication.api_keys.keys[0].key: plain keys are never stored; give its `hash` " \
           "(see `guardian keys create`)" in problems
    assert "authentication.api_keys.keys[0].hash: must be 'sha256:' and 64 lower-case hex digits" in problems
    assert "authentication.api_keys.keys[1].id: must be 12 lower-case hex digits" in problems
    assert "authentication.api_keys.keys[1].subject: must be a non-empty string" in problems
    assert "authentication.api_keys.keys[1].colour: unknown key" in problems
    assert all(key not in p for p in problems), "a plain key is never echoed"


def test_config_problems_name_their_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        AuthSettings.from_dict({
            "resoure": "typo",
            "required_scopes": "mcp:tools",
            "public_paths": ["/mcp", "health"],
            "protect_metrics": "yes",
            "oauth": {"issuer": "not a url", "jwks_uri": "http://keys.example.test/jwks", "leeway": 900,
                      "algorithms": []},
            "api_keys": {"file": str(tmp_path / "absent.yaml")},
            "mtls": {"identities": {"serial:42": {}, "cn:ok": {"scopes": [1]}}},
        })  # fmt: skip
    problems = caught.value.problems
    expected = [
        "authentication.resoure: unknown key",
        "authentication.public_paths: '/mcp' cannot be public",
        "authentication.public_paths: 'health' must start with '/'",
        "authentication.protect_metrics: must be true or false",
        "authentication.resource: required with oauth: the gateway's canonical URL, e.g. https://mcp.example.com/mcp",
        "authentication.oauth.issuer: must be an http(s) URL",
        "authentication.oauth.jwks_uri: must use https (plain http is allowed only for loopback hosts)",
        "authentication.oauth.algorithms: must not be empty",
        "authentication.oauth.leeway: must be >= 0 and <= 300",
        "authentication.mtls.identities['serial:42']: selector must be one of cn:…, dns:…, uri:…, email:…, sha256:…",
        "authentication.mtls.identities['cn:ok'].scopes: must be a list of non-empty strings",
    ]
    for line in expected:
        assert line in problems, line
    assert any(p.startswith("authentication.api_keys.file: ") and "cannot read" in p for p in problems)
    assert all(p.startswith("authentication.") for p in problems)


def test_defaults_and_enabling() -> None:
    off = AuthSettings.from_dict({})
    assert not off.enabled and off.public_paths == {"/health"} and off.protect_metrics
    with pytest.raises(ConfigError) as caught:
        AuthSettings.from_dict({"enabled": True})
    assert caught.value.problems == ["authentication.enabled: no method configured: add oauth, api_keys or mtls"]
    settings = AuthSettings.from_dict({"resource": "https://gw.example.test/mcp", "oauth": {
        "issuer": "https://idp.example.test", "jwks_uri": "https://idp.example.test/jwks"}})
    assert settings.enabled and settings.oauth is not None
    assert settings.oauth.audiences == ("https://gw.example.test/mcp",)
    assert settings.oauth.authorization_servers == ("https://idp.example.test",)
    assert settings.oauth.algorithms == ("RS256", "ES256") and settings.oauth.leeway == 30
    disabled = AuthSettings.from_dict({"enabled": False, "resource": "https://gw.example.test/mcp", "oauth": {
        "issuer": "https://idp.example.test", "jwks_uri": "https://idp.example.test/jwks"}})
    assert not disabled.enabled


def test_key_file_must_be_a_keys_mapping(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    path.write_text('["not", "a", "mapping"]')
    with pytest.raises(ConfigError, match=r"k\.json: \$: the top level must be a mapping, not list"):
        load_key_file(path)
    path.write_text('{"keys": [], "owner": "me"}')
    with pytest.raises(ConfigError, match="must be a mapping with one key, `keys`"):
        load_key_file(path)
