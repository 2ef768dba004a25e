"""Argument injection: SQL, shell, path traversal and SSRF payloads in `tools/call` arguments.

A tool call's arguments are where a model (steered by injected content, or by a user) hands
a server the string the server will splice into a query, a shell line, a file path or an
outgoing request. The same text is an attack in one argument and the job in another:
`SELECT ...` in the `sql` argument of a database tool is the point of the call, in a
`city` argument it is an injection. So every string is judged against its argument:

1. **Context.** The called tool's definition (from the `ToolCatalog`: tool name and
   description, the property's name, `format`, `enum`, description) says which languages
   an argument is meant to hold. Without a definition the argument name decides. Each
   category is then *expected* (SQL in a database tool's `query`, a shell line in a
   shell tool's `command`, a path in a `path` argument, code in a code tool's `code`),
   *free-form* (prose such as `text`, `body`, `question`, a search `query`), or *specific*
   (everything else: `city`, `date`, `name`, ...).
2. **Strength.** Every rule hit is WEAK (the value merely *is* SQL, a command line, a
   template: fine in prose or a query tool, wrong in `city`), STRONG (injection syntax:
   a quote breaking out into `OR 1=1`, `UNION SELECT`, `; whoami`, `$(...)`, escaping
   `../`) or ALWAYS (wrong whatever the argument is for: a reverse shell, a path to
   `/etc/shadow` or `~/.ssh`, a URL to a cloud metadata endpoint or a loopback address,
   a database query that shells out). Specific arguments report all three, free-form
   ones STRONG and ALWAYS, expected ones ALWAYS only. An argument that holds SQL goes to
   a database and one that holds a command line goes to a shell, so each is also exempt
   from the other's STRONG rules (`;shutdown` is SQL there, `psql -c "..."` the user's query).
3. **Decoding.** Rules run on the original string and on one decoded form: URL encoding
   undone up to three times (double encoding, `%%32%65`, overlong UTF-8 `%c0%af`,
   `%u002e`), `\\uXXXX` / `\\xXX` / octal / `\\n` escapes and HTML entities decoded, then
   the shared `normalize()` (NFKC, invisibles, look-alikes). A hit that only percent/escape
   decoding reveals is at least STRONG, and ALWAYS for paths: ordinary arguments do not
   encode quotes, and no real file path percent-encodes `../` or a file name.

Paths: `..` that climbs above where the path starts is traversal (in a path argument too:
`src/../README.md` is fine, `../x` is not); credential stores (`~/.ssh`, `.aws/credentials`,
`/etc/shadow`, `/proc/self/environ`, SAM hives, ...) are reported in any form, and the files
traversal probes reach for (`/etc/passwd`, `win.ini`, `web.config`, ...) when absolute or
reached by `..`. NUL bytes in a path are truncation attempts.

SSRF looks at URLs (and bare hosts in `host`-like arguments): loopback, private, link-local,
CGNAT, unspecified and ULA addresses in every spelling a resolver accepts (`2130706433`,
`0x7f.1`, `0177.0.0.1`, `127.1`, `[::ffff:127.0.0.1]`, NAT64, 6to4, `*.nip.io`), cloud
metadata names and addresses, and the `file`/`gopher`/`dict`/... schemes. An internal URL
inside prose (an issue body saying "open http://localhost:3000") is only reported in a
specific argument; metadata endpoints are reported anywhere.

Findings name the category (`sql_injection`, `command_injection`, `path_traversal`,
`ssrf`), the JSON path of the string, the span (exact when the original string matched,
the whole string when only the decoded form did) and an excerpt of the matched token with
up to 20 characters either side, at most 80, with e-mail addresses, long digit runs and
credentials masked. Only client->server `tools/call` requests are inspected.
"""

from __future__ import annotations

import fnmatch
import html
import ipaddress
import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from functools import lru_cache
from typing import Any, Final
from urllib.parse import unquote

from guardian.catalog import ToolCatalog, ToolDefinition
from guardian.content import Path
from guardian.decision import Action, Finding
from guardian.events import Direction, Event, Surface
from guardian.inspectors.options import Options
from guardian.inspectors.secrets import find_secrets
from guardian.normalize import normalize

SQL: Final = "sql"
COMMAND: Final = "command"
PATH: Final = "path_traversal"
SSRF: Final = "ssrf"
CATEGORIES: Final = (SQL, COMMAND, PATH, SSRF)
KINDS: Final = {SQL: "sql_injection", COMMAND: "command_injection", PATH: "path_traversal", SSRF: "ssrf"}
_MESSAGES: Final = {
    SQL: "SQL injection pattern",
    COMMAND: "command or code injection pattern",
    PATH: "path traversal or sensitive file path",
    SSRF: "URL or host pointing at an internal address",
}


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


class Strength(IntEnum):
    WEAK = 1
    STRONG = 2
    ALWAYS = 3


class Expect(IntEnum):
    """How an argument relates to a category; the value is the weakest hit still reported."""

    SPECIFIC = Strength.WEAK
    FREEFORM = Strength.STRONG
    EXPECTED = Strength.ALWAYS


@dataclass(frozen=True, slots=True)
class Hit:
    category: str
    strength: Strength
    score: float
    start: int
    end: int
    what: str
    """Names the rule, for the audit excerpt; never the content."""


# ---------------------------------------------------------------------------------------------
# Decoding

_OVERLONG: Final = re.compile(r"(?i)%c0%ae|%e0%80%ae|%c0%2e|%c0%af|%e0%80%af|%c0%2f|%c1%9c|%c0%5c|%c1%1c|%c1%af")
_OVERLONG_MAP: Final = {"ae": ".", "2e": ".", "af": "/", "2f": "/", "9c": "\\", "5c": "\\", "1c": "\\"}
_PERCENT_U: Final = re.compile(r"(?i)%u([0-9a-f]{4})")
_ESCAPE: Final = re.compile(r"\\(?:u\{([0-9a-fA-F]{1,6})\}|u([0-9a-fA-F]{4})|x([0-9a-fA-F]{2})|([0-7]{1,3})|([nrt]))")
_CODEPOINT_ESCAPE: Final = re.compile(r"\\(?:u\{([0-9a-fA-F]{1,6})\}|u([0-9a-fA-F]{4})|x([0-9a-fA-F]{2}))()()")
_WINDOWS_PATH: Final = re.compile(r"(?:^|[\s\"'=])(?:[A-Za-z]:\\|\\\\[\w.$-]+\\)")
_SLASHES: Final = str.maketrans({"\u2215": "/", "\u2044": "/", "\u29f8": "\\", "\u2216": "\\", "\u2018": "'",
                                 "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u00b4": "'", "\u02bc": "'"})


def _overlong(match: re.Match[str]) -> str:
    return _OVERLONG_MAP[match.group()[-2:].lower()]


def _unescape(match: re.Match[str]) -> str:
    brace, four, two, octal, letter = match.groups()
    if letter:
        return {"n": "\n", "r": "\r", "t": "\t"}[letter]
    code = int(octal, 8) if octal else int(brace or four or two, 16)
    return chr(code) if code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else match.group()


def decode(text: str) -> str:
    """The string once URL encoding, escapes and entities are undone and it is normalized."""
    return _normalized(_unencode(text))


def _normalized(text: str) -> str:
    return normalize(text).translate(_SLASHES)


def _unencode(text: str) -> str:
    """The string with URL encoding, escapes and HTML entities undone (not normalized)."""
    current = text
    for _ in range(3):
        if "%" not in current:
            break
        step = _PERCENT_U.sub(lambda m: chr(int(m.group(1), 16)), _OVERLONG.sub(_overlong, current))
        step = unquote(step, errors="replace")
        if step == current:
            break
        current = step
    if "\\" in current:
        # C:\new\tools is a path, not "C:" + newline + "ew": there only \u and \x escapes are decoded.
        pattern = _CODEPOINT_ESCAPE if _WINDOWS_PATH.search(current) else _ESCAPE
        current = pattern.sub(_unescape, current)
    if "&" in current and ";" in current:
        current = html.unescape(current)
    return current


# ---------------------------------------------------------------------------------------------
# Shared heuristics

_PROSE_WORDS: Final = re.compile(r"(?<!\S)[A-Za-z][a-z]+[,.!?:;]?(?!\S)")
_NOT_PLAIN: Final = re.compile(r"[^\w\s,.!?'-]|[\d_]")


def is_prose(text: str) -> bool:
    """Natural-language sentences rather than a path, a command or a payload (judged on the first 2 KB)."""
    return _prose_sample(text[:2048])


@lru_cache(maxsize=256)
def _prose_sample(sample: str) -> bool:
    words = len(_PROSE_WORDS.findall(sample))
    if words < 4:
        return False
    return 1 - len(_NOT_PLAIN.findall(sample)) / len(sample) >= 0.85


def _content_bounds(text: str) -> tuple[int, int]:
    """Where `text` starts and ends once surrounding blanks and quotes are set aside."""
    return len(text) - len(text.lstrip()), len(text.rstrip(" \t\r\n'\""))


