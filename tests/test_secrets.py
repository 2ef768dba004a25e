"""Secrets: each provider format is found and redacted exactly, identifiers that merely look
random (git SHAs, UUIDs, digests) are left alone, and the audit never sees the secret.

No literal credential is stored in this file: every secret is assembled at runtime from a
prefix and a deterministic pseudo-random body, so repository scanners stay quiet.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import string
import uuid
from typing import Any

import pytest
from mcp_types import JSONRPCRequest

from guardian import Action, Guardian
from guardian.inspectors.secrets import SecretsInspector, excerpt_of, find_secrets
from tests.support.gateway import demo_server_stdio_argv, wrap_params
from tests.support.peers import open_client, text_of

pytestmark = pytest.mark.anyio

ALNUM = string.ascii_letters + string.digits
UPPER_B32 = string.ascii_uppercase + "234567"


def body(n: int, alphabet: str = ALNUM, seed: int = 0) -> str:
    rng = random.Random(f"{seed}-{n}-{alphabet[:3]}")
    return "".join(rng.choice(alphabet) for _ in range(n))


def b64url(obj: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


def pem() -> str:
    lines = [body(64, ALNUM + "+/", seed=i) for i in range(6)]
    kind = "RSA " + "PRIVATE KEY"
    return "-----BEGIN " + kind + "-----\n" + "\n".join(lines) + "\n-----END " + kind + "-----"


def jwt() -> str:
    return ".".join([b64url({"alg": "HS256", "typ": "JWT"}), b64url({"sub": "42", "name": "x"}), body(43, seed=7)])


# (expected kind, secret, text containing it) — one per provider format the issue lists.
def cases() -> list[tuple[str, str, str]]:
    aws_id = "AKIA" + body(16, UPPER_B32, seed=1)
    sts_id = "ASIA" + body(16, UPPER_B32, seed=2)
    aws_secret = body(40, ALNUM + "/+", seed=3)
    gcp_key = "-----BEGIN " + "PRIVATE KEY-----\\n" + body(60, seed=4) + "\\n-----END " + "PRIVATE KEY-----\\n"
    gcp = json.dumps({"type": "service_" + "account", "project_id": "p", "private_key": gcp_key.replace("\\n", "\n")})
    gh = {p: p + body(36, seed=i) for i, p in enumerate(["gh" + c + "_" for c in "pousr"])}
    fine = "github_" + "pat_" + body(22, seed=9) + "_" + body(59, seed=10)
    slack = "xox" + "b-" + body(12, string.digits, seed=11) + "-" + body(12, string.digits, seed=12) + "-" + body(24)
    stripe_live = "sk_" + "live_" + body(24, seed=13)
    stripe_restricted = "rk_" + "live_" + body(24, seed=14)
    stripe_test = "sk_" + "test_" + body(24, seed=15)
    openai = "sk-" + body(20, seed=16) + "T3Blbk" + "FJ" + body(20, seed=17)
    openai_proj = "sk-" + "proj-" + body(48, ALNUM + "_-", seed=18)
    anthropic = "sk-" + "ant-" + "api03-" + body(93, ALNUM + "_-", seed=19) + "AA"
    url_pass = body(14, seed=20)
    password = body(12, ALNUM + "!#%", seed=21)
    api_key = body(32, seed=22)
    token = jwt()
    key = pem()
    gcp_secret = json.dumps(json.loads(gcp)["private_key"])[1:-1]  # as it appears in the raw JSON text
    return [
        ("aws_access_key_id", aws_id, f"aws_access_key_id = {aws_id}"),
        ("aws_access_key_id", sts_id, f"temporary credentials issued: {sts_id} (expires in 1h)"),
        ("aws_secret_access_key", aws_secret, f"aws_secret_access_key = {aws_secret}"),
        ("gcp_service_account", gcp_secret, gcp),
        *[("github_token", t, f"export GITHUB_TOKEN={t}") for t in gh.values()],
        ("github_token", fine, f"token: {fine}"),
        ("slack_token", slack, f"SLACK_BOT={slack}"),
        ("stripe_key", stripe_live, f"Stripe key {stripe_live} is live"),
        ("stripe_key", stripe_restricted, f"restricted: {stripe_restricted}"),
        ("stripe_key", stripe_test, f"stripe.api_key = '{stripe_test}'"),
        ("openai_api_key", openai, f"OPENAI_API_KEY={openai}"),
        ("openai_api_key", openai_proj, f"use {openai_proj} for the project"),
        ("anthropic_api_key", anthropic, f"ANTHROPIC_API_KEY={anthropic}"),
        ("private_key", key, f"here is the key:\n{key}\nkeep it safe"),
        ("jwt", token, f"Authorization: Bearer {token}"),
        ("url_credentials", url_pass, f"DATABASE_URL=postgres://app:{url_pass}@db.internal:5432/app"),
        ("password", password, f"password={password}"),
        ("password", password, f"db passwd: {password}"),
        ("password", password, f'{{"secret": "{password}"}}'[1:-1]),
        ("api_key", api_key, f"api_key={api_key}"),
    ]


CASES = cases()


@pytest.mark.parametrize(("kind", "secret", "text"), CASES, ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(CASES)])
def test_each_provider_format_is_found_with_its_exact_span(kind: str, secret: str, text: str) -> None:
    found = find_secrets(text)
    spans = [(k, text[s:e]) for k, s, e in found]
    assert (kind, secret) in spans


def tool_result(text: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 3, "result": {"content": [{"type": "text", "text": text}]}}


CALL = JSONRPCRequest(jsonrpc="2.0", id=3, method="tools/call", params={"name": "fetch", "arguments": {}})


def patched_text(decision: Any) -> str:
    assert decision.patched is not None
    return str(decision.patched.model_dump()["result"]["content"][0]["text"])


@pytest.mark.parametrize(("kind", "secret", "text"), CASES[:3] + CASES[4:5] + CASES[-9:], ids=lambda v: str(v)[:12])
async def test_redaction_replaces_exactly_the_span(kind: str, secret: str, text: str) -> None:
    guardian = Guardian({"security_profile": "standard"})
    decision = await guardian.inspect(tool_result(text), direction="server_to_client", request=CALL)
    assert decision.action is Action.REDACT
    start = text.index(secret)
    expected = text[:start] + f"[REDACTED:SECRET:{kind.upper()}]" + text[start + len(secret) :]
    assert patched_text(decision) == expected


async def test_secret_inside_json_inside_text_is_redacted_in_place() -> None:
    key_id = "AKIA" + body(16, UPPER_B32, seed=30)
    inner = json.dumps({"user": "ci", "credentials": {"access_key": key_id, "region": "eu-west-1"}})
    guardian = Guardian({"security_profile": "standard"})
    decision = await guardian.inspect(tool_result(inner), direction="server_to_client", request=CALL)
    assert decision.action is Action.REDACT
    result = json.loads(patched_text(decision))
    assert result == {
        "user": "ci",
        "credentials": {"access_key": "[REDACTED:SECRET:AWS_ACCESS_KEY_ID]", "region": "eu-west-1"},
    }


BENIGN = [
    f"Merged in commit {hashlib.sha1(b'x').hexdigest()} on main.",
    f'{{"sha": "{hashlib.sha1(b"y").hexdigest()}", "parents": ["{hashlib.sha1(b"z").hexdigest()}"]}}',
    f"request id {uuid.UUID(int=123456789123456789)} failed; retry with id={uuid.uuid5(uuid.NAMESPACE_DNS, 'a')}",
    f"sha256: {hashlib.sha256(b'file').hexdigest()}",
    f"md5 checksum = {hashlib.md5(b'file').hexdigest()}",
    f"digest: sha256:{hashlib.sha256(b'layer').hexdigest()}",
    "The quarterly report shows revenue up 12% and the team shipped the new onboarding flow.",
    "Set the password in the settings page; it must be at least 12 characters long.",
    "password: <your password here>",
    "api_key = os.environ['OPENAI_API_KEY']",
    "token = get_token()",
    "See https://example.com/docs/api?key=value for the reference.",
    "aws_access_key_id = " + "AKIA" + "X" * 16,
    "The function returns {\"status\": \"ok\", \"count\": 42, \"items\": [\"alpha\", \"beta\"]}",
    "Base64 of the logo: iVBORw0KGgo (truncated)",
]


@pytest.mark.parametrize("text", BENIGN)
def test_identifiers_and_prose_are_not_secrets(text: str) -> None:
    assert find_secrets(text) == []


async def test_findings_never_echo_the_secret() -> None:
    guardian = Guardian({"security_profile": "standard"})
    for _kind, secret, text in CASES:
        decision = await guardian.inspect(tool_result(text), direction="server_to_client", request=CALL)
        record = json.dumps(decision.to_dict()) + " ".join(decision.reasons)
        assert secret not in record
        assert secret[4:] not in record  # not even the tail
    key = "AKIA" + "Q" * 16
    assert excerpt_of(key).endswith("(20 chars)") and "AKIA" not in excerpt_of(key) and "QQQQ" not in excerpt_of(key)


@pytest.mark.parametrize(
    ("profile", "override", "direction", "expected"),
    [
        ("basic", None, "server_to_client", Action.REDACT),
        ("basic", None, "client_to_server", Action.ALLOW),
        ("standard", None, "client_to_server", Action.REDACT),
        ("enterprise", None, "client_to_server", Action.REDACT),
        ("standard", "block", "server_to_client", Action.BLOCK),
        ("standard", "warn", "server_to_client", Action.WARN),
    ],
)
async def test_profiles_and_action_override(
    profile: str, override: str | None, direction: str, expected: Action
) -> None:
    key_id = "AKIA" + body(16, UPPER_B32, seed=40)
    security: dict[str, Any] = {"inspectors": {"secrets": {"action": override}}} if override else {}
    guardian = Guardian({"security_profile": profile, "security": security})
    if direction == "server_to_client":
        decision = await guardian.inspect(tool_result(f"key {key_id}"), direction=direction, request=CALL)
    else:
        call = {"jsonrpc": "2.0", "id": 4, "method": "tools/call",
                "params": {"name": "save", "arguments": {"note": f"key {key_id}"}}}
        decision = await guardian.inspect(call, direction=direction)
    assert decision.action is expected


async def test_disabled_by_config() -> None:
    guardian = Guardian({"security": {"inspectors": {"secrets": {"enabled": False}}}})
    key_id = "AKIA" + body(16, UPPER_B32, seed=41)
    decision = await guardian.inspect(tool_result(key_id), direction="server_to_client", request=CALL)
    assert decision.action is Action.ALLOW
    assert all(i.name != SecretsInspector.name for i in guardian.pipeline.inspectors)
    assert any(i.name == SecretsInspector.name for i in Guardian().pipeline.inspectors)


async def test_through_the_gateway_the_client_never_sees_the_key() -> None:
    with wrap_params(demo_server_stdio_argv()) as params:
        async with open_client(params) as client:
            note = text_of(await client.call_tool("secret_note", {}))
    assert "[REDACTED:SECRET:" in note
    assert "AKIA" not in note
    assert "aws_secret_access_key = [REDACTED:SECRET:" in note
    assert "jane.doe@example.com" in note  # an email is PII, not a secret
