"""Secrets: credentials in MCP traffic (API keys, tokens, private keys, passwords) are redacted.

Two layers run on every readable string (`Event.texts()`, JSON inside strings decoded, so
spans are on the original text and redaction rewrites exactly the secret):

1. Provider-format rules of our own: a regex per credential format behind a cheap
   substring pre-filter, plus a validator that throws out placeholders and low-entropy
   look-alikes. These carry most of the recall and cost ~0.2 ms per KB.
2. detect-secrets as a second opinion for high-entropy strings, used as its file scanner
   uses it: settings configured once (all default plugins, default filters), then each
   plugin's `analyze_line` with the line/secret/context filters applied. Only lines that
   could hold an assignment (a quote, `=` or `:`) and a long token reach it.

Git SHAs, UUIDs and bare 32/40/64-hex digests are never secrets on their own.

By profile: `basic` redacts secrets only in server->client messages (tool results leaking
credentials to the model); `standard` and `enterprise` redact both directions.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import ahocorasick

from guardian.decision import Action, Finding
from guardian.events import Direction, Event
from guardian.inspector import EveryMessage
from guardian.inspectors.options import Options

Validator = Callable[[str, "re.Match[str]"], bool]
"""(secret, the match) -> keep?"""


@dataclass(frozen=True, slots=True)
class Rule:
    kind: str
    keywords: tuple[str, ...]
    """Lower-case substrings, one of which must occur in the lower-cased text (pre-filter)."""
    pattern: re.Pattern[str]
    group: int | str = 0
    """The regex group that is the secret (the span redacted)."""
    validate: Validator | None = None


# ---------------------------------------------------------------------------------------------
# Value heuristics

_HEX_DIGEST = re.compile(r"(?:[0-9a-fA-F]{32}|[0-9a-fA-F]{40}|[0-9a-fA-F]{64}|[0-9a-fA-F]{128})")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_PLACEHOLDER = re.compile(
    r"(?i)(x{4,}|\*{3,}|\.{3}|<[^>]*>|\$\{|\{\{|%\(|changeme|example|sample|dummy|placeholder|redacted|"
    r"your[_-]|my[_-]?(?:api|secret|token|key|pass)|insert|replace|fake|todo|undefined|null|none|"
    r"0{6,}|^test$|^password$|^secret$)"
)
_WORDY = re.compile(r"^[a-z]+(?:[._-][a-z]+)*$")
"""`os.environ`, `settings.api_key`, `get-token`: identifiers, not values."""


def entropy(value: str) -> float:
    if not value:
        return 0.0
    counts = Counter(value)
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def is_benign_identifier(value: str) -> bool:
    """Hex digests (git SHAs, sha256), UUIDs: identifiers, not credentials."""
    return bool(_HEX_DIGEST.fullmatch(value) or _UUID.fullmatch(value))


def looks_random(value: str, min_entropy: float = 3.0) -> bool:
    """A token body that is not a placeholder, a run of one character, or a word."""
    if _PLACEHOLDER.search(value) or _WORDY.match(value):
        return False
    if re.search(r"(.)\1{5,}", value):
        return False
    return entropy(value) >= min(min_entropy, math.log2(max(len(value), 2)) - 0.5)


def _token(min_entropy: float = 3.0, body: slice = slice(None)) -> Validator:
    def check(secret: str, _match: re.Match[str]) -> bool:
        return looks_random(secret[body], min_entropy)

    return check


_NOT_A_SECRET_NAME = re.compile(
    r"(?i)(?:public|pub_?key|pubkey|(?:length|size|len|name|version|file|path|type|url|uri|count|format|"
    r"algorithm|alg|field|header|prefix|suffix|vault|store|hash|mode|policy)$)"
)
"""Names that say the value is not the secret: `key_length`, `public_key`, `token_type`."""


def _name_ok(match: re.Match[str]) -> bool:
    name = match.groupdict().get("name") or ""
    name = name.strip("\"'`.-_")
    return not (_NOT_A_SECRET_NAME.search(name) or re.match(r"non[A-Z_]|no_", name))


def _assigned_value(secret: str, match: re.Match[str]) -> bool:
    """A value assigned to a key/token/secret-named variable."""
    if not _name_ok(match):
        return False
    value = secret
    if len(value) < 8 or _PLACEHOLDER.search(value) or _WORDY.match(value):
        return False
    if value.lower() in {"true", "false", "password", "secret", "required", "optional", "string"}:
        return False
    if _VENDOR_PREFIX.match(value):
        return False  # the provider rule for this prefix has judged it already
    if _UUID.fullmatch(value):
        # A UUID assigned to a key/token/secret name is the credential (Heroku, Snyk, ...);
        # one named `clientId` / `job_id` is an identifier.
        name = match.groupdict().get("name") or ""
        return bool(re.search(r"(?i)key|token|secret|pass|pwd|auth", name)) and not re.search(r"(?i)id$", name)
    if re.fullmatch(r"[0-9]+", value):
        return len(value) >= 16 and entropy(value) >= 3.0
    if not re.search(r"[0-9]", value) or not re.search(r"[A-Za-z]", value):
        return False  # camelCase identifiers and words are names, not keys
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*\(.*", value) or value.startswith(("$", "%", "@", "process.", "env.")):
        return False
    classes = sum(bool(re.search(p, value)) for p in (r"[a-z]", r"[A-Z]", r"[0-9]", r"[^A-Za-z0-9]"))
    return classes >= 2 and entropy(value) >= 2.8


_VENDOR_PREFIX = re.compile(r"xox[a-z]-|gh[pousr]_|github_pat_|sk-|[sr]k_(?:live|test)_|AKIA|ASIA|glpat-|AIza")


def _password_value(secret: str, match: re.Match[str]) -> bool:
    if not _name_ok(match):
        return False
    value = secret
    if len(value) < 6 or _PLACEHOLDER.search(value):
        return False
    if value.lower() in {"true", "false", "password", "passwd", "secret", "required", "string", "hidden", "null"}:
        return False
    if value.startswith(("$", "%", "process.", "env.", "os.")) or re.fullmatch(r"[A-Za-z_][\w.]*\(.*", value):
        return False
    return entropy(value) >= 2.0


def _b64json(part: str) -> object:
    try:
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None


def _jwt(secret: str, _match: re.Match[str]) -> bool:
    """Header decodes to JSON with "alg"; payload decodes to a JSON object."""
    parts = secret.split(".")
    header = _b64json(parts[0])
    return isinstance(header, dict) and "alg" in header and isinstance(_b64json(parts[1]), dict)


def _url_credentials(secret: str, match: re.Match[str]) -> bool:
    return _password_value(secret, match) or (len(secret) >= 4 and secret.lower() not in {"pass", "password"})


def _aws_secret(secret: str, _match: re.Match[str]) -> bool:
    return looks_random(secret, 3.5) and not is_benign_identifier(secret)


# ---------------------------------------------------------------------------------------------
# Rules. Keywords are the cheap pre-filter; a rule whose keywords are absent never runs its regex.

_B = r"(?<![A-Za-z0-9_])"  # left boundary
_E = r"(?![A-Za-z0-9_])"  # right boundary
_Q = r"[\"'`]?"
_ASSIGN = r"[\"'`]?\s*(?:=>|:=|=|:|,)\s*[\"'`]?"
_NAME_CHARS = r"[A-Za-z0-9_.\-]"

RULES: tuple[Rule, ...] = (
    Rule(
        "private_key",
        ("private key",),
        re.compile(
            r"-----BEGIN[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)?-----[\s\S]{16,}?"
            r"-----END[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)?-----"
        ),
        validate=lambda s, _t: looks_random(re.sub(r"-----[^-]+-----|\s|\\n", "", s), 4.0),
    ),
    Rule(
        "gcp_service_account",
        ("service_account",),
        re.compile(r"\"type\"\s*:\s*\"service_account\"[\s\S]{0,4000}?\"private_key\"\s*:\s*\"([^\"]{20,})\""),
        group=1,
    ),
    Rule(
        "aws_access_key_id",
        ("akia", "asia", "abia", "acca", "a3t"),
        re.compile(_B + r"((?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16})" + _E),
        group=1,
        validate=_token(2.5, slice(4, None)),
    ),
    Rule(
        "aws_secret_access_key",
        ("aws", "secret_access", "secretaccess"),
        re.compile(
            r"(?i)(?:aws|secret_?access)" + _NAME_CHARS + r"{0,40}" + _ASSIGN + r"([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
        ),
        group=1,
        validate=_aws_secret,
    ),
    Rule(
        "github_token",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
        re.compile(_B + r"(gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{60,255})" + _E),
        validate=_token(3.5, slice(4, None)),
    ),
    Rule(
        "slack_token",
        ("xox",),
        re.compile(
            _B + r"(xox[abprs]-\d{8,13}-(?:[0-9A-Za-z]+-){0,3}[0-9A-Za-z]{8,}"
            r"|xoxe\.xox[bp]-\d-[A-Z0-9]{160,170}|xoxe-\d-[A-Z0-9]{140,150})" + _E
        ),
        validate=_token(3.0, slice(5, None)),
    ),
    Rule(
        "teams_webhook",
        ("webhook.office.com",),
        re.compile(r"https://[a-z0-9]+\.webhook\.office\.com/webhookb2/[a-z0-9\-]+@[a-z0-9\-]+/IncomingWebhook/[a-z0-9]+/[a-z0-9\-]+"),
    ),
    Rule(
        "slack_webhook",
        ("hooks.slack.com",),
        re.compile(r"https?://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/]{20,}"),
    ),
    Rule(
        "stripe_key",
        ("sk_live", "rk_live", "sk_test", "rk_test", "pk_live"),
        re.compile(_B + r"((?:sk|rk)_(?:live|test|prod)_[A-Za-z0-9]{10,99})" + _E),
        validate=_token(3.0, slice(8, None)),
    ),
    Rule(
        "anthropic_api_key",
        ("sk-ant-",),
        re.compile(_B + r"(sk-ant-(?:api|admin|sid)\d{2}-[A-Za-z0-9_\-]{93}AA)" + _E),
        validate=_token(3.5, slice(14, None)),
    ),
    Rule(
        "openai_api_key",
        ("sk-",),
        re.compile(
            _B + r"(sk-(?:(?:proj|svcacct|admin)-)?(?!ant-)[A-Za-z0-9_\-]{20,74}T3BlbkFJ[A-Za-z0-9_\-]{20,74}"
            r"|sk-(?:(?:proj|svcacct|admin)-)?(?!ant-)[A-Za-z0-9_\-]{32,200})" + _E
        ),
        validate=_token(3.5, slice(3, None)),
    ),
    Rule(
        "jwt",
        ("eyj",),
        re.compile(_B + r"(eyJ[A-Za-z0-9_\-]{10,}\.eyJ[A-Za-z0-9_\-]{4,}(?:\.[A-Za-z0-9_\-]{8,})?)" + _E),
        validate=_jwt,
    ),
    Rule(
        "url_credentials",
        ("://",),
        re.compile(r"(?i)\b[a-z][a-z0-9+.\-]{1,20}://[^\s:/@\"'<>]{1,100}:([^\s/@\"'<>]{3,200})@[A-Za-z0-9.\-\[]"),
        group=1,
        validate=_url_credentials,
    ),
    Rule(
        "vendor_token",
        (
            "glpat-", "gldt-", "glrt-", "glcbt-", "glptt-", "glsoat-", "glffct-", "gloas-", "glimt-", "glagent-",
            "glft-", "glcbt", "shpat_", "shpca_", "shppa_", "shpss_", "hf_", "api_org_", "pypi-", "npm_", "dop_v1_",
            "doo_v1_", "dor_v1_", "dp.", "sq0", "aiza", "sg.", "pul-", "lin_api_", "xapp-", "ya29.", "dapi",
            "atatt", "sntryu_", "sntrys_", "pscale_", "rubygems_", "hvs.", "hvb.", "glsa_", "glc_", "figd_",
            "dt0c01.", "ops_", "key-", "lob", "ptk_", "duffel_", "ntn_", "secret_", "tfp_", "tmp_", "cfp_",
            "age-secret-key-", "adafruit", "pmak-", "fio-u-", "easypost", "ezak", "eztk", "phc_", "sk_",
            "nfp_", "ctp_", "rdme_", "pnu_", "dckr_pat_", "tk_", "-us", "eaa", "sha256~", ".", "flw",
        ),
        re.compile(
            _B
            + r"("
            r"gl(?:pat|dt|rt|cbt|ptt|soat|ffct|oas|imt|agent|ft)-[A-Za-z0-9_\-]{20,}"
            r"|GR1348941[A-Za-z0-9_\-]{20}"
            r"|shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}"
            r"|hf_[A-Za-z]{34}|api_org_[A-Za-z]{34}"
            r"|pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{50,}"
            r"|npm_[A-Za-z0-9]{36}"
            r"|do[opr]_v1_[a-f0-9]{64}"
            r"|dp\.(?:pt|st|ct|scim|audit)\.[A-Za-z0-9]{40,44}"
            r"|sq0(?:atp|csp)-[A-Za-z0-9_\-]{22,43}|EAAA[A-Za-z0-9_\-+=]{60}"
            r"|AIza[A-Za-z0-9_\-]{35}"
            r"|SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}"
            r"|pul-[a-f0-9]{40}"
            r"|lin_api_[A-Za-z0-9]{40}"
            r"|xapp-\d-[A-Z0-9]+-\d+-[a-z0-9]+"
            r"|ya29\.[A-Za-z0-9_\-]{30,}"
            r"|dapi[a-f0-9]{32}(?:-\d)?"
            r"|ATATT3[A-Za-z0-9_\-=]{186}"
            r"|sntryu_[a-f0-9]{64}|sntrys_eyJpYXQiO[A-Za-z0-9+/=_]{20,}"
            r"|[MNO][A-Za-z0-9_\-]{23,25}\.[A-Za-z0-9_\-]{6}\.[A-Za-z0-9_\-]{27,38}"
            r"|[0-9a-f]{32}-us\d{1,2}"
            r"|EAA[MC][A-Za-z0-9]{100,}"
            r"|sha256~[A-Za-z0-9_\-]{43}"
            r"|FLW(?:SECK|PUBK)_TEST-[a-h0-9]{32}-X|FLWSECK_TEST[a-h0-9]{12}"
            r"|pscale_(?:tkn|pw|oauth)_[A-Za-z0-9_\-.=]{32,64}"
            r"|rubygems_[a-f0-9]{48}"
            r"|hv[sb]\.[A-Za-z0-9_\-]{24,}"
            r"|glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}|glc_[A-Za-z0-9+/]{32,400}={0,2}"
            r"|dt0c01\.[A-Z0-9]{24}\.[A-Z0-9]{64}"
            r"|ops_eyJ[A-Za-z0-9+/]{250,}={0,3}"
            r"|AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}"
            r"|PMAK-[a-f0-9]{24}-[a-f0-9]{34}"
            r"|dckr_pat_[A-Za-z0-9_\-]{27}"
            r"|ntn_[0-9]{11}[A-Za-z0-9]{35}"
            r"|pnu_[A-Za-z0-9]{36}"
            r"|rdme_[a-z0-9]{70}"
            r"|tk_us_[A-Za-z0-9_\-]{40,}"
            r"|(?:EZAK|EZTK)[A-Za-z0-9]{54}"
            r"|phc_[A-Za-z0-9]{43}"
            r")" + _E
        ),
        group=1,
        validate=_token(3.0),
    ),
    Rule(
        "password",
        ("pass", "pwd", "secret", "credential"),
        re.compile(
            r"(?i)(?<![A-Za-z0-9])(?P<name>[A-Za-z0-9_\-]*(?:passw(?:or)?d|passphrase|pwd|secret|credentials?)"
            + _NAME_CHARS
            + r"{0,30})"
            + _ASSIGN
            + r"([^\s\"'`,;]{6,200})"
        ),
        group=2,
        validate=lambda s, m: _password_value(s, m) and not is_benign_identifier(s),
    ),
    Rule(
        "api_key",
        ("key", "token", "auth", "api", "client", "access", "sid", "signature", "credential", "secret", "login"),
        re.compile(
            r"(?i)(?<![A-Za-z0-9])(?P<name>[A-Za-z0-9_\-.]*(?:key|token|auth|api|client|access|sid|signature|"
            r"credential|secret|login)" + _NAME_CHARS + r"{0,30})" + _ASSIGN
            + r"([A-Za-z0-9_\-+/=.~]{16,300})(?![A-Za-z0-9_\-+/=.~(])"
        ),
        group=2,
        validate=_assigned_value,
    ),
    Rule(
        "bearer_token",
        ("bearer", "authorization", "token "),
        re.compile(r"(?i)(?:bearer|token|basic)\s+([A-Za-z0-9_\-+/=.~]{20,500})"),
        group=1,
        validate=lambda s, m: _assigned_value(s, m) and looks_random(s, 3.5),
    ),
)

# ---------------------------------------------------------------------------------------------
# detect-secrets, as a second opinion on high-entropy strings

_DS_LOCK = threading.Lock()
_DS_READY: bool | None = None
_DS_LONG_TOKEN = re.compile(r"[A-Za-z0-9+/_\-=]{20}")


def _ds_gate(text: str) -> bool:
    """Cheap: an assignment-ish character and a long token (linear time, no backtracking)."""
    return ("=" in text or ":" in text or '"' in text or "'" in text) and _DS_LONG_TOKEN.search(text) is not None
_DS_ENTROPY_TYPES = frozenset({"Base64 High Entropy String"})
"""What detect-secrets is asked for: its opinion on high-entropy strings. Its provider plugins
duplicate our rules with looser formats, and hex runs are digests far more often than keys."""
_DS_CONTEXT = re.compile(r"(?i)key|token|secret|passw|pwd|auth|credential|bearer")
"""A high-entropy string counts only on a line that says it holds a credential."""


def _detect_secrets_ready() -> bool:
    """Configure detect-secrets once, globally: every default plugin, the default filters."""
    global _DS_READY
    if _DS_READY is not None:
        return _DS_READY
    with _DS_LOCK:
        if _DS_READY is None:
            try:
                from detect_secrets.core.plugins.util import (  # type: ignore[import-untyped,unused-ignore]
                    get_mapping_from_secret_type_to_class,
                )
                from detect_secrets.settings import (  # type: ignore[import-untyped,unused-ignore]
                    configure_settings_from_baseline,
                )

                classes: list[type] = list(get_mapping_from_secret_type_to_class().values())
                plugins = [{"name": cls.__name__} for cls in classes]
                configure_settings_from_baseline({"plugins_used": plugins})
                _DS_READY = True
            except ImportError:  # pragma: no cover - dependency missing
                _DS_READY = False
    return _DS_READY


def _detect_secrets_line(line: str, lines: list[str], number: int) -> Iterator[tuple[str, str]]:
    """(secret type, value) for one line, the way `scan_file` judges it (plugins + filters)."""
    from detect_secrets.core.scan import _is_filtered_out, _scan_line  # type: ignore[import-untyped,unused-ignore]
    from detect_secrets.settings import get_plugins  # type: ignore[import-untyped,unused-ignore]
    from detect_secrets.util.code_snippet import get_code_snippet  # type: ignore[import-untyped,unused-ignore]

    context = get_code_snippet(lines=lines, line_number=number)
    filename = "mcp-message"
    if _is_filtered_out(required_filter_parameters=["line"], filename=filename, line=line, context=context):
        return
    for plugin in get_plugins():
        for secret in _scan_line(plugin=plugin, filename=filename, line=line, line_number=number, context=context):
            if _is_filtered_out(
                required_filter_parameters=["context"],
                filename=filename,
                secret=secret.secret_value,
                plugin=plugin,
                line=line,
                context=context,
            ):
                continue
            if secret.type in _DS_ENTROPY_TYPES and secret.secret_value:
                yield str(secret.type), str(secret.secret_value)


def _slug(secret_type: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", secret_type.lower()).strip("_")


# ---------------------------------------------------------------------------------------------


_VALUE_RULES = frozenset({"password", "api_key"})


def _keyword_automaton() -> ahocorasick.Automaton:
    automaton = ahocorasick.Automaton()
    for keyword in {k for rule in RULES for k in rule.keywords}:
        automaton.add_word(keyword, keyword)
    automaton.make_automaton()
    return automaton


_KEYWORDS = _keyword_automaton()


def _keywords_in(lowered: str) -> set[str]:
    """Every rule keyword occurring in `lowered`, found in one pass (Aho-Corasick) instead of
    one substring scan per keyword (about 120 of them: 8x slower on a 4 KB result)."""
    return {keyword for _, keyword in _KEYWORDS.iter(lowered)}


def find_secrets(text: str, *, second_opinion: bool = True) -> list[tuple[str, int, int]]:
    """(kind, start, end) of every secret in `text`, non-overlapping, in order."""
    present = _keywords_in(text.lower())
    found: list[tuple[str, int, int]] = []
    for rule in RULES:
        if present.isdisjoint(rule.keywords):
            continue
        for match in rule.pattern.finditer(text):
            start, end = match.span(rule.group)
            if start < 0:
                continue
            value = text[start:end]
            if rule.kind not in _VALUE_RULES and is_benign_identifier(value):
                continue  # a bare digest or UUID; assignments judge their own values
            if rule.validate is not None and not rule.validate(value, match):
                continue
            found.append((rule.kind, start, end))
    if second_opinion and _ds_gate(text) and _detect_secrets_ready():
        found.extend(_second_opinion(text))
    return _non_overlapping(found)


def _second_opinion(text: str) -> Iterator[tuple[str, int, int]]:
    lines = text.split("\n")
    offset = 0
    for number, line in enumerate(lines, start=1):
        if len(line) <= 4000 and _ds_gate(line) and _DS_CONTEXT.search(line):
            for secret_type, value in _detect_secrets_line(line, lines, number):
                if is_benign_identifier(value) or not looks_random(value, 3.0):
                    continue
                index = line.find(value)
                if index >= 0:
                    yield _slug(secret_type), offset + index, offset + index + len(value)
        offset += len(line) + 1


def _non_overlapping(found: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    # Longest first at each start, then drop anything overlapping a kept span.
    found.sort(key=lambda f: (f[1], -(f[2] - f[1])))
    kept: list[tuple[str, int, int]] = []
    for item in found:
        if kept and item[1] < kept[-1][2]:
            continue
        kept.append(item)
    return kept


def excerpt_of(secret: str) -> str:
    """A hash prefix and the length: enough to correlate sightings, nothing of the secret itself
    (even a few leading characters of a password are a leak)."""
    return f"sha256:{hashlib.sha256(secret.encode()).hexdigest()[:12]} ({len(secret)} chars)"


@dataclass(frozen=True, slots=True)
class SecretsPolicy:
    """What a secret does, in which direction."""

    action: Action = Action.REDACT
    client_to_server: bool = True
    server_to_client: bool = True



class SecretsInspector(EveryMessage):
    name = "secrets"

    def __init__(self, policy: SecretsPolicy | None = None, *, second_opinion: bool = True) -> None:
        self.policy = policy or SecretsPolicy()
        self.second_opinion = second_opinion

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> SecretsInspector:
        """Options: `action` (redact | block | warn), `directions` (default both),
        `second_opinion` (detect-secrets' entropy plugins behind the provider rules)."""
        read = Options(cls.name, options)
        action = read.action("action", Action.REDACT)
        directions = read.directions()
        second_opinion = read.boolean("second_opinion", True)
        read.done()
        policy = SecretsPolicy(action, client_to_server=Direction.CLIENT_TO_SERVER in directions,
                               server_to_client=Direction.SERVER_TO_CLIENT in directions)
        return cls(policy, second_opinion=second_opinion)

    def check(self, event: Event) -> list[Finding]:
        outbound = event.direction is Direction.CLIENT_TO_SERVER
        if not (self.policy.client_to_server if outbound else self.policy.server_to_client):
            return []
        findings: list[Finding] = []
        for item in event.texts():
            for kind, start, end in find_secrets(item.text, second_opinion=self.second_opinion):
                findings.append(
                    Finding(
                        self.name,
                        kind,
                        f"credential ({kind.replace('_', ' ')}) in message",
                        action=self.policy.action,
                        path=item.path,
                        span=(start, end),
                        replacement=f"[REDACTED:SECRET:{kind.upper()}]",
                        excerpt=excerpt_of(item.text[start:end]),
                    )
                )
        return findings