# ---------------------------------------------------------------------------------------------
# SQL

_I = re.IGNORECASE
# Written so no two neighbouring quantifiers can match the same characters: every pattern here
# runs in linear time on hostile input (a quote followed by 100 000 spaces, say).
_OPERAND = r"[\s(]*['\"]?[\w@.%]{0,20}['\"]?[\s)]*"
_Rule = tuple[str, float, tuple[str, ...], re.Pattern[str]]
"""(what it finds, score, lower-case substrings one of which must occur for the regex to run, regex)."""
_SQL_STRONG: Final[tuple[_Rule, ...]] = (
    ("quote then boolean", 0.95, ("'", '"'), re.compile(
        r"['\"][\s)]*(?:or|and|xor|\|\||&&)\s(?:" + _OPERAND + r"(?:=|<>|!=|<=?|>=?|\blike\b|\brlike\b|\bregexp\b)"
        r"|[\s(]*(?:true|false|null|not\b)|[\s(]*['\"]{2} ?[-&^|+*/] ?['\"])", _I)),
    ("quote then comment", 0.9, ("'", '"'), re.compile(r"['\"][\s);]*(?:--|#|/\*)[\s+-]*$")),
    ("quote then statement", 0.95, (), re.compile(
        r"^\W{0,3}['\"][\s);]*(?:create|drop|alter|insert|update|delete|exec|execute|select|union|shutdown"
        r"|declare|grant|truncate)\s+[\w@*(]", _I)),
    ("stacked query", 0.95, (";",), re.compile(
        r";\s*(?:drop\s+(?:table|database|schema|user|view|index|procedure|function)\b|truncate\s+table\b"
        r"|insert\s+into\b|update\s+[\w.\[\]\"`]+\s+set\b|delete\s+from\b|exec(?:ute)?\s*(?:\(|xp_|sp_|master\.)"
        r"|shutdown\b|declare\s+@|create\s+(?:table|user|login|database|function|procedure|trigger)\b"
        r"|alter\s+(?:table|user|login|database)\b|waitfor\s+delay|select\s+(?:\*|@@|\d|distinct\b|top\s+\d|[\w.]+\s*[,(]"
        r"|[\w.]+\s+from\s+[\w.]+\s*(?:;|--|#|/\*|$|\bwhere\b)))", _I)),
    ("UNION SELECT", 0.95, ("union",),
     re.compile(r"\bunion[\s(]+(?:(?:all|distinct)[\s(]+)?select(?:\b|(?=char))", _I)),
    ("time-based probe", 0.95, ("sleep", "benchmark", "waitfor", "dbms_", "randomblob"),
     re.compile(
        r"(?<![\w.])(?:pg_)?sleep\s*\(\s*\d+(?:\.\d+)?\s*\)|(?<![\w.])benchmark\s*\(\s*\d+\s*,"
        r"|waitfor\s+delay\s+['\"]|dbms_lock\.sleep|dbms_pipe\.receive_message|randomblob\s*\(\s*\d{5,}", _I)),
    ("tautology", 0.9, ("=", "like", "<", ">"), re.compile(
        r"\b(?:or|and|xor|where|having|when|if)[\s(]*(['\"]?)(\w{1,20})\1 ?(?:=|\blike\b)[\s(]*\1\2\1(?![\w'\"])"
        r"|\b(?:or|and|having)\s+\d+\s*(?:=|<>|!=|<|>)\s*\d+\b|\bif\s*\(\s*(\d+)\s*=\s*\3\s*,", _I)),
    ("leading boolean", 0.85, (), re.compile(
        r"^\W{0,3}(?:or|and|xor|having)\s[\s(]*['\"]?\w{1,30}['\"]? ?(?:=|<>|!=|<|>|\blike\b)", _I)),
    ("ORDER BY probe", 0.85, (), re.compile(
        r"^\W{0,3}(?:order|group)\s+by\s+(?:\d+\s*(?:,|--|#|/\*|;|\)|$)|(?:pg_)?sleep|if\s*\(|\(\s*select)", _I)),
    ("system catalog", 0.9,
     ("@@", "information_schema", "pg_shadow", "mysql.user", "sysobjects", "sqlite_master", "current_setting"),
     re.compile(
        r"@@(?:version|datadir|hostname|basedir|servername|identity)\b|\binformation_schema\b|\bpg_shadow\b"
        r"|\bmysql\.user\b|\bsysobjects\b|\bsqlite_master\b|\bcurrent_setting\s*\(\s*'", _I)),
    ("char() concatenation", 0.9, ("char", "concat", "exec", "case"), re.compile(
        r"\bchar\s*\(\s*\d+\s*\)\s*(?:\+|\|\||,)\s*char\s*\(|\bconcat\s*\(\s*0x[0-9a-f]+|\bexec(?:ute)?\s*\(\s*['\"]"
        r"|\bcase\s+when[\s(]*(\d+) ?= ?\1\b", _I)),
)
_SQL_ALWAYS: Final = re.compile(
    r"\bxp_cmdshell\b|\bxp_regread\b|\bxp_dirtree\b|\bsp_oacreate\b|\binto\s+(?:out|dump)file\b|\bload_file\s*\("
    r"|\bpg_read_file\s*\(|\bpg_ls_dir\s*\(|\blo_import\s*\(|\blo_export\s*\(|\bcopy\s[^;]{1,200}?\b(?:from|to)\s+program\b"
    r"|\butl_(?:http|file|inaddr)\b|\bdbms_xmlgen\b", _I)
"""Queries that reach out of the database (OS commands, files, network): wrong even for a query tool."""
_SQL_ALWAYS_KEYS: Final = ("xp_", "sp_oacreate", "outfile", "dumpfile", "load_file", "pg_read_file", "pg_ls_dir",
                           "lo_import", "lo_export", "program", "utl_", "dbms_xmlgen")
_SQL_WEAK: Final[tuple[_Rule, ...]] = (
    ("SQL statement", 0.6, (), re.compile(
        r"^\W{0,3}(?:select\s+(?:\*|distinct\b|top\s+\d|count\s*\(|@@|case\b|\d|[\w.]+\s*(?:,|\bfrom\b|\())"
        r"|insert\s+into\s+\w|update\s+[\w.]+\s+set\s+\w|delete\s+from\s+\w"
        r"|drop\s+(?:table|database|view|index|schema)\b|create\s+(?:table|view|index|user|database)\b"
        r"|alter\s+table\b|truncate\s+table\b|with\s+\w+\s+as\s*\(\s*select\b|exec(?:ute)?\s+\w+)", _I)),
    ("SQL statement", 0.6, ("select",), re.compile(
        r"\bselect\b[^;]{1,100}?\bfrom\s+[\w.\"`]+\s+(?:where|join|group|order|limit)\b", _I)),
    ("quote probe", 0.6, ("'", '"'), re.compile(r"^(?=.*['\"])[\s'\"`\\&^|+\-*/%=<>();#,.]{2,12}$")),
)


_COMMENT: Final = re.compile(r"/\*.*?\*/", re.DOTALL)
_WHITESPACE_RUN: Final = re.compile(r"\s+")


def sql_hits(text: str, floor: Strength = Strength.WEAK) -> list[Hit]:
    """SQL injection hits at least as strong as `floor` (weaker rules are not run)."""
    hits: list[Hit] = []
    form = _COMMENT.sub(" ", text) if "/*" in text else text
    form = _WHITESPACE_RUN.sub(" ", form) if "  " in form or "\n" in form or "\t" in form else form
    same = form is text
    lowered = form.lower()
    if any(k in lowered for k in _SQL_ALWAYS_KEYS) and (m := _SQL_ALWAYS.search(form)):
        hits.append(_hit(SQL, Strength.ALWAYS, 0.9, m, "database escape to OS or files", same, len(text)))
    for strength, rules in ((Strength.STRONG, _SQL_STRONG), (Strength.WEAK, _SQL_WEAK)):
        if strength < floor:
            break
        for what, score, keys, pattern in rules:
            # The substring test is what keeps this cheap: `re` scans alternations starting with
            # `\b` position by position, and most rules need a word or character most text lacks.
            if keys and not any(k in lowered for k in keys):
                continue
            m = _near(pattern, form, lowered, keys) if what in _NEAR_KEYS else pattern.search(form)
            if m:
                hits.append(_hit(SQL, strength, score, m, what, same, len(text)))
    return hits


_NEAR_KEYS: Final = frozenset({"tautology", "char() concatenation"})
"""Rules whose match lies within 80 characters of one of its keys: searched only there."""


def _near(pattern: re.Pattern[str], text: str, lowered: str, keys: Sequence[str]) -> re.Match[str] | None:
    """`pattern.search` restricted to windows around each occurrence of a key (keys are rare in prose,
    the pattern's leading alternation is slow to try at every position)."""
    starts: list[int] = []
    for key in keys:
        at = lowered.find(key)
        while at >= 0 and len(starts) < 256:
            starts.append(at)
            at = lowered.find(key, at + 1)
    if len(starts) >= 256:
        return pattern.search(text)  # keys everywhere: one full scan is cheaper than many windows
    scanned_to = 0
    for at in sorted(starts):
        start = max(at - 80, scanned_to)
        end = min(len(text), at + 80)
        if start < end and (m := pattern.search(text, start, end)):
            return m
        scanned_to = max(scanned_to, end - 80)
    return None


