"""Secrets: credentials in MCP traffic (API keys, tokens, private keys, passwords) are redacted.

Three layers run on every readable string (`Event.texts()`, JSON inside strings decoded, so
spans are on the original text and redaction rewrites exactly the secret). One Aho-Corasick
pass over the lower-cased text finds every keyword first; nothing else runs on a text that
has none, and each layer below only runs where its keywords occur.

1. Provider formats: a regex per credential format (prefix, length, alphabet), checked for
   structure where the provider gives one (the CRC32 in GitHub/npm tokens, JWT JSON parts, a
   PyPI macaroon's fields), then a validator that throws out placeholders and test values;
   and credentials in commands and headers (`curl -u user:password`, `Authorization: ...`).
   A Google API key (public by design in web and mobile apps) counts only where the text
   around it says it is a credential (`apiKey:`, `?key=`).
2. Assignments: wherever a credential word (key, token, secret, password, ...) occurs, the
   name around it and the value assigned to it (`=`, `:`, `=>`, `:=`, XML elements, CLI
   flags, quoted or not) are read and judged: the name must *be* a credential (`api_key`,
   `DB_PASSWORD`, not `key_id`, `public_key`, `keyframe`, `token_url`, nor a bare `key`),
   and the value must look like one (random, not a word, identifier, version, host, path,
   variable reference or placeholder). A value with a provider's prefix (`dapi...`) is left
   to that provider's rule.
3. detect-secrets as a second opinion for high-entropy strings, used as its file scanner
   uses it: settings configured once (its Base64 high-entropy plugin, its default filters),
   then `analyze_line` with the line/secret/context filters applied, only on lines that say
   they hold a credential.

Placeholders are never secrets: `xxxx`, `<your-key>`, `${VAR}`, `changeme`, `example`, runs
of one character or of consecutive characters (`abcdef`, `123456`). The exception is a format
no ordinary text produces (an AWS key ID, an age key): there only an explicit placeholder
(`xxxx`, `EXAMPLE`) is let through, and a fixture such as `AKIA` + `ZZZ...` is redacted. Git
SHAs, UUIDs and bare 32/40/64-hex digests are never secrets on their own (assigned to a
credential name they are).

By profile: `basic` redacts secrets only in server->client messages (tool results leaking
credentials to the model); `standard` and `enterprise` redact both directions.

Several provider formats follow gitleaks' rule definitions (MIT, github.com/gitleaks/gitleaks).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import itertools
import json
import math
import os
import re
import string
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import ahocorasick

from guardian.decision import Action, Finding
from guardian.events import Direction, Event
from guardian.inspector import EveryMessage
from guardian.inspectors.options import BOTH_DIRECTIONS, Options

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
    bounded: bool = False
    """The match must not start inside a word or dotted name (checked in Python rather than by a
    look-behind, so the regex engine can jump straight to the literal prefix)."""
    anchored: bool = False
    """The regex is tried only where one of the keywords starts (a case-insensitive word that
    the regex engine could not find quickly on its own)..."""
    back: int = 0
    """...or that many characters before it (the keyword is inside the token); -1: at the start
    of the digits before it (`123456789:AA...`)."""


# ---------------------------------------------------------------------------------------------
# Value heuristics

_HEX_DIGEST = re.compile(r"(?:[0-9a-fA-F]{32}|[0-9a-fA-F]{40}|[0-9a-fA-F]{64}|[0-9a-fA-F]{128})")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_PLACEHOLDER = re.compile(
    r"(?i)(x{4,}|\*{3,}|\.{3}|#{3,}|~{3,}|<[^>]*>|\[[A-Z_ ]+\]|\$\{|\{\{|%\(|changeme|example|sample|dummy|"
    r"placeholder|redacted|your[_-]|my[_-]?(?:api|secret|token|key|pass)|insert|replace|fake|todo|undefined|"
    r"null|none|0{6,}|^test$|^password$|^secret$)"
)
_WORDY = re.compile(r"^[a-z]+(?:[._-][a-z]+)*$")
"""`os.environ`, `settings.api_key`, `get-token`: identifiers, not values."""
_LETTER = re.compile(r"[A-Za-z]")
_DIGIT = re.compile(r"[0-9]")


def entropy(value: str) -> float:
    if not value:
        return 0.0
    counts = Counter(value)
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def is_benign_identifier(value: str) -> bool:
    """Hex digests (git SHAs, sha256), UUIDs: identifiers, not credentials."""
    return bool(_HEX_DIGEST.fullmatch(value) or _UUID.fullmatch(value))


def _step_table(step: int) -> dict[int, int]:
    """Each letter/digit -> the one `step` after it in its own class; anything else -> 0x01."""
    table = dict.fromkeys(range(128), 1)
    for alphabet in (string.digits, string.ascii_lowercase, string.ascii_uppercase):
        for index, char in enumerate(alphabet):
            if 0 <= index + step < len(alphabet):
                table[ord(char)] = ord(alphabet[index + step])
    return table


_SAME, _UP, _DOWN = _step_table(0), _step_table(1), _step_table(-1)
_ZERO_RUNS = {n: re.compile(b"\x00{%d}" % (n - 1)) for n in range(2, 13)}


def has_run(value: str, n: int) -> bool:
    """Whether `value` has a run of `n` (2..12) letters/digits that repeat one character or
    count up or down (`aaaaaa`, `abcdef`, `98765`): a random token of any length practically
    never has a run of 6; test values do. Computed with byte arithmetic, not a Python loop:
    position i of `step` is zero where value[i + 1] follows value[i]."""
    if len(value) < n:
        return False
    if not value.isascii():
        return _has_run_slow(value, n)
    following = value[1:].encode()
    zeros = _ZERO_RUNS[n]
    for table in (_SAME, _UP, _DOWN):
        expected = value[:-1].translate(table).encode()
        step = (int.from_bytes(expected, "big") ^ int.from_bytes(following, "big")).to_bytes(len(following), "big")
        if zeros.search(step):
            return True
    return False


def _has_run_slow(value: str, n: int) -> bool:
    up = down = same = 1
    for previous, char in itertools.pairwise(value):
        if char.isascii() and previous.isascii() and char.isalnum() and previous.isalnum():
            step = ord(char) - ord(previous)
            same = same + 1 if step == 0 else 1
            up = up + 1 if step == 1 and _UP[ord(previous)] == ord(char) else 1
            down = down + 1 if step == -1 and _DOWN[ord(previous)] == ord(char) else 1
            if max(up, down, same) >= n:
                return True
        else:
            up = down = same = 1
    return False


def is_placeholder(value: str, run_limit: int = 6) -> bool:
    """`xxxx`, `<your-key>`, `${VAR}`, `changeme`, `...EXAMPLE`, `abcdef123456`, `AAAAAAAA`.

    A bare token with a run of 6 is a test value. A value assigned to a credential name is
    given `run_limit=12`: fixtures such as `1234567890abcdef` repeated are still credentials
    by their name (and harmless to redact), while charset literals (`ABC...XYZabc...`) and
    values that are one run from end to end (`12345678`) are not."""
    if _PLACEHOLDER.search(value):
        return True
    n = min(run_limit, len(value))
    return n < 2 or has_run(value, n)


def looks_random(value: str, min_entropy: float = 3.0) -> bool:
    """A token body that is not a placeholder, a run of characters, or a word."""
    if is_placeholder(value) or _WORDY.match(value):
        return False
    return entropy(value) >= min(min_entropy, math.log2(max(len(value), 2)) - 0.5)


def _token(min_entropy: float = 3.0, body: slice = slice(None)) -> Validator:
    def check(secret: str, _match: re.Match[str]) -> bool:
        return looks_random(secret[body], min_entropy)

    return check


def _exact_format(body: slice) -> Validator:
    """For a format that ordinary text never produces (an AWS key ID: a vendor code, then 16
    characters of base32; an age key: `AGE-SECRET-KEY-1` and 58 of bech32), only a value marked
    as a placeholder (`AKIAXXXXXXXXXXXXXXXX`, `...EXAMPLE`) is let through. A test fixture of one
    repeated character is not random, but redacting it costs nothing, while letting a real key
    through on a randomness guess would cost a lot."""

    def check(secret: str, _match: re.Match[str]) -> bool:
        return _PLACEHOLDER.search(secret[body]) is None

    return check


_CREDENTIAL_CONTEXT = re.compile(r"(?i)key|token|secret|passw|pwd|auth|credential|bearer")
"""Words that say a nearby value is a credential (`apiKey:`, `<authToken>`, `?key=`)."""


def _said_to_be_a_credential(match: re.Match[str]) -> bool:
    """Whether the text around a rule's match names a credential: up to 80 characters before it
    (the line before too: `<apiToken>` above the value) or 40 after it (`... # the API key`)."""
    text = match.string
    start, end = match.span(1)
    return (_CREDENTIAL_CONTEXT.search(text, max(0, start - 80), start) is not None
            or _CREDENTIAL_CONTEXT.search(text, end, end + 40) is not None)


_PARTS = re.compile(r"\d+(?:\.\d+)+|[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_VOWELS = frozenset("aeiouy")
_CONSONANTS = re.compile(r"[b-df-hj-np-tv-xz]{5}")
_CONSONANTS4 = re.compile(r"[b-df-hj-np-tv-xz]{4}")
_LETTER_DIGIT_LETTER = re.compile(r"(?=[A-Za-z][0-9]+[A-Za-z])")


def looks_like_words(value: str) -> bool:
    """`SalesResults-1.2`, `In12345.int.contoso.com`, `DOC_Vector_5_32`, `jetbrains.mps.v8_x`:
    names, versions and hosts built of word-like parts. A random key splits into many one- or
    two-character pieces instead, or into long letter runs no language would pronounce."""
    if len(_LETTER_DIGIT_LETTER.findall(value)) >= 2:
        return False  # k9x...q4z: digits inside letter runs, again and again (utf8mb4 has one)
    parts = _PARTS.findall(value)
    if not parts:
        return True
    size = sum(len(p) for p in parts)
    if len(parts) * 3 > size + 3:
        return False  # fragmented: aZ3kQ9xP...
    long_numbers = 0
    for part in parts:
        if part[0].isdigit():
            long_numbers += len(part) > 6 and "." not in part
            if long_numbers > 1:
                return False  # numbers inside numbers: a key, not `build-20240101` or `job-1208358310`
            continue
        if len(part) > 20:
            return False
        if len(part) > 5 and not _pronounceable(part.lower()):
            return False
    return True


def _pronounceable(word: str) -> bool:
    """Roughly: a word of some language, not random letters. A short word needs a vowel and no
    four consonants in a row (`prompt`, `script`); a long one a fifth vowels and no five."""
    vowels = sum(c in _VOWELS for c in word)
    if len(word) <= 8:
        return vowels > 0 and _CONSONANTS4.search(word) is None
    return vowels >= 0.2 * len(word) and _CONSONANTS.search(word) is None


# ---------------------------------------------------------------------------------------------
# Structure checks for provider formats

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def base62_crc32_ok(token: str, prefix_length: int) -> bool:
    """GitHub (ghp_/gho_/ghu_/ghs_/ghr_) and npm tokens end in 6 base62 characters that are
    the CRC32 of the 30 random characters before them."""
    body, check = token[prefix_length:-6], token[-6:]
    value = 0
    for char in check:
        digit = _BASE62.find(char)
        if digit < 0:
            return False
        value = value * 62 + digit
    return value == binascii.crc32(body.encode())


def _checksummed_token(prefix_length: int) -> Validator:
    """A valid checksum is proof enough (a real token may contain `todo` or `xxxx` by chance);
    without one the body must still look random (older and look-alike tokens)."""

    def check(secret: str, _match: re.Match[str]) -> bool:
        if base62_crc32_ok(secret, prefix_length):
            return True
        return looks_random(secret[prefix_length:], 3.5)

    return check


def _b64decode(part: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (ValueError, binascii.Error):
        return None


def _b64json(part: str) -> object:
    raw = _b64decode(part)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None


def _jwt(secret: str, _match: re.Match[str]) -> bool:
    """Header decodes to JSON with "alg"; payload decodes to a JSON object."""
    parts = secret.split(".")
    header = _b64json(parts[0])
    return isinstance(header, dict) and "alg" in header and isinstance(_b64json(parts[1]), dict)


def _pypi_macaroon(secret: str, _match: re.Match[str]) -> bool:
    """A PyPI token is `pypi-` + a base64 macaroon (v2): location `pypi.org`, identifier,
    caveats, then a 32-byte signature, which is the secret part. Read as a macaroon, a token
    that ends before its signature is cut off and leaks nothing usable; one that is not a
    macaroon at all (an unknown field) is judged by format alone: length and randomness."""
    raw = _b64decode(secret[5:]) or b""
    index = 1
    while index < len(raw):
        field = raw[index]
        index += 1
        if field == 0:  # end of a section
            continue
        if field not in (1, 2, 4, 6):  # location, identifier, verifier id, signature
            return len(secret) >= 90 and looks_random(secret[20:], 3.5)
        length, index = _varint(raw, index)
        if field == 6:  # the signature: 32 bytes, and nothing after it
            return length == 32 and index + length == len(raw)
        index += length
    return False


def _varint(raw: bytes, index: int) -> tuple[int, int]:
    """An unsigned LEB128 number at raw[index:], and the index after it."""
    value = shift = 0
    while index < len(raw):
        byte = raw[index]
        index += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, index
    return 1 << 62, index  # truncated: longer than anything that follows


def _url_password(secret: str, _match: re.Match[str]) -> bool:
    return password_value(secret) or (len(secret) >= 4 and not is_placeholder(secret)
                                      and secret.lower() not in _NOT_PASSWORDS)


def _aws_secret(secret: str, _match: re.Match[str]) -> bool:
    return looks_random(secret, 3.5) and not is_benign_identifier(secret)


def _google_api_key(secret: str, match: re.Match[str]) -> bool:
    """A Google API key is a public identifier by design as often as a secret: Firebase and Maps
    keys ship inside web pages and apps (restricted by referrer or app), and SDKs publish example
    keys that gitleaks lists as false positives. It counts where the text around it says it is a
    credential (`apiKey:`, `?key=`, `GEMINI_API_KEY=`, `<gcpToken>`); a bare one is left alone."""
    return looks_random(secret[4:], 3.0) and _said_to_be_a_credential(match)


def _basic_auth(secret: str, _match: re.Match[str]) -> bool:
    """`Basic <base64(user:password)>`: decodes to printable text with a password part."""
    raw = _b64decode(secret.replace("+", "-").replace("/", "_"))
    if raw is None:
        return False
    try:
        decoded = raw.decode()
    except UnicodeDecodeError:
        return False
    _user, colon, password = decoded.partition(":")
    return bool(colon) and decoded.isprintable() and _url_password(password, _match)


_CURL_USER = re.compile(
    r"(?<=\s)(?:-u|--user)(?:=|[ \t]+|[ \t]*\\\r?\n[ \t]*)(?P<arg>(?:\"[^\"\n]*\"|'[^'\n]*'|[^\s\"'])+)"
)
"""A curl user option, possibly on a continuation line; its word may be quoted in parts."""
_CURL = re.compile(r"\bcurl\b")
_CURL_LOOKBACK = 2000


def _in_curl_command(text: str, position: int) -> bool:
    """Whether `position` is in a curl command: `curl` earlier on its line, or on the lines it
    continues (`\\` at the end), looking back a bounded distance."""
    start = max(0, position - _CURL_LOOKBACK)
    line_start = text.rfind("\n", start, position)
    while line_start > start and text[line_start - 1] == "\\":
        line_start = text.rfind("\n", start, line_start - 1)
    return _CURL.search(text, max(start, line_start + 1), position) is not None


def _curl_credentials(text: str) -> Iterator[tuple[str, int, int]]:
    """The password of `curl -u user:password` (or the user, when the password is empty: an API
    token passed as the user name). The shell word is unquoted to find the colon."""
    for match in _CURL_USER.finditer(text):
        if not _in_curl_command(text, match.start()):
            continue
        chars: list[tuple[str, int]] = []  # the word's characters without quotes, with their offsets
        quote = ""
        for index in range(match.start("arg"), match.end("arg")):
            char = text[index]
            if char in "\"'" and (not quote or char == quote):
                quote = "" if quote else char
                continue
            chars.append((char, index))
        word = "".join(c for c, _ in chars)
        user, colon, password = word.partition(":")
        if not colon or is_placeholder(word, run_limit=12):
            continue  # curl asks for the password, or the word is `<user:password>`
        secret, first = (password, len(user) + 1) if password else (user, 0)
        if password_value(secret, min_length=3) and not (secret is user and "@" in user):
            yield "curl_credentials", chars[first][1], chars[first + len(secret) - 1][1] + 1


_AUTHORIZATION = re.compile(r"(?i)authorization[\"']?[ \t]*[:=][ \t]*[\"']?$")


def _bearer(secret: str, match: re.Match[str]) -> bool:
    scheme = match.group("scheme").lower()
    if scheme == "basic":
        return _basic_auth(secret, match)
    if is_placeholder(secret) or looks_like_words(secret) or secret.startswith(("$", "%")):
        return False
    if scheme == "token" and not _AUTHORIZATION.search(match.string, max(0, match.start() - 40), match.start()):
        # "token <x>" in prose: only a clearly random, non-digest value
        return len(secret) >= 20 and looks_random(secret, 3.5) and not is_benign_identifier(secret)
    return len(secret) >= 16 and looks_random(secret, 3.0)


# ---------------------------------------------------------------------------------------------
# Provider rules. Keywords are the cheap pre-filter; a rule whose keywords are absent never
# runs its regex. Lengths and alphabets are the providers' (gitleaks' definitions mostly).

_B = r"(?<![A-Za-z0-9_.])"  # left boundary (not inside a word or a dotted name: `box.ico-...png`)
_E = r"(?![A-Za-z0-9_])"  # right boundary
_ED = r"(?![A-Za-z0-9_\-])"  # right boundary where the alphabet has "-"


def _rule(kind: str, keywords: tuple[str, ...], pattern: str, validate: Validator | None = None,
          group: int | str = 1, *, anchored: bool = False, back: int = 0) -> Rule:
    bounded = pattern.startswith(_B)
    return Rule(kind, keywords, re.compile(pattern.removeprefix(_B)), group, validate or _token(3.0), bounded,
                anchored or back != 0, back)


_BOUNDARY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.")
_PEM_FRAMING = re.compile(r"-----[^-]+-----|\s|\\n")
"""What is not key material in a PEM block: its BEGIN/END lines, line breaks (escaped ones too)."""


_PREFIXED: tuple[tuple[str, tuple[str, ...], str], ...] = (
    # kind, keywords (each the lower-cased start of the pattern), pattern
    ("shopify_token", ("shpat_", "shpca_", "shppa_", "shpss_"), r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}"),
    ("huggingface_token", ("hf_", "api_org_"), r"hf_[A-Za-z]{34}|api_org_[A-Za-z]{34}"),
    ("digitalocean_token", ("dop_v1_", "doo_v1_", "dor_v1_"), r"do[opr]_v1_[a-f0-9]{64}"),
    ("doppler_token", ("dp.",), r"dp\.(?:pt|st|ct|scim|audit)\.[A-Za-z0-9]{40,44}"),
    ("square_token", ("sq0", "eaaa"), r"sq0(?:atp|csp)-[A-Za-z0-9_\-]{22,60}|EAAA[A-Za-z0-9_\-+=]{60}"),
    ("facebook_access_token", ("eaam", "eaac"), r"(?:EAAM|EAAC)[A-Za-z0-9]{100,}"),
    ("google_oauth_token", ("ya29.",), r"ya29\.[A-Za-z0-9_\-]{30,}"),
    ("sendgrid_api_key", ("sg.",), r"SG\.[A-Za-z0-9=_\-.]{66}"),
    ("pulumi_token", ("pul-",), r"pul-[a-f0-9]{40}"),
    ("linear_api_key", ("lin_api_",), r"lin_api_[A-Za-z0-9]{40}"),
    ("databricks_token", ("dapi",), r"dapi[a-f0-9]{32}(?:-\d)?"),
    ("atlassian_token", ("atatt",), r"ATATT3[A-Za-z0-9_\-=]{186}"),
    ("sentry_token", ("sntryu_", "sntrys_"), r"sntryu_[a-f0-9]{64}|sntrys_eyJpYXQiO[A-Za-z0-9+/=_]{20,}"),
    ("openshift_token", ("sha256~",), r"sha256~[A-Za-z0-9_\-]{43}"),
    ("flutterwave_key", ("flw",), r"FLW(?:SECK|PUBK)_TEST-[a-hA-H0-9]{32}-X|FLWSECK_TEST-[a-hA-H0-9]{12}"),
    ("planetscale_token", ("pscale_",), r"pscale_(?:tkn|pw|oauth)_[A-Za-z0-9_\-.=]{32,64}"),
    ("rubygems_token", ("rubygems_",), r"rubygems_[a-f0-9]{48}"),
    ("vault_token", ("hvs.", "hvb."), r"hvs\.[A-Za-z0-9_\-]{90,120}|hvb\.[A-Za-z0-9_\-]{138,300}"),
    ("grafana_token", ("glsa_", "glc_", "eyjrijoi"),
     r"glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}|glc_[A-Za-z0-9+/]{32,400}={0,2}|eyJrIjoi[A-Za-z0-9]{70,400}={0,3}"),
    ("dynatrace_token", ("dt0c01.",), r"dt0c01\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{64}"),
    ("onepassword_token", ("ops_",), r"ops_eyJ[A-Za-z0-9+/]{250,}={0,3}"),
    ("onepassword_secret_key", ("a3-",),
     r"A3-[A-Z0-9]{6}-(?:[A-Z0-9]{11}|[A-Z0-9]{6}-[A-Z0-9]{5})-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}"),
    ("postman_token", ("pmak-",), r"PMAK-[a-fA-F0-9]{24}-[a-fA-F0-9]{34}"),
    ("docker_token", ("dckr_pat_",), r"dckr_pat_[A-Za-z0-9_\-]{27}"),
    ("notion_token", ("ntn_",), r"ntn_[0-9]{11}[A-Za-z0-9]{35}"),
    ("prefect_token", ("pnu_",), r"pnu_[A-Za-z0-9]{36}"),
    ("readme_token", ("rdme_",), r"rdme_[a-z0-9]{70}"),
    ("scalingo_token", ("tk-us-",), r"tk-us-[A-Za-z0-9_\-]{48}"),
    ("easypost_token", ("ezak", "eztk"), r"(?:EZAK|EZTK)[A-Za-z0-9]{54}"),
    ("posthog_token", ("phc_",), r"phc_[A-Za-z0-9]{43}"),
    ("adobe_client_secret", ("p8e-",), r"p8e-[A-Za-z0-9]{32}"),
    ("alibaba_access_key_id", ("ltai",), r"LTAI[A-Za-z0-9]{20}"),
    ("heroku_api_key", ("hrku-aa",), r"HRKU-AA[0-9a-zA-Z_\-]{58}"),
    ("infracost_token", ("ico-",), r"ico-[a-zA-Z0-9]{32}"),
    ("intra42_client_secret", ("s-s4t2",), r"s-s4t2(?:ud|af)-[abcdefABCDEF0-9]{64}"),
    ("perplexity_api_key", ("pplx-",), r"pplx-[a-zA-Z0-9]{48}"),
    ("sendinblue_api_key", ("xkeysib-",), r"xkeysib-[a-f0-9]{64}-[A-Za-z0-9]{16}"),
    ("settlemint_token", ("sm_aat_", "sm_pat_", "sm_sat_"), r"sm_(?:aat|pat|sat)_[a-zA-Z0-9]{16}"),
    ("shippo_token", ("shippo_",), r"shippo_(?:live|test)_[a-fA-F0-9]{40}"),
    ("sourcegraph_token", ("sgp_",), r"sgp_(?:[a-fA-F0-9]{16}|local)_[a-fA-F0-9]{40}|sgp_[a-fA-F0-9]{40}"),
    ("frameio_token", ("fio-u-",), r"fio-u-[A-Za-z0-9\-_=]{64}"),
    ("duffel_token", ("duffel_",), r"duffel_(?:test|live)_[A-Za-z0-9_\-=]{43}"),
    ("harness_token", ("pat.", "sat."), r"(?:pat|sat)\.[a-zA-Z0-9_\-]{22}\.[a-zA-Z0-9]{24}\.[a-zA-Z0-9]{20}"),
    ("octopus_api_key", ("api-",), r"API-[A-Z0-9]{26}"),
    ("cloudflare_origin_ca_key", ("v1.0-",), r"v1\.0-[a-f0-9]{24}-[a-f0-9]{146}"),
)
"""Formats that are a distinctive prefix and a fixed alphabet and length (gitleaks' definitions)."""


RULES: tuple[Rule, ...] = (
    Rule(
        "private_key",
        ("private key",),
        re.compile(
            # the body (RSA-4096: 3.3 KB) stops at the next BEGIN, so a run of BEGINs costs linear time
            r"-----BEGIN[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)?-----(?:[^-]|-(?!----BEGIN)){16,10000}?"
            r"-----END[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)?-----"
        ),
        validate=lambda s, _t: looks_random(_PEM_FRAMING.sub("", s), 4.0),
    ),
    Rule(
        "gcp_service_account",
        ("service_account",),
        re.compile(r"\"type\"\s*:\s*\"service_account\"[\s\S]{0,4000}?\"private_key\"\s*:\s*\"([^\"]{20,})\""),
        group=1,
    ),
    _rule("aws_access_key_id", ("akia", "asia", "abia", "acca", "a3t"),
          _B + r"((?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16})" + _E, _exact_format(slice(4, None))),
    _rule(
        "aws_secret_access_key",
        ("aws", "secret_access", "secretaccess"),
        r"(?i:aws|secret_?access)[A-Za-z0-9_.\-]{0,40}[\"'`]?[ \t]*(?:=>|:=|=|:|,)[ \t]*[\"'`]?"
        r"([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])",
        _aws_secret,
        anchored=True,
    ),
    _rule("aws_bedrock_api_key", ("absk", "bedrock-api-key-"),
          _B + r"(ABSK[A-Za-z0-9+/]{109,269}={0,2}|bedrock-api-key-YmVkcm9jay5hbWF6b25hd3MuY29t[A-Za-z0-9+/=%]{40,})"
          r"(?![A-Za-z0-9+/=])", _token(3.0, slice(4, None)), anchored=True),
    _rule("github_token", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
          _B + r"(gh[pousr]_[A-Za-z0-9]{36})" + _E, _checksummed_token(4)),
    _rule("github_token", ("github_pat_",), _B + r"(github_pat_[A-Za-z0-9_]{82})" + _E,
          _token(3.5, slice(11, None))),
    _rule(
        "gitlab_token",
        ("glpat-", "gldt-", "glrt-", "glcbt-", "glptt-", "glsoat-", "glffct-", "gloas-", "glimt-", "glagent-",
         "glft-", "gr1348941"),
        _B + r"(glpat-[A-Za-z0-9_\-]{27,300}\.[0-9a-z]{2}[0-9a-z]{7}|glrt-t\d_[A-Za-z0-9_\-]{27,300}\.[0-9a-z]{9}"
        r"|gl(?:pat|dt|rt|soat|ffct|ft)-[A-Za-z0-9_\-]{20,50}|glcbt-(?:[0-9a-zA-Z]{1,5}_)?[A-Za-z0-9_\-]{20,50}"
        r"|glptt-[A-Za-z0-9_\-]{40}|gloas-[A-Za-z0-9_\-]{64}|glimt-[A-Za-z0-9_\-]{25}"
        r"|glagent-[A-Za-z0-9_\-]{50,1024}|GR1348941[A-Za-z0-9_\-]{20,50})" + _ED,
        lambda s, _m: looks_random(s.split("-", 1)[-1] if s[:2] == "gl" else s[9:], 3.0),
        anchored=True,
    ),
    _rule(
        "slack_token",
        ("xox",),
        _B + r"(xox[bp](?:-[0-9]{8,13}){2,3}-[A-Za-z0-9]{18,34}|xoxb-[0-9]{8,14}-[A-Za-z0-9]{18,26}"
        r"|xox[os]-\d+-\d+-\d+-[a-fA-F\d]+|xox[ar]-(?:\d-)?[0-9a-zA-Z]{8,48}(?:-[0-9a-zA-Z]{8,48})*"
        r"|xoxe\.xox[bp]-\d-[A-Za-z0-9]{163,166}|xoxe-\d-[A-Za-z0-9]{146})" + _ED,
        lambda s, _m: looks_random(s.rsplit("-", 1)[-1], 2.5) and _LETTER.search(s, 5) is not None,
    ),
    _rule("slack_token", ("xapp-",), _B + r"(xapp-\d-[A-Z0-9]+-\d+-[a-z0-9]+)" + _E, _token(3.0, slice(5, None))),
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
    _rule("stripe_key", ("sk_live", "rk_live", "sk_test", "rk_test", "sk_prod", "rk_prod"),
          _B + r"((?:sk|rk)_(?:live|test|prod)_[A-Za-z0-9]{10,99})" + _E, _token(3.0, slice(8, None)), anchored=True),
    _rule("anthropic_api_key", ("sk-ant-",),
          _B + r"(sk-ant-(?:api|admin|sid)\d{2}-[A-Za-z0-9_\-]{93}AA)" + _ED, _token(3.5, slice(14, None))),
    _rule(
        "openai_api_key",
        ("sk-",),
        # Project/service/admin keys always carry "T3BlbkFJ"; a bare sk- key (OpenAI's older
        # format and several other providers') is 32+ random characters.
        _B + r"(sk-(?:(?:proj|svcacct|admin)-)?[A-Za-z0-9_\-]{20,74}T3BlbkFJ[A-Za-z0-9_\-]{20,74}"
        r"|sk-(?!(?:proj|svcacct|admin|ant)-)[A-Za-z0-9]{32,200})" + _ED,
        _token(3.5, slice(3, None)),
    ),
    _rule("jwt", ("eyj",), _B + r"(eyJ[A-Za-z0-9_\-]{10,}\.eyJ[A-Za-z0-9_\-]{4,}(?:\.[A-Za-z0-9_\-]{8,})?)" + _ED,
          _jwt),
    _rule("url_credentials", ("://",), r"://[^\s:/@\"'<>]{1,100}:([^\s:/@\"'<>]{3,200})@[A-Za-z0-9.\-\[]",
          _url_password),
    _rule("softlayer_api_key", ("softlayer.com",),
          r"https?://api\.softlayer\.com/soap/v3(?:\.1)?/([A-Za-z0-9]{64})" + _E,
          lambda s, _m: not is_placeholder(s, run_limit=12)),  # the URL says it is a key
    _rule("sidekiq_secret", ("bundle_enterprise__contribsys__com", "bundle_gems__contribsys__com"),
          # the variable's name may go on (`..._COM_TOKEN`, `...COMToken string`); any assignment syntax
          r"(?i:BUNDLE_(?:ENTERPRISE|GEMS)__CONTRIBSYS__COM)[ \t\w.\-]{0,20}[\"'`]?[ \t]*"
          r"(?:=>|:{1,3}=|\?=|\.=|=|:|,|>)[\s\"'`]{0,8}([a-f0-9]{8}:[a-f0-9]{8})" + _E,
          lambda s, _m: looks_random(s.replace(":", ""), 2.5), anchored=True),
    _rule("sidekiq_secret", ("contribsys.com",),
          r"https?://([a-f0-9]{8}:[a-f0-9]{8})@(?:gems|enterprise)\.contribsys\.com",
          lambda s, _m: looks_random(s.replace(":", ""), 2.5)),
    _rule("bearer_token", ("bearer", "token", "basic"),
          _B + r"(?i:(?P<scheme>bearer|token|basic))[ \t]+(?P<value>[A-Za-z0-9_\-+/=.~]{8,500})(?![A-Za-z0-9_\-+/=.~])",
          _bearer, "value", anchored=True),
    _rule("telegram_bot_token", (":a",), r"(?<![\w:])(\d{5,16}:A[A-Za-z0-9_\-]{34})" + _ED,
          _token(3.0, slice(-34, None)), back=-1),
    _rule("facebook_access_token", ("facebook", "fb_", "graph.facebook"),
          _B + r"(\d{15,16}(?:\||%7[Cc])[0-9A-Za-z\-_]{27,40})" + _ED, _token(3.0, slice(17, None))),
    _rule("twitter_bearer_token", ("aaaaaaaaaaaaaaaaaaaaaa",),
          _B + r"(A{22}[A-Za-z0-9%]{80,100})" + _E, _token(3.5, slice(22, None)), anchored=True),
    _rule("azure_ad_client_secret", ("q~",),
          r"(?:^|(?<=[\\'\"`\s>=:(,)]))([a-zA-Z0-9_~.]{3}\dQ~[a-zA-Z0-9_~.\-]{31,34})(?=$|[\\'\"`\s<),])",
          _token(3.0, slice(6, None)), back=4),
    _rule("flyio_access_token", ("fo1_", "fm1", "fm2_"),
          _B + r"(fo1_[\w-]{43}|fm1[ar]_[a-zA-Z0-9+/]{100,}={0,3}|fm2_[a-zA-Z0-9+/]{100,}={0,3})"
          r"(?![A-Za-z0-9+/=_\-])", _token(3.5, slice(4, None))),
    _rule("twilio_api_key", ("sk",), _B + r"(SK[0-9a-fA-F]{32})" + _E, _token(3.0, slice(2, None))),
    _rule("artifactory_api_key", ("akcp", "cmvmd"), _B + r"(AKCp[A-Za-z0-9]{69}|cmVmd[A-Za-z0-9]{59})" + _E,
          anchored=True),
    _rule("pypi_token", ("pypi-ageichlwas5vcmc", "pypi-agendgvzdc5wexbplm9yzw"),
          _B + r"(pypi-Ag(?:EIcHlwaS5vcmc|ENdGVzdC5weXBpLm9yZw)[A-Za-z0-9_\-]{50,1000})" + _ED, _pypi_macaroon),
    _rule("discord_bot_token", (".",),
          _B + r"([MNO][A-Za-z0-9_\-]{23,25}\.[A-Za-z0-9_\-]{6}\.[A-Za-z0-9_\-]{27,38})" + _ED),
    _rule("mailchimp_api_key", ("-us",), _B + r"([0-9a-f]{32}-us\d{1,2})" + _E, back=32),
    _rule("npm_token", ("npm_",), _B + r"(npm_[A-Za-z0-9]{36})" + _E, _checksummed_token(4)),
    _rule("gcp_api_key", ("aiza",), _B + r"(AIza[A-Za-z0-9_\-]{35})" + _ED, _google_api_key, anchored=True),
    _rule("age_secret_key", ("age-secret-key-",),
          _B + r"(AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58})" + _ED, _exact_format(slice(16, None)),
          anchored=True),
    *(_rule(kind, keywords, _B + "(" + pattern + ")" + _ED, anchored=True) for kind, keywords, pattern in _PREFIXED),
    # formats whose distinctive part is not at the start
    _rule("maxmind_license_key", ("_mmk",), _B + r"([A-Za-z0-9]{6}_[A-Za-z0-9]{29}_mmk)" + _ED),
    _rule("terraform_token", ("atlasv1",), _B + r"([A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9\-_=]{60,70})" + _ED),
)


def _as_spelled(keyword: str, pattern: str) -> str:
    """`keyword` (lower case) as `pattern` spells it: `ezak` -> `EZAK`, `dp.` -> `dp.`."""
    literal = re.sub(r"\\(.)", r"\1", pattern)
    index = literal.lower().find(keyword)
    return literal[index:index + len(keyword)] if index >= 0 else keyword


_VENDOR_PREFIX = re.compile(
    r"xox[a-z]-|gh[pousr]_|github_pat_|sk-|[sr]k_(?:live|test|prod)_|A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA|gl(?:pat|dt"
    r"|rt|cbt|ptt|soat|ffct|oas|imt|agent|ft)-|GR1348941|AIza|AGE-SECRET-KEY-|pypi-|npm_|\d{4,20}:[A-Za-z0-9_\-]"
)
"""The prefixes of the rules written out above; those of the `_PREFIXED` table come from the table."""
_VENDOR_PREFIXES = tuple(_as_spelled(k, pattern) for _, keywords, pattern in _PREFIXED for k in keywords)


def _has_vendor_prefix(value: str) -> bool:
    """Whether a provider rule has judged `value` already (it starts with that provider's prefix):
    an assignment does not judge it again. A real token is machine-made and always in its format;
    `DATABRICKS_TOKEN=dapi...` that breaks the format was written by hand, as an example."""
    return value.startswith(_VENDOR_PREFIXES) or _VENDOR_PREFIX.match(value) is not None


# ---------------------------------------------------------------------------------------------
# Assignments: a credential name and the value given to it

_PASSWORD_WORDS = ("password", "passwd", "passphrase", "passcode", "pwd", "pass", "pw")
_KEY_WORDS = ("apikey", "key", "token", "secret", "credential", "creds", "cred", "auth")
_NAME_WORDS = _PASSWORD_WORDS + _KEY_WORDS + ("keys", "tokens", "secrets", "credentials", "api")
_NAME_WORD_SET = frozenset(_NAME_WORDS)
"""What the keyword gate looks for (lower case); the name around a hit is then judged by parts."""

_NOT_CREDENTIAL_WORDS = frozenset({
    "monkey", "donkey", "turkey", "hockey", "jockey", "whiskey", "bypass", "compass", "surpass", "trespass",
    "encompass", "overpass", "underpass", "onepass", "firstpass", "nopass", "nopassword",
})
_QUALIFIERS = frozenset({
    "value", "val", "str", "string", "b64", "base64", "hex", "enc", "encoded", "raw", "plain", "plaintext", "text",
    "prod", "production", "dev", "development", "staging", "stage", "stg", "test", "testing", "live", "sandbox",
    "qa", "uat", "local", "old", "new", "current", "prev", "previous", "next", "secondary", "backup", "default",
    "main", "base", "s", "v", "env", "var", "data", "override",
})
"""Words that may follow the credential word in a name and leave it a credential: `api_key_prod`,
`SECRET_KEY_BASE`, `token_value`. Any other word means the name is about something else:
`token_url`, `key_id`, `password_policy`, `keyPressed`, `secret_name`."""
_NEGATING_WORDS = frozenset({
    "public", "pub", "publishable", "primary", "foreign", "bucket", "sequence", "schema", "idx", "index",
    "natural", "hot", "partition", "sort", "composite", "unique", "cache", "lookup", "row", "csrf", "xsrf",
    "authenticity", "issuer", "not", "no", "non", "fake", "dummy", "example", "sample", "placeholder", "mock",
    "max", "min", "num", "dict", "map", "hash", "idempotency", "sitekey", "site", "recaptcha",
})
"""Words before the credential word that say the value is not one: `public_key`, `primary_key`,
`csrf_token`, `not_secret`, `max_tokens`, `recaptcha_site_key`."""
_NAME_PARTS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


def _credential_word(part: str) -> str | None:
    """The credential word `part` is or ends with (`apiKey` -> key, `dbpass` -> pass), if any."""
    if part in _NOT_CREDENTIAL_WORDS:
        return None
    for word in _NAME_WORDS:
        if part == word:
            return word
    for word in ("password", "passwd", "passphrase", "pwd", "pass", "apikey", "key", "token", "secret",
                 "credentials", "credential", "creds", "auth"):
        if part.endswith(word) and len(part) > len(word):
            return word
    return None


@dataclass(frozen=True, slots=True)
class NameVerdict:
    kind: str
    """"password" or "api_key"."""
    strong: bool
    """False for a bare `key`/`keys`/`api`: a dictionary key or an API name as often as a credential."""


def judge_name(name: str) -> NameVerdict | None:
    """Whether a variable/field/flag/header name holds a credential, and which kind."""
    parts = [p.lower() for p in _NAME_PARTS.findall(name)]
    found: NameVerdict | None = None
    for index, part in enumerate(parts):
        word = _credential_word(part)
        if word is None:
            continue
        before, after = parts[:index], parts[index + 1:]
        if any(p in _NEGATING_WORDS for p in before):
            return None
        if word == "api" and after:
            continue  # api_url, api_version, apiName
        if any(not (p in _QUALIFIERS or p.isdigit() or _credential_word(p)) for p in after):
            continue  # token_url, key_id, password_policy: some other thing named after the credential
        if word == "pass" and part == word and not before and not name.startswith("-"):
            continue  # "pass: ..." is a verb or a test result; db_pass, --pass, sshpass are names
        kind = "password" if word in _PASSWORD_WORDS else "api_key"
        strong = not (word in {"key", "keys", "api"} and part == word and not before)
        if found is None or kind == "password" or strong:
            found = NameVerdict(kind, strong)
    return found


_NOT_PASSWORDS = frozenset({
    "true", "false", "yes", "no", "on", "off", "none", "null", "nil", "undefined", "empty", "password", "passwd",
    "secret", "required", "optional", "string", "hidden", "pass", "token", "username", "user", "admin", "root",
    "guest", "test", "testing", "default", "value", "changeit", "letmein", "secure", "private", "public",
    "blank", "unset", "missing", "disabled", "enabled", "str", "bool", "int", "integer", "text", "mask",
    "masked", "omitted", "env", "environment", "prompt", "ask", "auto", "random", "generated", "secrets",
})
_REFERENCE = re.compile(
    r"^(?:\$|%|!(?:Ref|Sub|GetAtt|ImportValue|vault)\b|env\b|ENV\[|process\.|os\.|getenv|System\.|sys\.|"
    r"settings\.|config\.|cfg\.|"
    r"secrets\.|self\.|this\.|params\.|vars\.|var\.|args\.|options\.|props\.|context\.|ctx\.|input\.|"
    r"request\.|req\.|data\.|values\.|Values\.|local\.|module\.|ref\(|vault:|arn:|file:|/|\./|\.\./|~/|[A-Z]:\\)"
)
"""Values that point at a secret instead of being one: `$VAR`, `os.environ[...]`, `settings.X`, paths."""
_CALL = re.compile(r"^[A-Za-z_][\w.]*\(")


def password_value(value: str, *, min_length: int = 6) -> bool:
    """A plausible password: not a placeholder, reference, keyword, call, path or phrase.
    Words are allowed (people use them); a hex string is allowed (a password is not a digest)."""
    if len(value) < min_length or len(value) > 200 or any(c.isspace() for c in value):
        return False
    if is_placeholder(value, run_limit=12) or value.lower() in _NOT_PASSWORDS:
        return False
    if _REFERENCE.match(value) or _CALL.match(value) or "://" in value:
        return False
    return entropy(value) >= 2.0


def key_value(value: str) -> bool:
    """A plausible API key/token: random-looking, not a word, identifier, version, host, path,
    reference or placeholder. Hex digests and UUIDs count here: assigned to a credential name
    they are the credential (Heroku, Snyk, Datadog keys)."""
    n = len(value)
    if n < 10 or n > 300 or any(c.isspace() for c in value):
        return False
    if is_placeholder(value, run_limit=12) or _REFERENCE.match(value) or _CALL.match(value) or "://" in value:
        return False
    if _UUID.fullmatch(value) or _HEX_DIGEST.fullmatch(value):
        return True
    if value.isdigit():
        return n >= 16 and entropy(value) >= 2.5
    if not _LETTER.search(value):
        return False
    if looks_like_words(value):
        return False
    if not _DIGIT.search(value) and n < 20:
        return False  # letters only: words and identifiers, unless long and random
    return entropy(value) >= min(3.0, math.log2(n) - 1.0)


_ASSIGN_AT = re.compile(
    r"(?P<rest>[A-Za-z0-9_.\-]{0,40})(?P<nq>\\?[\"'`]?)\]?[ \t]*"
    r"(?:(?::[ \t]*|[ \t])(?:string|String|str|&str|\[\]byte|bytes)[ \t]*)?"  # a type: Go, TypeScript, Rust
    r"(?:(?P<op>=>|:{1,3}=|\?=|\.=|\|\|=?|=|:|,)|(?P<xml>>\s*)|(?P<space>(?<=[A-Za-z0-9_\-])[ \t]))[ \t]*"
    r"(?:\\?(?P<q>[\"'`])(?P<quoted>[^\"'`\r\n\\]{1,300}?)\\?(?P=q)|(?P<bare>[^\s\"'`<>,;\\]{1,300}))"
)
"""Right of a credential word: the rest of the name, an assignment, the value (quoted or bare)."""
_NAME_CHAR = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


@dataclass(slots=True)
class _Scan:
    """What the assignments of one text have used: names judged, and a budget of value
    characters (each text character about four times over), so that a hostile text such as
    `key:key:key:...` costs linear time: past the budget, assignments are not judged."""

    budget: int
    seen: set[int]
    bare_end: int = 0
    """The end of the last unquoted value: credential words inside it are part of the value."""


def _assignment(text: str, start: int, end: int, scan: _Scan) -> tuple[str, int, int] | None:
    """The credential assigned to the name around text[start:end] (a credential word), if any."""
    if start < scan.bare_end or scan.budget <= 0:
        return None
    match = _ASSIGN_AT.match(text, end)
    if match is None:
        return None
    group = "quoted" if match.group("quoted") is not None else "bare"
    value = match.group(group)
    if len(value) < 6:
        return None  # shorter than any password or key we accept: skip the rest of the work
    name_start = start
    while name_start > 0 and start - name_start < 60 and text[name_start - 1] in _NAME_CHAR:
        name_start -= 1
    if name_start in scan.seen:
        return None
    scan.seen.add(name_start)
    scan.budget -= len(value)
    if group == "bare":
        scan.bare_end = match.end(group)
    if match.group("op") == "," and not match.group("nq"):
        return None  # a comma assigns only in ("NAME", "value") pairs, not in prose lists
    if match.group("xml") is not None and (name_start == 0 or text[name_start - 1] != "<"):
        return None  # <apiToken>value</apiToken>, not a shell redirect
    name = text[name_start:match.end("rest")]
    if match.group("space") is not None and not name.startswith("-"):
        return None  # --api-key VALUE: only a command-line flag takes its value after a space
    verdict = judge_name(name.lstrip("-.$"))
    if verdict is None or not verdict.strong or "..." in value or _has_vendor_prefix(value):
        # A bare `key`/`keys`/`api` names a record's key, a dictionary key or an API as often as a
        # credential (detect-secrets' keyword list leaves it out too): in a tool result it holds
        # document ids and idempotency keys that a client needs intact. `ops_eyJhbG...` is elided,
        # not a token (seen before the dots are stripped below), and a value with a provider's
        # prefix has been judged by that provider's rule already.
        return None
    value_start, value_end = match.span(group)
    if group == "bare":  # trailing punctuation closes the statement, it is not part of the value
        stripped = value.rstrip(")]}.")
        value_end -= len(value) - len(stripped)
        value = stripped
    if value.lower() == name.lower():
        return None
    if match.group("xml") is not None and not text.startswith("</", _skip_space(text, value_end)):
        return None
    if match.group("op") == ",":
        ok = key_value(value)  # in a list of strings only a random one is a value, not the next name
    elif verdict.kind == "password":
        ok = password_value(value) and not (group == "bare" and _is_code_reference(value))
    else:
        ok = key_value(value)
    return (verdict.kind, value_start, value_end) if ok else None


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_PASCAL_CASE = re.compile(r"(?:[A-Z][a-z0-9]+){2,}")
_SLUG = re.compile(r"[a-z]+(?:-[a-z]+)+")


def _is_code_reference(value: str) -> bool:
    """An unquoted `key_password`, `proxy.auth`, `SecretStr`, `parts[1]`, `db-credentials`: a
    variable, a type, an expression or the name of a resource (a Kubernetes secret, a vault
    entry: words joined by hyphens), not a literal."""
    if "[" in value or "(" in value:
        return True
    if _SLUG.fullmatch(value):
        return looks_like_words(value)
    if not _IDENTIFIER.fullmatch(value) or not looks_like_words(value):
        return False
    return "_" in value or "." in value or _PASCAL_CASE.fullmatch(value) is not None


def _skip_space(text: str, index: int) -> int:
    while index < len(text) and text[index].isspace():
        index += 1
    return index


# ---------------------------------------------------------------------------------------------
# detect-secrets, as a second opinion on high-entropy strings

_DS_LOCK = threading.Lock()
_DS_READY: bool | None = None
_DS_LONG_TOKEN = re.compile(r"[A-Za-z0-9+/_\-=]{20}")
_DS_CANDIDATE = re.compile(r"([\"'])(?P<token>[A-Za-z0-9+/_\-=]{23,})\1")
"""What its Base64 plugin can report at all: a quoted string of its alphabet, long enough to reach
its entropy limit (4.5 bits needs 23 distinct characters)."""
_DS_WINDOW = 240
_DS_MAX_WINDOWS = 8
_DS_LIMIT = 4.5
_DS_PLUGINS = [{"name": "Base64HighEntropyString", "limit": _DS_LIMIT}]
"""What detect-secrets is asked for: its opinion on high-entropy strings (at its default limit).
Its provider plugins duplicate our rules with looser formats, and hex runs are digests far more
often than keys, so those plugins are not run at all (they cost 25 regex passes per line)."""
_DS_NOT_CONTEXT = re.compile(r"(?i)csrf|xsrf|authenticity_token|integrity|checksum|nonce|sha\d|hash|public")
"""A high-entropy string counts only on a line that says it holds a credential (`_CREDENTIAL_CONTEXT`),
and not on one that says the string is public, an anti-forgery token, a digest or a nonce."""


def _ds_gate(text: str) -> bool:
    """Cheap: an assignment-ish character and a long token (linear time, no backtracking)."""
    return ("=" in text or ":" in text or '"' in text or "'" in text) and _DS_LONG_TOKEN.search(text) is not None


def _detect_secrets_ready() -> bool:
    """Configure detect-secrets once, globally: the high-entropy plugin, the default filters."""
    global _DS_READY
    if _DS_READY is not None:
        return _DS_READY
    with _DS_LOCK:
        if _DS_READY is None:
            try:
                from detect_secrets.settings import (  # type: ignore[import-untyped,unused-ignore]
                    configure_settings_from_baseline,
                )

                configure_settings_from_baseline({"plugins_used": _DS_PLUGINS})
                _DS_READY = True
            except ImportError:  # pragma: no cover - dependency missing
                _DS_READY = False
    return _DS_READY


def _detect_secrets_line(line: str) -> Iterator[str]:
    """Every value detect-secrets reports for `line` alone, the way `scan_file` judges it
    (plugins + the line, secret and context filters)."""
    from detect_secrets.core.scan import _is_filtered_out, _scan_line  # type: ignore[import-untyped,unused-ignore]
    from detect_secrets.settings import get_plugins  # type: ignore[import-untyped,unused-ignore]
    from detect_secrets.util.code_snippet import get_code_snippet  # type: ignore[import-untyped,unused-ignore]

    context = get_code_snippet(lines=[line], line_number=1)
    filename = "mcp-message"
    if _is_filtered_out(required_filter_parameters=["line"], filename=filename, line=line, context=context):
        return
    for plugin in get_plugins():
        for secret in _scan_line(plugin=plugin, filename=filename, line=line, line_number=1, context=context):
            if _is_filtered_out(
                required_filter_parameters=["context"],
                filename=filename,
                secret=secret.secret_value,
                plugin=plugin,
                line=line,
                context=context,
            ):
                continue
            if secret.secret_value:
                yield str(secret.secret_value)


def _second_opinion(text: str, found: list[tuple[str, int, int]]) -> Iterator[tuple[str, int, int]]:
    """detect-secrets' verdict on each quoted high-entropy string our own layers left alone, on a
    line that says it holds a credential. It sees the string's line, or on a long line the
    statement-sized window around it (its indirect-reference filter is quadratic in the line
    length), at most `_DS_MAX_WINDOWS` times per text, so a hostile result cannot make it slow."""
    covered = [(start, end) for _, start, end in found]
    budget = _DS_MAX_WINDOWS
    for candidate in _DS_CANDIDATE.finditer(text):
        token = candidate.group("token")
        start, end = candidate.span("token")
        if is_benign_identifier(token) or any(a < end and start < b for a, b in covered):
            continue
        if entropy(token) < _DS_LIMIT or not looks_random(token, 3.0) or looks_like_words(token):
            continue  # detect-secrets could not report it, or we would drop what it says
        line_start = text.rfind("\n", 0, start) + 1
        line_end = text.find("\n", end)
        line = text[line_start:line_end if line_end >= 0 else len(text)]
        if not _CREDENTIAL_CONTEXT.search(line) or _DS_NOT_CONTEXT.search(line):
            continue
        budget -= 1
        if budget < 0:
            return
        left = 0
        if len(line) > _DS_WINDOW:
            left = max(0, candidate.start() - line_start - _DS_WINDOW // 2)
            line = line[left:left + _DS_WINDOW]
        for value in _detect_secrets_line(line):
            index = line.find(value)
            if value == token and index >= 0:
                span = (line_start + left + index, line_start + left + index + len(value))
                covered.append(span)
                yield "base64_high_entropy_string", *span


# ---------------------------------------------------------------------------------------------
# The scan: one keyword pass, then only the rules and assignments whose keywords occurred


_CONTEXT_KINDS = frozenset({"url_credentials", "softlayer_api_key", "sidekiq_secret", "bearer_token"})
"""Rules whose context says the value is a credential (a URL's password, a key in an API URL): a
hex string there is the credential, not a digest."""
_SHORT_KEYWORDS = frozenset(k for rule in RULES if not rule.anchored for k in rule.keywords if len(k) <= 2)
"""`.`, `sk`, `q~`: so common that reporting each occurrence would cost more than one `in` test."""
_ANCHOR_WORDS = frozenset(_NAME_WORDS) | {k for rule in RULES if rule.anchored for k in rule.keywords}
"""Keywords whose every occurrence matters: credential names, and the anchors of anchored rules."""


def _keyword_automaton() -> ahocorasick.Automaton:
    automaton = ahocorasick.Automaton()
    rule_words = {k for rule in RULES for k in rule.keywords} - _SHORT_KEYWORDS | {"curl"}
    for keyword in rule_words | _ANCHOR_WORDS:
        automaton.add_word(keyword, (keyword, keyword in _ANCHOR_WORDS))
    automaton.make_automaton()
    return automaton


_KEYWORDS = _keyword_automaton()
_RULES_BY_KEYWORD: dict[str, tuple[int, ...]] = {
    keyword: tuple(i for i, rule in enumerate(RULES) if keyword in rule.keywords)
    for keyword in {k for rule in RULES for k in rule.keywords}
}
"""The rules each keyword switches on (rules run in their order in RULES)."""
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _keywords_in(text: str) -> tuple[set[str], list[tuple[str, int, int]]]:
    """Every rule keyword in `text` (case-insensitive), and where each anchor word occurs, in one
    Aho-Corasick pass (one substring scan per keyword was 8x slower on a 4 KB result)."""
    lowered = text.lower()
    if len(lowered) != len(text):  # a few non-ASCII letters change length when lower-cased
        lowered = text.translate(_ASCII_LOWER)
    present = {keyword for keyword in _SHORT_KEYWORDS if keyword in lowered}
    anchors: list[tuple[str, int, int]] = []
    for end, (keyword, is_anchor) in _KEYWORDS.iter(lowered):
        present.add(keyword)
        if is_anchor:
            anchors.append((keyword, end + 1 - len(keyword), end + 1))
    return present, anchors


def _anchor_start(text: str, keyword_start: int, back: int) -> int:
    if back >= 0:
        return max(0, keyword_start - back)
    start = keyword_start
    while start > 0 and keyword_start - start < 16 and text[start - 1].isdigit():
        start -= 1
    return start


def find_secrets(text: str, *, second_opinion: bool = True) -> list[tuple[str, int, int]]:
    """(kind, start, end) of every secret in `text`, non-overlapping, in order."""
    present, anchors = _keywords_in(text)
    if not present:
        return []
    found: list[tuple[str, int, int]] = []
    for index in sorted({i for keyword in present for i in _RULES_BY_KEYWORD.get(keyword, ())}):
        rule = RULES[index]
        if rule.anchored:
            matches: Iterable[re.Match[str] | None] = (
                rule.pattern.match(text, _anchor_start(text, start, rule.back))
                for keyword, start, _ in anchors
                if keyword in rule.keywords
            )
        else:
            matches = rule.pattern.finditer(text)
        for match in matches:
            if match is None:
                continue
            start, end = match.span(rule.group)
            if start < 0 or (rule.bounded and match.start() and text[match.start() - 1] in _BOUNDARY_CHARS):
                continue
            value = text[start:end]
            if rule.kind not in _CONTEXT_KINDS and is_benign_identifier(value):
                continue  # a bare digest or UUID
            if rule.validate is not None and not rule.validate(value, match):
                continue
            found.append((rule.kind, start, end))
    if "curl" in present:
        found.extend(_curl_credentials(text))
    scan = _Scan(budget=4 * len(text) + 4096, seen=set())
    for keyword, start, end in anchors:
        if keyword not in _NAME_WORD_SET:
            continue
        assignment = _assignment(text, start, end, scan)
        if assignment is not None:
            found.append(assignment)
    if second_opinion and _ds_gate(text) and _detect_secrets_ready():
        found.extend(_second_opinion(text, found))
    return _non_overlapping(found)


def _non_overlapping(found: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    # Longest first at each start (a provider rule before an assignment on a tie), then drop
    # anything overlapping a kept span.
    found.sort(key=lambda f: (f[1], -(f[2] - f[1])))
    kept: list[tuple[str, int, int]] = []
    for item in found:
        if kept and item[1] < kept[-1][2]:
            continue
        kept.append(item)
    return kept


_EXCERPT_KEY = os.urandom(16)


def keyed_excerpt(value: str, label: str = "") -> str:
    """`[label ]hmac:<12 hex> (<n> chars)`: enough to correlate sightings, nothing of the value
    itself (even a few leading characters of a password are a leak). The hash is keyed, at
    random per process: a plain hash of a short password, an SSN or a phone number is reversed
    by enumeration. The PII inspector's excerpts use it too."""
    digest = hmac.new(_EXCERPT_KEY, value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:12]
    return f"{label + ' ' if label else ''}hmac:{digest} ({len(value)} chars)"


def excerpt_of(secret: str) -> str:
    """The audit excerpt of a secret (`keyed_excerpt`)."""
    return keyed_excerpt(secret)


@dataclass(frozen=True, slots=True)
class SecretsPolicy:
    """What a secret does, in which direction."""

    action: Action = Action.REDACT
    directions: frozenset[Direction] = BOTH_DIRECTIONS


class SecretsInspector(EveryMessage):
    """Options (`security.inspectors.secrets.*`), defaults = the `standard` profile:

    - `action`: redact | block | warn (default redact).
    - `directions`: client_to_server and/or server_to_client (default both).
    - `second_opinion`: detect-secrets' Base64 high-entropy plugin behind our own layers
      (default true).
    """

    name = "secrets"

    def __init__(self, policy: SecretsPolicy | None = None, *, second_opinion: bool = True) -> None:
        self.policy = policy or SecretsPolicy()
        self.second_opinion = second_opinion

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> SecretsInspector:
        read = Options(cls.name, options)
        action = read.action("action", Action.REDACT)
        directions = read.directions()
        second_opinion = read.boolean("second_opinion", True)
        read.done()
        return cls(SecretsPolicy(action, directions), second_opinion=second_opinion)

    def check(self, event: Event) -> list[Finding]:
        if event.direction not in self.policy.directions:
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