def _hit(category: str, strength: Strength, score: float, m: re.Match[str], what: str, exact: bool,
         length: int) -> Hit:
    start, end = m.span() if exact else (0, length)
    return Hit(category, strength, score, start, end, what)


# ---------------------------------------------------------------------------------------------
# Commands

_DISTINCT_COMMANDS: Final = _word_set(
    "whoami ifconfig ipconfig uname wget curl nc ncat netcat socat bash sh zsh ksh csh tcsh dash powershell pwsh "
    "cmd cmd.exe powershell.exe perl python python2 python3 ruby php node nodejs lua chmod chown chgrp rm mkfifo "
    "mknod telnet ssh scp sftp rsync tftp nslookup netstat systeminfo sysinfo tasklist taskkill netsh certutil "
    "bitsadmin wmic rundll32 regsvr32 mshta cscript wscript icacls cacls sudo useradd usermod userdel passwd "
    "crontab xxd base64 awk gawk sed grep egrep fgrep xargs ls pwd printenv pkill killall ps uptime iptables "
    "systemctl journalctl mkdir rmdir gzip gunzip unzip tar nohup whereis hexdump openssl gcc kubectl docker git "
    "npm npx pip pip3 apt apt-get yum dnf brew findstr schtasks vssadmin bcdedit diskpart sqlcmd psql mysql "
    "mysqldump chattr lsof tcpdump nmap dig traceroute tracert whois attrib printf unset javac"
)
_WORDY_COMMANDS: Final = _word_set(
    "id cat echo del dir type net reg sc at start copy move ren find sort head tail more less kill touch sleep ping "
    "route host cd cp mv ln dd env make time test exit exec eval source export set timeout shutdown reboot mount "
    "which file strings hostname who history print go java tee cut wc arp"
)
_COMMANDS: Final = _DISTINCT_COMMANDS | _WORDY_COMMANDS
_SUBCOMMAND_TOOLS: Final = _word_set("docker git npm kubectl systemctl apt apt-get pip brew")
_SUBCOMMANDS: Final = {
    "net": _word_set("view user users localgroup share use session start stop group accounts config"),
    "reg": _word_set("add query delete export import save load"),
    "sc": _word_set("query queryex create config start stop delete qc"),
    "go": _word_set("build run test get install mod env vet"),
}
"""Subcommands of commands whose name is also a word (`net view` yes, `net income` no)."""
_WINDOWS_COMMANDS: Final = _word_set(
    "dir type net reg del copy move ren ipconfig systeminfo tasklist taskkill netsh findstr cmd cmd.exe powershell "
    "powershell.exe whoami ping route hostname netstat schtasks wmic certutil attrib icacls"
)
"""Written in capitals too: cmd.exe does not care about case."""
_ALONE: Final = _word_set("whoami ifconfig ipconfig systeminfo sysinfo netstat uname ls pwd tasklist")
"""Commands whose bare name is a whole payload (and is not a word anyone types as a value)."""
_BINARY: Final = re.compile(r"(?i)^(?:/(?:usr/)?(?:local/)?s?bin/|[a-z]:\\windows\\system32\\)[\w.-]+$")
_SEPARATOR: Final = re.compile(r"\|\||&&|[;&|\n\r`]|\$\(")
_SEGMENT_END: Final = re.compile(r"\|\||&&|[;&|\n\r`)]")
_URL_SPAN: Final = re.compile(r"(?i)\b[a-z][a-z0-9+.-]{1,15}://[^\s'\"<>`]+")
_FILENAME: Final = re.compile(r"[\w.-]+\.[A-Za-z][A-Za-z0-9]{0,4}")
_IP_PORT: Final = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?")


def _command_name(token: str) -> str | None:
    """The command a token invokes (`/usr/bin/id` -> `id`), if it is one we know. Unix commands are
    lower-case; a capitalised word (`Apt 10`, `Find my phone`) is a word."""
    token = token.strip("'\"()\\")
    if _BINARY.match(token):
        return token.replace("\\", "/").rsplit("/", 1)[-1].lower() or None
    lowered = token.lower()
    if lowered not in _COMMANDS:
        return None
    if token == lowered or (token.isupper() and lowered in _WINDOWS_COMMANDS):
        return lowered
    return None


_TOKEN: Final = re.compile(r"\"[^\"]*\"|'[^']*'|\S+")
_TELLING_START: Final = frozenset("-/~$%\\<>\"'`*(")


def shell_tokens(text: str) -> list[str]:
    """Whitespace-separated words, a quoted string counting as one."""
    return _TOKEN.findall(text)


def _telling(token: str) -> bool:
    """An argument only a shell line would have: a flag, a path, a quoted string, a redirect,
    a variable, a glob, a file name, another command."""
    token = token.rstrip(";,")
    if not token or token[0] in _TELLING_START or re.match(r"[A-Za-z]:[\\/]", token):
        return True
    return (any(c in token for c in "/\\*=$<>@") or token.lower() in _COMMANDS
            or bool(_FILENAME.fullmatch(token) or _IP_PORT.fullmatch(token)))


def _invocation(tokens: Sequence[str], name: str, alone_ok: bool) -> bool:
    """Whether `tokens` (starting with command `name`) read as a shell invocation rather than words.

    Arguments must be at least as often shell-like (flags, paths, quoted strings, ...) as plain
    words; a command that is also an English word (`cat`, `find`, `type`) needs at least one
    shell-like argument, where a distinct one (`whoami`, `curl`) or a binary path does not.
    """
    binary = bool(_BINARY.match(tokens[0].strip("'\"()\\")))
    args = list(tokens[1:])
    if not args:
        return alone_ok or name in _ALONE or binary
    subcommand = (name in _SUBCOMMAND_TOOLS and re.fullmatch(r"[a-z][a-z-]*", args[0])) or args[0].lower() in \
        _SUBCOMMANDS.get(name, ())
    if subcommand:
        args = args[1:]
        if not args:
            return True
    if len(args) > 16:
        return False
    telling = sum(1 for t in args if _telling(t))
    numbers = sum(1 for t in args if t.isdigit())
    plain = len(args) - telling - numbers
    if plain > telling:
        return False
    if name in _DISTINCT_COMMANDS or binary or subcommand:
        return True
    return telling > 0 or (numbers > 0 and name in _NUMERIC_ARG_COMMANDS)


_REVERSE_SHELL: Final = re.compile(
    r"\bn(?:c|cat|etcat)\b[^|;&\n]{0,60}\s-[a-z]*[ec]\s*(?:/bin/|cmd|powershell|bash|sh\b)|/dev/(?:tcp|udp)/"
    r"|\b(?:ba)?sh\s+-i\s*[>&]|\bmkfifo\s+/tmp/|\bsocat\b[^\n]{0,80}\bexec:|socket\s*\(\s*\w+\s*,\s*PF_INET"
    r"|\bIEX\s*\(\s*New-Object\s+Net\.WebClient|\bpowershell(?:\.exe)?\s+[^\n]{0,40}-e(?:nc|ncodedcommand)?\s+"
    r"[A-Za-z0-9+/=]{40,}|\(\)\s*\{\s*:\s*;\s*\}\s*;", _I)
"""Reverse and bind shells, encoded PowerShell, Shellshock: never a legitimate tool argument."""
_REVERSE_SHELL_KEYS: Final = ("nc ", "ncat", "netcat", "/dev/", "sh -i", "mkfifo", "socat", "pf_inet", "iex",
                              "powershell", "()")
_CODE_CALL: Final = re.compile(
    r"(?<![\w.])(?:system|exec|eval|passthru|shell_exec|popen|proc_open|pcntl_exec|assert|os\.system|os\.popen"
    r"|subprocess\.\w+|Kernel\.exec|Runtime\.getRuntime\(\)\.exec|child_process\.\w+|__import__)"
    r"\s*\(\s*(['\"])\s*([^\s'\"]*)", _I)
_CODE_MARKERS: Final = re.compile(
    r"<\?php\b[^\n]{0,200}?(?:\b(?:system|exec|passthru|shell_exec|popen|eval|assert|include|require)\s*\(|\$_(?:GET|POST"
    r"|REQUEST|COOKIE|SERVER))|<!--\s*#\s*(?:exec|include|echo|config)\b|\$\{@|\{\$\{|@\{\[|\$\{IFS\}|\$\{jndi:"
    r"|\{\{\s*config\s*\}\}|\{\{\s*\d+\s*[*+]\s*\d+\s*\}\}|[$#]\{\s*\d+\s*[*+]\s*\d+\s*\}", _I)
"""Webshells, server-side includes, log4shell, template arithmetic probes: syntax no ordinary argument carries."""
_TEMPLATE_EXPRESSION: Final = re.compile(r"(?:\{\{|\{%|[$#]\{)[^{}]{1,200}\}")
_TEMPLATE_MARKER: Final = re.compile(
    r"__\s*\w+\s*__|\.getClass\s*\(|\bT\s*\(\s*java\.|\bconfig\.items\s*\(|\bos\.popen|\bRuntime\b", _I)
"""Inside a template expression: Python dunders, Java reflection, Flask's config: sandbox escapes."""
_TEMPLATE_MARKER_KEYS: Final = ("__", "getclass", "java", "config", "popen", "runtime")
_CODE_HINTS: Final = re.compile(r"<\?php\b|<\?=|(?<![\w.])phpinfo\s*\(\s*\)", _I)
_TEMPLATE: Final = re.compile(
    r"\{\{[^{}]{1,80}\}\}|\{%[^%]{1,80}%\}|\$\{[^{}]{1,80}\}|<%=?[^%]{1,80}%>|#\{[^{}]{1,80}\}")
_SYSTEM_CHANGE: Final = re.compile(
    r"\bnet\s+(?:user|localgroup)\b[^\n]{0,80}/add\b|\breg(?:\.exe)?\s+(?:add|delete)\s+\"?HK(?:LM|CU|EY_|CR|U)"
    r"|\bnetsh\s+(?:advfirewall|firewall)\s+set\b|\bcertutil(?:\.exe)?\s+-urlcache\b|\bvssadmin\s+delete\b"
    r"|\bschtasks\s+/create\b|\bbcdedit\s+/set\b", _I)
_SYSTEM_CHANGE_KEYS: Final = ("net ", "reg", "netsh", "certutil", "vssadmin", "schtasks", "bcdedit")
_CODE_CALL_KEYS: Final = ("system", "exec", "eval", "passthru", "popen", "proc_open", "assert", "subprocess", "kernel",
                          "runtime", "child_process", "__import__")
_DOWNLOAD_EXEC: Final = re.compile(r"\b(?:curl|wget)\b[^|;\n]{0,200}\|\s*(?:sudo\s+)?(?:ba|z)?sh\b", _I)
_METACHAR_ONLY: Final = re.compile(r"[\s;&|`$()<>\\]+")


def command_hits(text: str, floor: Strength = Strength.WEAK) -> list[Hit]:
    """Command and code injection hits at least as strong as `floor` (weaker-only rules are not run)."""
    hits: list[Hit] = []
    lowered = text.lower()
    if any(k in lowered for k in _REVERSE_SHELL_KEYS) and (m := _REVERSE_SHELL.search(text)):
        hits.append(Hit(COMMAND, Strength.ALWAYS, 0.98, *m.span(), "reverse shell or shellshock"))
    if floor > Strength.STRONG:
        return hits
    if any(k in lowered for k in _SYSTEM_CHANGE_KEYS) and (m := _SYSTEM_CHANGE.search(text)):
        hits.append(Hit(COMMAND, Strength.STRONG if _chained(text, m.start()) else Strength.WEAK, 0.8, *m.span(),
                        "system configuration command"))
    # An install one-liner in a README is fine; chained onto a value it is not.
    if ("curl" in lowered or "wget" in lowered) and (m := _DOWNLOAD_EXEC.search(text)):
        hits.append(Hit(COMMAND, Strength.STRONG if _chained(text, m.start()) else Strength.WEAK, 0.9, *m.span(),
                        "download piped to a shell"))
    if m := _code_marker(text, lowered):
        hits.append(Hit(COMMAND, Strength.STRONG, 0.9, *m.span(), "code or template injection marker"))
    elif ("<?" in text or "phpinfo" in lowered) and (m := _CODE_HINTS.search(text)):
        hits.append(Hit(COMMAND, Strength.WEAK, 0.6, *m.span(), "PHP code"))
    if "(" in text and any(k in lowered for k in _CODE_CALL_KEYS) and (m := _CODE_CALL.search(text)):
        runs = _command_name(m.group(2)) is not None
        hits.append(Hit(COMMAND, Strength.STRONG if runs else Strength.WEAK, 0.9 if runs else 0.6, *m.span(),
                        "code execution call"))
    hits.extend(_separated_commands(text))
    if floor > Strength.WEAK:
        return hits
    head = text[:1024]  # a whole-value command line is short; this rule reads no further
    tokens = shell_tokens(head)
    if tokens and (name := _command_name(tokens[0])) is not None and len(text) <= 1024 \
            and _invocation(tokens, name, alone_ok=False):
        start = text.index(tokens[0])
        hits.append(Hit(COMMAND, Strength.WEAK, 0.6, start, len(text.rstrip()), "command line"))
    if len(text) <= 64 and _METACHAR_ONLY.fullmatch(text) and any(c in text for c in ";&|`"):
        hits.append(Hit(COMMAND, Strength.WEAK, 0.5, 0, len(text), "shell metacharacters"))
    if ("{" in text or "<%" in text) and (m := _TEMPLATE.search(text)):
        hits.append(Hit(COMMAND, Strength.WEAK, 0.5, *m.span(), "template expression"))
    return hits


def _code_marker(text: str, lowered: str) -> re.Match[str] | None:
    if any(k in text for k in ("<?", "<!--", "{")) and (m := _CODE_MARKERS.search(text)):
        return m
    if "{" not in text or not any(k in lowered for k in _TEMPLATE_MARKER_KEYS):
        return None
    for expression in _TEMPLATE_EXPRESSION.finditer(text):
        if _TEMPLATE_MARKER.search(expression.group()):
            return expression
    return None


_NUMERIC_ARG_COMMANDS: Final = frozenset({"sleep", "timeout", "ping", "kill"})


def _chained(text: str, at: int) -> bool:
    """Whether the command at `at` follows a shell separator (`x; cmd`, `x | cmd`, `$(cmd`, `` `cmd ``)."""
    before = text[max(0, at - 64):at].rstrip()
    if before.endswith("`"):
        return _substitution(text, len(before) - 1 + max(0, at - 64), _words_outside_code(text))
    return before.endswith((";", "&", "|", "\n", "$("))


_BACKTICKED: Final = re.compile(r"```.*?```|`[^`]*`", re.DOTALL)
_WORD_OUTSIDE_BACKTICKS: Final = re.compile(r"[A-Za-z]{2,}")


def _words_outside_code(text: str) -> bool:
    """Whether the text has words outside its backtick spans (so the spans are Markdown in prose)."""
    return bool(_WORD_OUTSIDE_BACKTICKS.search(_BACKTICKED.sub(" ", text[:4096])))


def _substitution(text: str, at: int, words_outside: bool) -> bool:
    """Whether the backtick at `at` reads as shell substitution rather than Markdown code."""
    before = text[at - 1:at]
    if before and before in "=;|&$('\"":
        return True  # glued to shell syntax: x=`id`, ;`id`
    return not words_outside


def _separated_commands(text: str) -> list[Hit]:
    """`; whoami`, `| id`, `&& curl ...`, `$(...)`, backticks: a command after a shell separator."""
    hits: list[Hit] = []
    urls = [m.span() for m in _URL_SPAN.finditer(text)] if "://" in text else []
    url_starts = [a for a, _ in urls]
    ends = [(m.start(), m.group()) for m in _SEGMENT_END.finditer(text)]
    end_starts = [a for a, _ in ends]
    # Markdown code spans and fences in a sentence are documentation: what they hold is WEAK.
    markdown: list[tuple[int, int]] = []
    if "`" in text:
        words_outside = _words_outside_code(text)
        markdown = [m.span() for m in _BACKTICKED.finditer(text) if not _substitution(text, m.start(), words_outside)]
    markdown_starts = [a for a, _ in markdown]
    prose: bool | None = None
    for sep in _SEPARATOR.finditer(text):
        token = sep.group()
        if token == "&" and _inside(urls, url_starts, sep.start()):
            continue  # a query string, not a background operator
        j = bisect_left(end_starts, sep.end())
        segment_end, terminator = ends[j] if j < len(ends) else (len(text), "")
        # A command is short: reading 256 characters of the segment bounds the work per separator.
        window_end = min(segment_end, sep.end() + 256)
        first = _TOKEN.search(text, sep.end(), window_end)
        if first is None or (name := _command_name(first.group())) is None:
            continue
        tokens = shell_tokens(text[first.start():window_end])
        distinct = name in _DISTINCT_COMMANDS or bool(_BINARY.match(tokens[0].strip("'\"()\\")))
        # A bare command ("; id", "& dir") counts when it ends the value or a statement, not as a
        # table cell between pipes or in "dog & cat".
        alone_ok = distinct or not (
            (token == "|" and terminator == "|")
            or (token == "&" and text[max(0, sep.start() - 64):sep.start()].rstrip()[-1:].isalnum())
        )
        if not _invocation(tokens, name, alone_ok):
            continue
        strength = Strength.STRONG
        if _inside(markdown, markdown_starts, sep.start()):
            strength = Strength.WEAK  # `git status | head` in a sentence: Markdown, not substitution
        elif token in ("\n", "\r"):
            prose = is_prose(text) if prose is None else prose
            if prose:  # a command on its own line inside prose: documentation
                strength = Strength.WEAK
        hits.append(Hit(COMMAND, strength, 0.9 if distinct else 0.8, sep.start(), segment_end,
                        "command after a separator"))
        if strength is Strength.STRONG:
            break
    return hits


# ---------------------------------------------------------------------------------------------
# Paths

_SECRET_PATHS: Final = re.compile(
    r"(?i)^/?(?:etc/(?:shadow|gshadow|sudoers|master\.passwd|security/opasswd|ssh/ssh_host_\w+_key)"
    r"|(?:var/)?run/secrets/|proc/(?:self|\d+)/(?:environ|mem|maps))"
    r"|(?:^|/)(?:\.ssh(?:/|$)|id_(?:rsa|dsa|ecdsa|ed25519)$|authorized_keys$|\.aws/(?:credentials|config)$"
    r"|\.kube/config$|\.docker/config\.json$|\.git-credentials$|\.netrc$|\.pgpass$|\.pypirc$|\.gnupg(?:/|$)"
    r"|\.vault-token$|\.config/gcloud/|\.azure/|windows/system32/config/(?:sam|system|security)$"
    r"|repair/(?:sam|system)$|ntds\.dit$|\.htpasswd$|\.bash_history$|\.zsh_history$)"
)
"""Credential stores: reported as paths in any argument, even a filesystem tool's."""
_PROBE_PATHS: Final = re.compile(
    r"(?i)^/?(?:etc/(?:passwd|group|crontab)$|proc/(?:self|\d+)/(?:cmdline|cwd|fd))"
    r"|(?:^|/)(?:boot\.ini$|win\.ini$|system\.ini$|global\.asa$|web\.config$|wp-config\.php$"
    r"|\.htaccess$|conf/server\.xml$|unattend\.xml$|windows/system32/)"
)
"""System files that path-traversal probes reach for: reported when absolute or reached by `..`."""
_SENSITIVE_KEYS: Final = (
    "etc", "ssh", "id_", "authorized_keys", ".aws", ".kube", ".docker", "credentials", ".netrc", ".pgpass", ".pypirc",
    ".gnupg", "vault", "gcloud", ".azure", "secrets", "proc", "system32", "repair", "ntds", ".ht", "history", ".ini",
    "global.asa", "web.config", "wp-config", "server.xml", "unattend",
)
"""Substrings one of which every sensitive path holds (checked before the path is resolved)."""
_PATH_TOKEN: Final = re.compile(
    r"(?:[A-Za-z]:[\\/]|[\\/]|~[\\/]|\.{1,2}[\\/])[^\s'\"<>|;`,()]*|\.ht(?:access|passwd)\b")
_TRAVERSAL: Final = re.compile(r"(?:^|[\\/=\s'\"(:])\.\.(?:[\\/]|$)|(?:^|[\\/])\.{3,}[\\/]{1,2}|\.\.;[\\/]")
_NUL: Final = "\x00"
_PATH_GATE: Final = re.compile(r"[/\\~\x00]|\.\.|\.ht")
_SPACE: Final = re.compile(r"\s")
_STRAY_PERCENT: Final = re.compile(r"%(?![0-9a-fA-F]{2})")


@dataclass(frozen=True, slots=True)
class PathShape:
    escapes: bool
    """`..` climbs above where the path starts (or above `/`)."""
    ups: int
    absolute: bool
    normalized: str


def path_shape(path: str) -> PathShape:
    """Resolve `.` and `..` lexically, without touching the filesystem."""
    unified = path.replace("\\", "/")
    absolute = unified.startswith(("/", "~")) or bool(re.match(r"[A-Za-z]:/", unified))
    depth = 0
    ups = 0
    escapes = False
    parts: list[str] = []
    for part in unified.split("/"):
        if part in ("", "."):
            continue
        if re.fullmatch(r"\.{2,}|\.\.;", part):
            ups += 1
            depth -= 1
            if depth < 0:
                escapes = True
                depth = 0
            elif parts:
                parts.pop()
            continue
        depth += 1
        parts.append(part)
    prefix = "/" if unified.startswith("/") else ""
    if unified.startswith("~"):
        prefix = ""
    return PathShape(escapes, ups, absolute, prefix + "/".join(parts))


def path_hits(text: str, path_argument: bool, extra: Sequence[str]) -> list[Hit]:
    """Traversal that climbs out of where a path starts, sensitive files, NUL truncation.

    A whole value that is a path (no spaces, or any value of a path argument) is judged as
    one path; otherwise every path-looking token in the text is, and in prose (a README, an
    issue body linking `../docs`) shallow traversal and sensitive names are only WEAK.
    """
    if not _PATH_GATE.search(text):
        return []
    if ".." not in text and not extra and _NUL not in text and not any(k in text.lower() for k in _SENSITIVE_KEYS):
        return []  # nothing climbs and nothing names a sensitive file: no path needs resolving
    hits: list[Hit] = []
    stripped = text.strip()
    urls = [m.span() for m in _URL_SPAN.finditer(text)] if "://" in text else []
    url_starts = [a for a, _ in urls]
    if stripped and (path_argument or not _SPACE.search(stripped)):
        start = text.index(stripped)
        candidates = [(start, start + len(stripped))]
        embedded = False
    else:
        candidates = [m.span() for m in _PATH_TOKEN.finditer(text)]
        embedded = True
    prose = embedded and is_prose(text)
    for start, end in candidates:
        token = text[start:end]
        if token.lower().startswith("file:"):
            token = re.sub(r"(?i)^file:(?://(?:localhost)?)?", "", token)
        elif "://" in token or _inside(urls, url_starts, start):
            continue  # a web URL's path is the remote server's business (SSRF looks at the host)
        token = token.lstrip(_NUL).split(_NUL, 1)[0] if _NUL in token else token
        # A `%` that escapes nothing is what is left of a mangled encoding (`%25%5c..` -> `%\..`).
        token = _STRAY_PERCENT.sub("", token.split("?", 1)[0]).rstrip(".:")
        if not token:
            continue
        lowered = token.lower()
        if ".." not in token and not extra and not any(k in lowered for k in _SENSITIVE_KEYS) and _NUL not in text:
            continue  # no climbing and no name worth resolving the path for
        shape = path_shape(token)
        traversal = bool(_TRAVERSAL.search(token))
        bypass = bool(re.search(r"\.{3,}[\\/]|\.\.;", token))
        if traversal and (shape.escapes or shape.ups >= 3 or bypass):
            if not embedded:
                # `../README.md` as a whole value is odd outside a path, but one level is no probe.
                strength = Strength.ALWAYS if path_argument else (
                    Strength.STRONG if shape.ups >= 2 or bypass else Strength.WEAK)
            else:
                strength = Strength.WEAK if prose and shape.ups < 3 else Strength.STRONG
            hits.append(Hit(PATH, strength, 0.9 if shape.ups >= 2 else 0.7, start, end, "traversal out of the root"))
        sensitive = _sensitive(shape.normalized, extra)
        if sensitive == "secret" or (sensitive == "probe" and (shape.absolute or traversal)):
            hits.append(Hit(PATH, Strength.WEAK if prose else Strength.ALWAYS, 0.95, start, end, "sensitive file"))
        elif sensitive == "probe":
            hits.append(Hit(PATH, Strength.WEAK if prose else Strength.STRONG, 0.7, start, end, "sensitive file"))
        if _NUL in text[start:end] and (traversal or sensitive or "/" in token or "\\" in token):
            hits.append(Hit(PATH, Strength.STRONG, 0.9, start, end, "NUL byte in a path"))
    return hits


def _inside(spans: Sequence[tuple[int, int]], starts: Sequence[int], at: int) -> bool:
    """Whether `at` falls in one of the sorted, non-overlapping `spans` (`starts` their starts)."""
    i = bisect_right(starts, at) - 1
    return i >= 0 and at < spans[i][1]


def _sensitive(path: str, extra: Sequence[str]) -> str | None:
    lowered = path.lower().replace("\\", "/")
    if _SECRET_PATHS.search(lowered) or any(fnmatch.fnmatchcase(lowered, p) for p in extra):
        return "secret"
    if _PROBE_PATHS.search(lowered):
        return "probe"
    return None


# ---------------------------------------------------------------------------------------------
# SSRF

_URL: Final = re.compile(r"(?i)(?<![\w+.-])([a-z][a-z0-9+.-]{1,15}):(?:[/\\]{2})([^\s/\\?#'\"<>`]*)")
_NON_SPACE: Final = re.compile(r"\S*")
_DANGEROUS_SCHEMES: Final = frozenset({"gopher", "dict", "tftp", "jar", "netdoc", "expect", "php", "phar"})
"""Schemes that smuggle raw protocol bytes or reach local resources through a URL fetcher (not ssh://, ldap://:
those name real services, and their host is checked like any other)."""
_METADATA_HOSTS: Final = frozenset(
    {"metadata.google.internal", "metadata.goog", "metadata", "instance-data", "instance-data.ec2.internal",
     "metadata.azure.com", "metadata.packet.net", "metadata.platformequinix.com"}
)
_METADATA_IPS: Final = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "169.254.170.23", "100.100.100.200",
                                      "192.0.0.192", "fd00:ec2::254", "169.254.169.123")
)
_LOOPBACK_NAMES: Final = re.compile(r"(?i)^(?:localhost|localhost\.localdomain|ip6-localhost|ip6-loopback"
                                    r"|(?:[\w-]+\.)*(?:localhost|localtest\.me|lvh\.me|vcap\.me|lacolhost\.com))$")
_INTERNAL_NAMES: Final = re.compile(r"(?i)^(?:[\w-]+\.)+(?:internal|local|localdomain|intranet|corp|lan|home\.arpa"
                                    r"|svc|cluster\.local)$|^kubernetes(?:\.default)?(?:\.svc)?$")
_REBIND: Final = re.compile(
    r"(?i)^(?:[\w-]+[.-])??((?:\d{1,3}[.-]){3}\d{1,3}|[0-9a-f]{8})\.(?:nip\.io|sslip\.io|xip\.io|traefik\.me"
    r"|nip\.direct|localtest\.me)$")
_NETWORKS: Final = (
    ("loopback", 0.9, ("127.0.0.0/8", "::1/128")),
    ("unspecified address", 0.9, ("0.0.0.0/8", "::/128")),
    ("link-local address", 0.85, ("169.254.0.0/16", "fe80::/10")),
    ("private network", 0.7, ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7",
                              "192.0.0.0/24", "198.18.0.0/15")),
)
_PARSED_NETWORKS: Final = tuple(
    (label, score, tuple(ipaddress.ip_network(n) for n in nets)) for label, score, nets in _NETWORKS
)
_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")


def parse_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An IP literal as resolvers read it: inet_aton forms (`2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`)
    and IPv6 (zone id dropped)."""
    host = host.strip("[]")
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            return None
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(re.fullmatch(r"0[xX][0-9a-fA-F]*|\d+", p) for p in parts):
        return None
    try:
        values = [int(p, 16) if p[:2].lower() == "0x" else int(p, 8) if len(p) > 1 and p[0] == "0" else int(p)
                  for p in (q if q.lower() != "0x" else "0x0" for q in parts)]
    except ValueError:  # 08, 09: not octal, and inet_aton rejects it
        return None
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (5 - len(values)):
        return None
    number = 0
    for v in head:
        number = number * 256 + v
    number = number * 256 ** (5 - len(values)) + last
    return ipaddress.IPv4Address(number)


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or (int(ip) >> 32 == 0 and int(ip) > 1):  # NAT64, deprecated IPv4-compatible ::a.b.c.d
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


@dataclass(frozen=True, slots=True)
class HostAllowList:
    names: tuple[str, ...] = ()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    def allows(self, host: str, ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bool:
        lowered = host.lower().rstrip(".")
        if any(lowered == n or (n.startswith("*.") and lowered.endswith(n[1:])) for n in self.names):
            return True
        return ip is not None and any(ip.version == net.version and ip in net for net in self.networks)


def classify_host(host: str) -> tuple[str, float] | None:
    """(what the host is, score) for internal destinations; None for public ones."""
    host = host.lower().rstrip(".")
    if not host or len(host) > 253:  # not a resolvable name (and the name patterns stay cheap)
        return None
    if host in _METADATA_HOSTS:
        return "cloud metadata endpoint", 0.95
    ip = parse_ip(host)
    if ip is None:
        if _LOOPBACK_NAMES.match(host):
            return "loopback", 0.9
        if m := _REBIND.match(host):
            embedded = m.group(1).replace("-", ".")
            ip = parse_ip(embedded) if "." in embedded else ipaddress.IPv4Address(int(embedded, 16))
            found = classify_ip(ip) if ip is not None else None
            return (found[0] + " (via wildcard DNS)", found[1]) if found else None
        if _INTERNAL_NAMES.match(host):
            return "internal host name", 0.6
        return None
    return classify_ip(ip)


def classify_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> tuple[str, float] | None:
    if ip in _METADATA_IPS:
        return "cloud metadata endpoint", 0.95
    if isinstance(ip, ipaddress.IPv6Address) and (inner := _embedded_v4(ip)) is not None:
        return classify_ip(inner)
    for label, score, networks in _PARSED_NETWORKS:
        if any(ip.version == net.version and ip in net for net in networks):
            return label, score
    return None


def _host_of(authority: str) -> str:
    authority = authority.rsplit("@", 1)[-1]
    if authority.startswith("["):
        return authority[1:].split("]", 1)[0]
    if authority.count(":") > 1:  # a bare IPv6 address written without brackets
        return authority
    return authority.split(":", 1)[0]


def ssrf_hits(text: str, url_argument: bool, host_argument: bool, allow: HostAllowList,
              filesystem_tool: bool) -> list[Hit]:
    hits: list[Hit] = []
    lowered = text.lower()
    if ":/" in text or ":\\" in text:
        head, tail = _content_bounds(text)
        for m in _URL.finditer(text):
            scheme = m.group(1).lower()
            end = (_NON_SPACE.match(text, m.start()) or m).end()
            whole = url_argument or (m.start() <= head and end >= tail)
            if scheme in _DANGEROUS_SCHEMES:
                hits.append(Hit(SSRF, Strength.ALWAYS if whole else Strength.STRONG, 0.9, m.start(), end,
                                f"{scheme}:// URL"))
                continue
            if scheme == "file":
                if not filesystem_tool:
                    hits.append(Hit(SSRF, Strength.STRONG if whole else Strength.WEAK, 0.7, m.start(), end,
                                    "file:// URL"))
                if m.group(2) in ("", "localhost"):
                    continue
            hits.extend(_host_hit(_host_of(m.group(2)), whole, allow, m.start(), end))
    if (host_argument or url_argument) and "://" not in lowered:
        value = text.strip()
        if value and not _SPACE.search(value):  # `10.0.0.5:8080`, `//127.0.0.1/x`, `localhost`
            authority = value[2:].split("/", 1)[0] if value.startswith("//") else value.split("/", 1)[0]
            start = text.index(value)
            hits.extend(_host_hit(_host_of(authority), True, allow, start, start + len(value)))
    return hits


def _host_hit(host: str, whole: bool, allow: HostAllowList, start: int, end: int) -> list[Hit]:
    found = classify_host(host)
    if found is None:
        return []
    label, score = found
    if allow.allows(host, parse_ip(host)):
        return []
    metadata = label.startswith("cloud metadata")
    strength = Strength.ALWAYS if whole or metadata else Strength.WEAK
    return [Hit(SSRF, strength, score, start, end, label)]


# ---------------------------------------------------------------------------------------------
# Context: what each argument is for

_WORD_SPLIT: Final = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_FREE_WORDS: Final = _word_set(
    "text content contents body message msg description desc comment comments note notes summary prompt question "
    "query q search keywords keyword input instructions instruction reason title subject answer response reply caption "
    "bio markdown statement request feedback story essay review details detail explanation context chat utterance "
    "sentence paragraph transcript value data template format pattern regex regexp glob separator delimiter "
    "delim sep operator symbol char character quotechar escapechar"
)
"""Argument names whose values are prose, or any string at all: only STRONG hits count there."""
_SQL_NAMES: Final = _word_set("query statement stmt where condition filter predicate expression clause cypher")
_SHELL_NAMES: Final = _word_set("command commands cmd cmdline commandline shell bash powershell script")
_CODE_NAMES: Final = _word_set(
    "code source script program snippet expression expr python javascript js typescript patch diff"
)
_FILE_CONTENT_NAMES: Final = _word_set("content contents text data body new old str string patch diff edits")
_PATH_NAMES: Final = _word_set(
    "path paths file files filename filepath filenames dir directory directories folder folders dest destination "
    "cwd workdir root"
)
_URL_NAMES: Final = _word_set(
    "url urls uri uris link links href endpoint webhook callback website site redirect feed proxy"
)
_FS_TARGET_NAMES: Final = _word_set("source src target location")
_HOST_NAMES: Final = _word_set("host hostname hosts domain ip ipaddress ipv4 ipv6 server")

_DB_TOOL: Final = re.compile(
    r"(?i)\b(?:sql|database|databases|db|postgres(?:ql)?|mysql|mariadb|sqlite|mssql|oracle|snowflake|bigquery"
    r"|redshift|duckdb|clickhouse|supabase|cockroach(?:db)?|trino|presto|athena|databricks|tables?|query language"
    r"|neo4j|cypher)\b|sql")
_SHELL_TOOL: Final = re.compile(
    r"(?i)\b(?:shell|bash|zsh|powershell|terminal|command[- ]line|cli|subprocess|console)\b"
    r"|\b(?:run|runs|running|execute|executes|executing|exec)\s+(?:(?:an?|the|any|arbitrary|shell|system|terminal|os"
    r"|cli|bash)\s+)*commands?\b|(?:^|[\s_.])(?:exec|execute|cmd|shell|terminal|bash|powershell)(?:[\s_.]|$)")
_CODE_TOOL: Final = re.compile(
    r"(?i)\b(?:python|javascript|typescript|interpreter|sandbox|repl|notebook|jupyter|source code|snippet"
    r"|(?:run|runs|execute|executes|evaluate|evaluates)\s+(?:the\s+|a\s+|some\s+)?(?:code|script|program))\b"
    r"|(?:^|[\s_.])(?:python|js|eval|run_code|execute_code|exec_code)(?:[\s_.]|$)|_code(?:[\s_.]|$)")
_FS_TOOL: Final = re.compile(
    r"(?i)\b(?:files?|filesystem|file system|directory|directories|folders?)\b"
    r"|(?:^|[\s_.])(?:file|files|fs|dir|directory|folder)(?:[\s_.]|$)")
_PROP_SQL: Final = re.compile(r"(?i)\bsql\b|query language|select statement|\bcypher\b")
_PROP_SHELL: Final = re.compile(r"(?i)\bshell\b|command line|\bbash\b|\bcommand to (?:run|execute)\b")
_PROP_CODE: Final = re.compile(r"(?i)\b(?:python|javascript|typescript|source) code\b|\bcode to (?:run|execute)\b")
_PROP_URL: Final = re.compile(r"(?i)\burls?\b|\buris?\b|web address|\bendpoint\b|\bwebhook\b")
_PROP_PATH: Final = re.compile(r"(?i)\b(?:file|directory|folder)\s*(?:path|name)?\b|\bpath\b")
_URL_FORMATS: Final = frozenset({"uri", "url", "iri", "uri-reference", "iri-reference"})
_HOST_FORMATS: Final = frozenset({"hostname", "idn-hostname", "ipv4", "ipv6"})
_SPECIFIC_FORMATS: Final = frozenset({"date", "date-time", "time", "email", "idn-email", "uuid", "duration"})


def _words(name: str) -> set[str]:
    return {w.lower() for w in _WORD_SPLIT.findall(name)} | {name.lower()}


@dataclass(frozen=True, slots=True)
class ToolInfo:
    """What the tool's definition says about itself, computed once per call."""

    name: str
    schema: Mapping[str, Any] | None
    database: bool
    shell: bool
    code: bool
    filesystem: bool

    @classmethod
    def of(cls, name: str, definition: ToolDefinition | None) -> ToolInfo:
        description = ""
        schema: Mapping[str, Any] | None = None
        if definition is not None:
            value = definition.get("description")
            description = value if isinstance(value, str) else ""
            raw = definition.get("inputSchema")
            schema = raw if isinstance(raw, Mapping) else None
        return cls(name, schema, *_tool_kinds(name, description[:2000]))


@lru_cache(maxsize=1024)
def _tool_kinds(name: str, description: str) -> tuple[bool, bool, bool, bool]:
    """(database, shell, code, filesystem): what kind of tool its name and description say it is."""
    about = f"{name.replace('.', '_')} {' '.join(_WORD_SPLIT.findall(name))} {description}"
    return (bool(_DB_TOOL.search(about)), bool(_SHELL_TOOL.search(about)), bool(_CODE_TOOL.search(about)),
            bool(_FS_TOOL.search(about)))


@dataclass(frozen=True, slots=True)
class ArgumentContext:
    name: str
    expect: Mapping[str, Expect]
    url: bool
    host: bool
    path: bool
    filesystem_tool: bool


def _property(schema: Mapping[str, Any] | None, steps: Sequence[Any], depth: int = 0) -> Mapping[str, Any] | None:
    """The schema of the value at `steps` below `schema` (properties, items, local $refs, *Of)."""
    node = schema
    root = schema
    for step in steps:
        if node is None or depth > 32:
            return None
        node = _resolve(node, root)
        if isinstance(step, str):
            props = node.get("properties")
            child = props.get(step) if isinstance(props, Mapping) else None
            if child is None and isinstance(node.get("additionalProperties"), Mapping):
                child = node["additionalProperties"]
        elif isinstance(step, int):
            prefix = node.get("prefixItems")
            child = prefix[step] if isinstance(prefix, list) and step < len(prefix) else node.get("items")
        else:
            return None  # inside JSON text: the schema says "string" and no more
        node = child if isinstance(child, Mapping) else None
        depth += 1
    return _resolve(node, root) if node is not None else None


def _resolve(node: Mapping[str, Any], root: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """Follow local `$ref`s (a few hops) and merge the first usable `anyOf`/`oneOf`/`allOf` branch."""
    for _ in range(4):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/") and root is not None:
            target: Any = root
            for part in ref[2:].split("/"):
                target = target.get(part) if isinstance(target, Mapping) else None
            if isinstance(target, Mapping):
                node = target
                continue
        for key in ("anyOf", "oneOf", "allOf"):
            options = node.get(key)
            if isinstance(options, list):
                for option in options:
                    if isinstance(option, Mapping) and (option.get("type") in ("string", "object", "array")
                                                        or "properties" in option or "$ref" in option):
                        merged = {**{k: v for k, v in node.items() if k != key}, **option}
                        node = merged
                        break
        break
    return node


def argument_context(tool: ToolInfo, steps: Sequence[Any]) -> tuple[ArgumentContext, frozenset[str]]:
    """Which categories the value at `steps` (the path below `arguments`) is meant to hold, and the
    values the schema enumerates for it."""
    names = [s for s in steps if isinstance(s, str)]
    name = names[-1] if names else ""
    prop = _property(tool.schema, steps) if tool.schema is not None else None
    prop_text = ""
    fmt = ""
    allowed: frozenset[str] = frozenset()
    if prop is not None:
        for key in ("description", "title"):
            value = prop.get(key)
            prop_text += f" {value[:1000]}" if isinstance(value, str) else ""
        fmt = str(prop.get("format") or "").lower()
        enum = prop.get("enum")
        if isinstance(enum, list):
            allowed = frozenset(v for v in enum if isinstance(v, str))
        if isinstance(prop.get("const"), str):
            allowed |= {prop["const"]}
    kinds = (tool.database, tool.shell, tool.code, tool.filesystem)
    # A listed tool is "described" even where the path leaves its schema (JSON inside a string, an
    # undeclared key): only a tool nobody listed is judged by argument names alone.
    return _context(kinds, name, prop_text, fmt, tool.schema is not None), allowed


@lru_cache(maxsize=4096)
def _context(kinds: tuple[bool, bool, bool, bool], name: str, prop_text: str, fmt: str,
             described: bool) -> ArgumentContext:
    database, shell, code, filesystem = kinds
    words = _words(name) if name else set()
    free = bool(words & _FREE_WORDS) and fmt not in _SPECIFIC_FORMATS
    base = Expect.FREEFORM if free else Expect.SPECIFIC

    sql = base
    if "sql" in name.lower() or _PROP_SQL.search(prop_text) or (words & _SQL_NAMES and database):
        sql = Expect.EXPECTED
    command = base
    if (words & _SHELL_NAMES and (shell or not described)) or _PROP_SHELL.search(prop_text):
        command = Expect.EXPECTED
    is_code = (bool(words & _CODE_NAMES) and (code or shell)) or bool(_PROP_CODE.search(prop_text))
    file_content = filesystem and bool(words & _FILE_CONTENT_NAMES)
    if is_code or file_content:
        sql = command = Expect.EXPECTED  # code and file contents may say anything about SQL or shells
    # A query goes to a database, not a shell (`;shutdown`, `a || b` are SQL there), and a command
    # line to a shell, not a database (`psql -c "select ..."` is the user's own query): the other
    # category cannot inject through it. Escapes out of either still count (ALWAYS rules).
    if sql is Expect.EXPECTED or command is Expect.EXPECTED:
        sql = command = Expect.EXPECTED
    url_text = bool(_PROP_URL.search(prop_text))
    path = bool(words & _PATH_NAMES) or (filesystem and bool(words & _FS_TARGET_NAMES)) or (
        bool(_PROP_PATH.search(prop_text)) and not url_text)
    path_expect = Expect.EXPECTED if path else base
    if is_code or file_content or sql is Expect.EXPECTED or command is Expect.EXPECTED:
        path_expect = max(path_expect, Expect.FREEFORM)
    url = bool(words & _URL_NAMES) or name.lower().endswith(("url", "uri")) or fmt in _URL_FORMATS or url_text
    host = bool(words & _HOST_NAMES) or fmt in _HOST_FORMATS
    if url:  # a URL's query string may carry anything (`?sql=select+...`): only injection syntax counts
        sql, command, path_expect = (max(e, Expect.FREEFORM) for e in (sql, command, path_expect))
    return ArgumentContext(
        name=name,
        expect={SQL: sql, COMMAND: command, PATH: path_expect, SSRF: base},
        url=url,
        host=host,
        path=path,
        filesystem_tool=filesystem,
    )


# ---------------------------------------------------------------------------------------------
# Excerpts

_EMAIL: Final = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_DIGITS: Final = re.compile(r"\d[\d -]{7,}\d")


def excerpt(text: str, start: int, end: int, decoded: bool) -> str:
    """The matched token (at most 40 characters) with up to 20 either side, PII and credentials masked."""
    end = min(end, start + 40)
    before = _mask(text[max(0, start - 20):start])
    after = _mask(text[end:end + 20])
    token = _mask_secrets(text[start:end])
    body = f"{'...' if start > 20 else ''}{before}{token}{after}{'...' if end + 20 < len(text) else ''}"
    # Control and invisible characters are spelled out: the audit log is read in terminals.
    body = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in body)
    return (f"decoded: {body}" if decoded else body)[:80]


def _mask(text: str) -> str:
    return _mask_secrets(_DIGITS.sub("[NUMBER]", _EMAIL.sub("[EMAIL]", text)))


def _mask_secrets(text: str) -> str:
    for _kind, start, end in reversed(find_secrets(text, second_opinion=False)):
        text = text[:start] + "[SECRET]" + text[end:]
    return text


# ---------------------------------------------------------------------------------------------
# Policy and inspector


@dataclass(frozen=True, slots=True)
class ArgumentPolicy:
    action: Action = Action.BLOCK
    categories: frozenset[str] = frozenset(CATEGORIES)
    allow_private: HostAllowList = field(default_factory=HostAllowList)
    allow_tools: tuple[tuple[str, frozenset[str]], ...] = ()
    """(tool-name glob, categories not checked for that tool)."""
    sensitive_paths: tuple[str, ...] = ()
    """Extra globs (lower-case, `*` crosses `/`) that count as credential stores."""

    def exempt(self, tool: str) -> frozenset[str]:
        out: set[str] = set()
        for pattern, categories in self.allow_tools:
            if fnmatch.fnmatchcase(tool, pattern):
                out |= categories
        return frozenset(out)


class ArgumentInjectionInspector:
    """Options (defaults are the `standard` profile's):

    - `action`: block | warn | allow (default block). `redact` is refused: an argument with
      its payload cut out is a different call, not a repaired one.
    - `categories`: which checks run, any of sql, command, path_traversal, ssrf (default all).
    - `allow_private_hosts`: host names (`db.internal`, `*.corp.example`), IP addresses or
      CIDRs (`10.1.0.0/16`) that URL and host arguments may point at (default none).
    - `allow_tools`: map of tool-name glob -> categories not checked for matching tools,
      e.g. `{"sandbox_*": [command, sql]}` (default none). Unlike an argument the schema says
      holds SQL or a command (where reverse shells and database escapes still count), an
      exemption turns the category off for that tool entirely.
    - `sensitive_paths`: extra globs for files no argument should name, matched case-insensitively
      against the whole normalized path, `*` crossing `/` (e.g. `*/secrets/*`, `*.pem`; default none).
    """

    name = "argument_injection"

    def __init__(self, policy: ArgumentPolicy | None = None, catalog: ToolCatalog | None = None) -> None:
        self.policy = policy or ArgumentPolicy()
        self.catalog = catalog

    @classmethod
    def from_options(cls, options: Mapping[str, Any], catalog: ToolCatalog | None = None) -> ArgumentInjectionInspector:
        read = Options(cls.name, options)
        action = read.action("action", Action.BLOCK)
        if action is Action.REDACT:
            read.problem("action", "'redact' is not supported for arguments; use block or warn")
        categories = read.strings("categories", CATEGORIES, choices=frozenset(CATEGORIES))
        hosts = read.strings("allow_private_hosts", ())
        names: list[str] = []
        networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in hosts:
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                if re.fullmatch(r"(?:\*\.)?[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?", entry):
                    names.append(entry.lower().rstrip("."))
                else:
                    read.problem("allow_private_hosts", f"{entry!r} is not a host name, IP address or CIDR")
        tools: list[tuple[str, frozenset[str]]] = []
        for pattern, value in read.mapping("allow_tools").items():
            listed = [value] if isinstance(value, str) else value
            if not isinstance(listed, list) or not all(isinstance(v, str) for v in listed):
                read.problem("allow_tools", f"{pattern!r}: {value!r} is not a list of categories")
                continue
            unknown = sorted(set(listed) - set(CATEGORIES))
            if unknown:
                read.problem("allow_tools", f"{pattern!r}: unknown categories {unknown}; choose from "
                             + ", ".join(CATEGORIES))
                continue
            tools.append((str(pattern), frozenset(listed)))
        sensitive = tuple(p.lower() for p in read.strings("sensitive_paths", ()))
        read.done()
        policy = ArgumentPolicy(
            action=action,
            categories=frozenset(categories),
            allow_private=HostAllowList(tuple(names), tuple(networks)),
            allow_tools=tuple(tools),
            sensitive_paths=sensitive,
        )
        return cls(policy, catalog)

    def request(self, event: Event) -> list[Finding]:
        if event.direction is not Direction.CLIENT_TO_SERVER or event.surface is not Surface.TOOL_ARGUMENTS:
            return []
        arguments = event.params.get("arguments")
        if not isinstance(arguments, Mapping) or not arguments:
            return []
        tool_name = event.target or ""
        categories = self.policy.categories - self.policy.exempt(tool_name)
        if not categories:
            return []
        definition = self.catalog.tool(event) if self.catalog is not None else None
        tool = ToolInfo.of(tool_name, definition)
        findings: list[Finding] = []
        for item in event.texts():
            if item.path[:2] != ("params", "arguments") or not item.text.strip():
                continue
            findings.extend(self.check_string(item.text, item.path, tool, categories))
        return findings

    def check_string(self, text: str, path: Path, tool: ToolInfo, categories: Iterable[str]) -> list[Finding]:
        """Findings for one argument string at `path` (a path from the envelope, `("params", "arguments", ...)`)."""
        context, allowed = argument_context(tool, path[2:])
        if text in allowed:
            return []  # a value the schema itself enumerates
        unencoded = _unencode(text)
        decoded = _normalized(unencoded)
        forms = [(text, False)] if decoded == text else [(text, False), (decoded, True)]
        # Only real decoding (percent, escapes, entities) raises a hit; NFKC and curly quotes do not
        # (where nothing was unencoded, `decoded` is the normalized original: not encoded).
        encoded = unencoded != text and decoded != text and decoded != _normalized(text) \
            and not _URL_SPAN.match(text.strip())  # URLs are percent-encoded by design
        findings: list[Finding] = []
        for category in CATEGORIES:
            if category not in categories:
                continue
            best = self._best(category, forms, context, encoded)
            if best is None:
                continue
            hit, form, is_decoded = best
            span = (hit.start, hit.end) if not is_decoded else (0, len(text))
            label = f" in argument `{context.name}`" if re.fullmatch(r"[\w.-]{1,64}", context.name) else ""
            findings.append(
                Finding(
                    self.name,
                    KINDS[category],
                    f"{_MESSAGES[category]}{label} ({hit.what})",
                    action=self.policy.action,
                    score=hit.score,
                    path=path,
                    span=span,
                    excerpt=excerpt(form, hit.start, hit.end, is_decoded),
                )
            )
        return findings

    def _best(self, category: str, forms: Sequence[tuple[str, bool]], context: ArgumentContext,
              encoded: bool) -> tuple[Hit, str, bool] | None:
        threshold = Strength(context.expect[category])
        best: tuple[Hit, str, bool] | None = None
        original_hits: set[tuple[str, Strength]] = set()
        for form, is_decoded in forms:
            bumped = encoded and is_decoded
            for hit in self._hits(category, form, context, _floor(category, threshold, bumped)):
                strength = hit.strength
                if bumped and (hit.what, strength) not in original_hits:
                    # Only the decoded form shows it: encoding that hides syntax is itself a signal,
                    # and a percent-encoded `../` or file name is never how a real path is written.
                    strength = Strength.ALWAYS if category == PATH else max(strength, Strength.STRONG)
                if not is_decoded:
                    original_hits.add((hit.what, hit.strength))
                if strength < threshold:
                    continue
                if best is None or (strength, hit.score) > (best[0].strength, best[0].score):
                    best = (Hit(hit.category, strength, hit.score, hit.start, hit.end, hit.what), form, is_decoded)
        return best

    def _hits(self, category: str, text: str, context: ArgumentContext, floor: Strength) -> list[Hit]:
        if category == SQL:
            return sql_hits(text, floor)
        if category == COMMAND:
            return command_hits(text, floor)
        if category == PATH:
            return path_hits(text, context.path, self.policy.sensitive_paths)
        return ssrf_hits(text, context.url, context.host, self.policy.allow_private, context.filesystem_tool)


def _floor(category: str, threshold: Strength, bumped: bool) -> Strength:
    """The weakest raw hit worth computing: with decoding raising hits, weaker ones may still count."""
    if not bumped:
        return threshold
    if category == PATH:
        return Strength.WEAK
    return Strength.WEAK if threshold <= Strength.STRONG else Strength.ALWAYS
