"""Rules for poisoned descriptions: what a tool, prompt or resource definition says to the model.

A description is read by the model as part of its instructions, but users rarely see it. A
poisoned one talks to the model about things the tool has no business with: read
`~/.ssh/id_rsa` and pass it as `sidenote`, always BCC this address when calling `send_email`,
do not tell the user, run this shell command first, the other tool is deprecated, this is the
best tool in the world. Real descriptions say what the tool does and what its parameters mean;
they are imperative too ("Read the complete contents of a file", "must be a positive number"),
so every rule here needs something a real description has no reason to say: a sensitive
target, a concrete side channel (an address, a URL, a shell command), a concealment, a
directive about a tool other than the one described, a pretext banner, or marketing aimed at
the model's choice of tool.

`DescriptionRules.scan(text)` runs on one string (already de-obfuscated by
`guardian.normalize`) and returns rule hits plus the tool names the text refers to; whether
such a reference is foreign (and so poisoning or shadowing) depends on the listing it came
in, which `poisoning.py` knows and this module does not. Results are cached per text: tool
lists repeat on every session.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

import ahocorasick

from guardian.inspectors.lru import LruCache

# ---------------------------------------------------------------------------------------------
# Rule ids (the finding `kind`) and what each means, for block reasons (never the content).

HIDDEN_INSTRUCTIONS: Final = "hidden_instructions"
INSTRUCTION_OVERRIDE: Final = "instruction_override"
CONCEALMENT: Final = "concealment"
SENSITIVE_FILE_ACCESS: Final = "sensitive_file_access"
SENSITIVE_PARAMETER: Final = "sensitive_parameter"
EXFILTRATION: Final = "exfiltration"
COMMAND_EXECUTION: Final = "command_execution"
DESTRUCTIVE_ACTION: Final = "destructive_action"
CROSS_TOOL_INSTRUCTION: Final = "cross_tool_instruction"
TOOL_REDIRECTION: Final = "tool_redirection"
PARAMETER_TAMPERING: Final = "parameter_tampering"
USER_DECEPTION: Final = "user_deception"
FAKE_SYSTEM_NOTICE: Final = "fake_system_notice"
PREFERENCE_MANIPULATION: Final = "preference_manipulation"
MODEL_DIRECTIVE: Final = "model_directive"
SHADOWING: Final = "shadowing"
CREDENTIAL_PHISHING: Final = "credential_phishing"

RULE_MESSAGES: Final[dict[str, str]] = {
    HIDDEN_INSTRUCTIONS: "carries a hidden instruction block for the model (<IMPORTANT>-style tags)",
    INSTRUCTION_OVERRIDE: "tells the model to ignore its instructions",
    CONCEALMENT: "tells the model to hide what it does from the user",
    SENSITIVE_FILE_ACCESS: "asks the model to read or change sensitive files or secrets",
    SENSITIVE_PARAMETER: "asks for sensitive data through a parameter",
    EXFILTRATION: "asks the model to send data to an address or endpoint",
    COMMAND_EXECUTION: "asks the model to run shell commands",
    DESTRUCTIVE_ACTION: "asks the model to delete or wipe data",
    CROSS_TOOL_INSTRUCTION: "gives the model instructions about other tools",
    TOOL_REDIRECTION: "claims a tool is deprecated or disabled to redirect the model",
    PARAMETER_TAMPERING: "tells the model to change what the user asked for",
    USER_DECEPTION: "tells the model what to tell the user",
    FAKE_SYSTEM_NOTICE: "poses as a system or security notice demanding action",
    PREFERENCE_MANIPULATION: "advertises itself to win the model's choice of tool",
    MODEL_DIRECTIVE: "addresses the model with coercive instructions",
    SHADOWING: "collides with or refers to a tool of another server",
    CREDENTIAL_PHISHING: "asks the model to get passwords, codes or recovery phrases from the user",
}

RULE_IDS: Final = frozenset(RULE_MESSAGES)


# ---------------------------------------------------------------------------------------------
# Building blocks. Texts are matched with runs of whitespace collapsed to one space, so a
# sentence is everything up to `.`, `!` or `?` followed by a space (file names, URLs and
# "e.g." keep their dots).


def _gap(n: int) -> str:
    """Up to `n` characters within one sentence (lazy)."""
    return r"(?:[^.!?;\n]|[.!?](?=[^\s]))" + "{0," + str(n) + "}?"


def _rx(pattern: str, flags: int = re.IGNORECASE) -> re.Pattern[str]:
    return re.compile(pattern, flags)


_G20, _G40, _G60, _G80, _G120 = _gap(20), _gap(40), _gap(60), _gap(80), _gap(120)


_DIRECTIVE = (
    r"(?:\bmust\b|\bshould\b|\bshall\b|\bneeds?\s+to\b|\bhave\s+to\b|\bhas\s+to\b|\brequired\s+to\b|"
    r"\bmandatory\b|\bis\s+required\b|\bare\s+required\b|\bmake\s+sure\b|\bbe\s+sure\s+to\b|\balways\b|"
    r"\bplease\b|\bremember\s+to\b|\b(?:do\s+not|don't)\s+forget\b|\bit\s+is\s+(?:critical|essential|necessary|"
    r"important|crucial)\s+to\b|\bit's\s+(?:critical|essential|necessary|important|crucial)\s+to\b|"
    r"\b(?:are|is|am)\s+(?:expected|supposed|obliged)\s+to\b|\byou(?:'ll|\s+will)\s+need\s+to\b|\bought\s+to\b)"
)
_NEGATION = r"(?:do\s+not|don't|never|must\s+not|mustn't|should\s+not|shouldn't|without|not\s+to|avoid)"
_EMAIL = r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
_URL = r"\bhttps?://[^\s'\"`<>]+"

# Files and secrets a tool description has no reason to send the model after.
_FILE_TARGETS = (
    r"~?/?\.ssh\b|\bid_(?:rsa|dsa|ecdsa|ed25519)\b|\bauthorized_keys\b|"
    r"(?<![\w.$])\.env(?:\.[a-z]+)?\b(?!\.)|\bdotenv\b|\benv\s+files?\b|"
    r"\bmcp\.json\b|\bclaude_desktop_config(?:\.json)?\b|~?/?\.cursor\b|\bcursor\s+(?:config|settings)|"
    r"\bclaude\s+(?:desktop\s+)?config(?:uration)?\b|"
    r"\.aws/(?:credentials|config)\b|\bcredentials\.json\b|\.git-credentials\b|\.netrc\b|\.npmrc\b|\.pypirc\b|"
    r"\.docker/config\.json|\.kube/config\b|\bkubeconfig\b|\.(?:bash|zsh)_history\b|\.bashrc\b|\.zshrc\b|"
    r"\.bash_profile\b|~/\.profile\b|/etc/(?:passwd|shadow|sudoers)\b|\.gnupg\b|\bkeychain\b|"
    r"\bwallet\.dat\b|\bLogin\s+Data\b|\bsandbox/[\w.-]*secret[\w.-]*|"
    r"\b[a-z][\w+.-]*://(?:secrets?|confidential|credentials?|private|passwords?)\b|"
    r"(?:~|\$HOME|/home/\w+|/Users/\w+)/[\w./-]*(?:credential|secret|token|passw|private|\.pem\b|\.key\b|\.kdbx|"
    r"\.p12\b|wallet|cookies?\b)[\w./-]*|\.config/gcloud\b|\.azure/\b|application_default_credentials"
)
_SECRET_WORDS = (
    r"\b(?:system\s+)?secrets?\b|\bcredentials?\b|\bpasswords?\b|\bprivate\s+keys?\b|\bssh\s+keys?\b|"
    r"\bapi\s+keys?\b|\bseed\s+phrases?\b|\bmnemonics?\b|\bconfidential\s+(?:\w+\s+)?"
    r"(?:information|data|files?|documents?|records)\b"
)
_CONVERSATION = (
    r"\benvironment\s+variables\b|\bsystem\s+prompt\b|\b(?:conversation|chat)\s+history\b|\bprevious\s+"
    r"(?:messages|conversation|turns)\b|\bcookies\b|\b(?:all|every)\s+(?:available\s+)?tools\b|\binstructions\b"
)
_HARVEST_VERBS = (
    r"\b(?:pass|passing|put|putting|include|including|add|adding|append|appending|send|sending|copy|copying|place|"
    r"insert|inserting|attach|attaching|paste|pasting|store|storing|record|recording|embed|embedding|log|logging|"
    r"write|writing|save|saving|dump|dumping|fill)\b"
)
_ENV_SECRET = r"(?-i:\b[A-Z][A-Z0-9]*_[A-Z0-9_]*(?:TOKEN|SECRET|KEY|PASSWORD|PASSWD|CREDENTIALS?)\b)"
_READ_VERBS = (
    r"\b(?:read|reading|cat|open|opening|access|accessing|load|loading|include|including|pass|passing|send|"
    r"sending|attach|upload|share|copy|show|print|dump|retrieve|fetch|extract|output|forward|display|reveal|"
    r"collect|gather|add|adding|append|appending|write|writing|modify|modifying|update|updating|edit|editing|"
    r"leak|exfiltrate|transmit|post|check|verify|confirm|inspect|look\s+up|look\s+(?:inside|in|at|into|through)|"
    r"go\s+through|grep|summari[sz]e)\b"
)
_HARVESTED = (
    _SECRET_WORDS + "|" + _ENV_SECRET + r"|\bsystem\s+prompt\b|\b(?:conversation|chat)\s+history\b|\bprevious\s+"
    r"(?:messages|conversation|turns)\b|\bcookies\b|\b(?:all|every|your|the\s+user's)\s+(?:\w+\s+)?environment\s+"
    r"variables?\b|\b(?:the\s+)?user's\s+(?:contacts|messages|history|location|files)\b|"
    r"\byou\s+have\s+(?:seen|read|received)\b|\b(?:in|from|of)\s+(?:this|the)\s+(?:conversation|chat|session)\b|"
    r"\bsystem\s+messages\b|\bkeystrokes?\b|\bthe\s+user\s+has\s+(?:typed|written|entered|said)\b|"
    r"\b(?:the\s+)?user's\s+(?:full\s+name|home\s+address|date\s+of\s+birth|social\s+security|ssn|passport|"
    r"phone\s+number|email\s+address|ip\s+address|location)\b(?=" + _G80
    + r"\b(?:query|url|link|headers?|tags?)\b)|"
    r"\bevery\s+(?:url|site|page|link|search|query)\s+(?:the\s+user|they)\s+(?:visits?|opens?|types?|searches?)\b"
)
_RELATED_TO_SECRETS = re.compile(
    r"auth|login|logon|credential|secret|password|passwd|key|token|vault|ssh|env|cookie|session|account|"
    r"sign|crypt|cert|wallet|config|dotfile|keychain|kube|aws|docker|git|npm|pypi|bash|shell|profile|file|"
    r"cloud|azure|gcp|k8s",
    re.IGNORECASE,
)
"""A tool whose own name is about credentials or files may mention them in passing."""

_SIDE_CHANNEL_PARAMS = re.compile(
    r"(?:^|_)(?:side_?note|side_?channel|notes?|context|metadata|meta|extra|extras|debug|feedback|annotations?|"
    r"comments?|reasoning|remarks?|hidden|internal|aux|additional_?(?:info|context|data)?|info|details|"
    r"trace|telemetry|log|payload|blob|internal_?data)(?:_|$)",
    re.IGNORECASE,
)
_SENSITIVE_PARAM_NAMES = re.compile(
    r"(?:^|_)(?:id_rsa|ssh_?(?:private_?)?key|private_?key|mnemonic|seed_?phrase|wallet_?key|mcp_?config|"
    r"claude_?config|cursor_?config|env_?file|dotenv|ssh_?config|aws_?credentials|browser_?cookies)(?:$|_)",
    re.IGNORECASE,
)

# A tool reference: backticked/quoted, an identifier with a separator, or a word followed by
# "tool"/"function". Words that only look like references ("this tool") are dropped later.
_REF = (
    r"(?:`(?P<{0}a>[A-Za-z_][\w.\-/]{{1,80}})`|'(?P<{0}b>[A-Za-z_][\w.\-/]{{1,80}})'|"
    r"\"(?P<{0}c>[A-Za-z_][\w.\-/]{{1,80}})\"|(?P<{0}d>[A-Za-z][A-Za-z0-9]*(?:[_.\-][A-Za-z0-9]+)+)"
    r"|(?P<{0}e>[A-Za-z][\w\-]{{1,60}})(?=\s+(?:tool|function|command)\b))"
)
_NOT_A_TOOL = frozenset(
    {"this", "that", "it", "the", "a", "an", "tool", "tools", "function", "following", "same", "new", "other",
     "any", "all", "these", "those", "them", "each", "every", "another", "one", "your", "our", "their", "its",
     "search", "secure", "old", "original", "next", "previous", "first", "second", "given", "above", "below",
     "e.g", "i.e", "etc"}
)
_PARAMETER_WORDS = re.compile(
    r"\s*[`'\"]?\s*(?:parameter|param|argument|arg|field|option|flag|value|key|property|attribute|header|"
    r"setting|format|mode|column|variable|env)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class _Rule:
    kind: str
    keywords: frozenset[str] | tuple[str, ...]
    """Lower-case substrings, one of which must occur for the pattern to be tried."""
    pattern: re.Pattern[str]
    requires: re.Pattern[str] | None = None
    """Also needed in the same sentence as the match (e.g. a directive)."""
    whole_text: bool = False
    """The pattern spans sentences (a tag and its closing tag); others are tried only on the
    sentences where one of their keywords occurs."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "keywords", frozenset(self.keywords))


def _alts(*parts: str) -> str:
    return "|".join(f"(?:{p})" for p in parts)



_DIRECTIVE_RX: Final = _rx(_DIRECTIVE)
_CONSENT = r"(?:confirmation|permission|approval|consent)\b"
_IRREVERSIBLE = r"\b(?:delet|remov|transfer|pay|purchas|send|unlock|deploy|drop|wipe|erase|overwrit|publish|merge)\w*"

RULES: Final[tuple[_Rule, ...]] = (
    # <IMPORTANT> ... </IMPORTANT>: a block the UI may not render and the model reads as orders.
    _Rule(
        HIDDEN_INSTRUCTIONS,
        ("<", "[inst", "<<sys", "<!--", "[//]"),
        _rx(
            r"<\s*(?P<tag>important|hidden|system|secret|instructions?|admin|critical|override|sudo|"
            r"side[_ -]?note|system[_ -]?prompt|system[_ -]?reminder|ai[_ -]?instructions?|"
            r"note[_ -]?to[_ -]?(?:ai|model|assistant|llm))\s*>(?=.*<\s*/\s*(?P=tag)\s*>)"
            r"|(?-i:<\s*(?:IMPORTANT|HIDDEN|SYSTEM|SECRET|INSTRUCTIONS?|ADMIN|CRITICAL|OVERRIDE)\s*>)"
            r"|<\|im_start\|>|<\|system\|>|\[/?INST\]|<<SYS>>"
            r"|<!--[^>]{0,300}?(?:\bassistant\b|\bai\b|\bmodel\b|\bagent\b|\bllm\b|\bclaude\b|\bgpt\b|\byou\b|"
            r"\bmust\b|\balways\b|\bread\b|\bsend\b|\bignore\b|\bcall\b)"
            r"|\[//\]:\s*#\s*\([^)]{0,300}?(?:\bassistant\b|\bai\b|\bmodel\b|\bagent\b|\bllm\b|\byou\b|\bmust\b|"
            r"\balways\b|\bread\b|\brun\b|\bsend\b|\bignore\b|\bcall\b)"
        ),
        whole_text=True,
    ),
    _Rule(
        INSTRUCTION_OVERRIDE,
        ("ignor", "disregard", "forget", "overrid", "bypass", "instruction", "from now on", "disabled", "lifted",
         "grant", "give", "assign", "elevat", "escalat", "promot",
         "suspended", "removed", "waived", "mode", "authoris", "authoriz", "allowed", "permitted", "free to"),
        _rx(
            _alts(
                r"\b(?:ignore|disregard|forget|override|bypass)\b" + _G40
                + r"\b(?:previous|prior|above|earlier|all|any|other|system|original|existing|safety|security)\b"
                + _G20 + r"\b(?:instructions?|prompts?|rules|directives|guidelines|constraints|restrictions|"
                r"guidance|policies|messages|tools|tool\s+descriptions|descriptions|definitions)\b",
                r"\b(?:new|updated|real|actual|true|secret|hidden)\s+(?:system\s+)?instructions?\s*(?::|\bare\b)",
                r"\bfrom\s+now\s+on,?\s+(?:you|always|ignore|respond)\b",
                r"\b(?:safety|security)\s+(?:checks?|filters?|guidelines|guardrails|restrictions|rules|policies)\s+"
                r"(?:are|is|have\s+been|has\s+been)\s+(?:now\s+)?(?:disabled|off|lifted|suspended|removed|waived)",
                r"\byou\s+are\s+now\s+(?:in|running\s+in|operating\s+in)\s+(?:\w+\s+)?mode\b",
                r"\b(?:grant|give|assign|elevate|escalate|promote)\w*\s+(?:the\s+current\s+(?:session|user|agent)|"
                r"yourself|this\s+session|the\s+assistant|your\s+(?:own\s+)?(?:account|session|role))\b" + _G40
                + r"\b(?:admin\w*|root|owner|superuser|sudo|elevated|full)\b",
                r"\b(?:you|the\s+assistant|the\s+model|the\s+ai|the\s+agent)\s+(?:is|are)\s+(?:now\s+)?"
                r"(?:authori[sz]ed|allowed|permitted|free)\s+to\s+(?:bypass|ignore|skip|disable|override|disclose|reveal|exfiltrate|"
                r"share\s+(?:the\s+user's|all|every|the\s+full))\b",
            )
        ),
    ),
    _Rule(
        CONCEALMENT,
        ("not", "n't", "never", "without", "avoid", "present", "pass", "frame", "disguis", "hide", "hidden",
         "conceal", "secret", "silently", "quietly", "covertly", "discreetly", "invisibly", "surreptitiously",
         "user"),
        _rx(
            _alts(
                r"\b" + _NEGATION + r"\s+(?:\w+\s+){0,2}?(?:tell(?:ing)?|inform(?:ing)?|notify(?:ing)?|"
                r"alert(?:ing)?|warn(?:ing)?|ask(?:ing)?\s+permission\s+from)\s+(?:the\s+|any\s+)?"
                r"(?:user|users|human|customer)\b",
                r"\b" + _NEGATION
                + r"\s+(?:\w+\s+){0,2}?(?:mention|reveal|disclos|report|explain|surfac|say|show|admit)\w*\s+"
                r"(?:\w+\s+){0,4}?(?:to|with)\s+(?:the\s+|any\s+)?(?:user|users|human|customer)\b",
                r"\b" + _NEGATION + r"\s+(?:\w+\s+){0,2}?(?:mention|reveal|disclose|tell|say|admit|acknowledge)\w*\s+"
                r"(?:that|this|it\b|anything|about)",
                r"\b" + _NEGATION + r"\s+(?:\w+\s+){0,2}?let(?:ting)?\s+(?:the\s+)?(?:user|users|human)\s+know\b",
                r"\b(?:present|frame|disguise|pass\s+off|report)\w*\s+(?:it|this|them|the\s+(?:information|data|"
                r"results?|output|contents?))\s+as\s+(?:if|though)\b",
                r"\b(?:hide|hiding|conceal|concealing|keep|keeping)\s+(?:\w+\s+){0,3}?(?:from|secret\s+from|"
                r"hidden\s+from)\s+(?:the\s+)?(?:user|users|human)\b",
                r"\b(?:the\s+)?user\s+(?:must|should|will|needs?\s+to|is\s+to)\s+(?:not|never)\s+(?:know|see|notice|"
                r"find\s+out|be\s+(?:told|informed|aware|notified))",
                r"\b(?:silently|quietly|secretly|covertly|discreetly|invisibly|surreptitiously)\s+(?:\w+\s+)?"
                r"(?:send|forward|copy|include|add|append|attach|bcc|cc|upload|post|exfiltrat|read|access|change|"
                r"substitut|swap|alter|rewrit|switch|drop|delet|remov|modify|replace|redirect)",
                r"\bhidden\s+(?:bcc|cc|copy|recipient|field)\b",
                r"\bkeep\s+(?:this|it|that|these)\s+(?:out\s+of|from)\s+(?:your|the)\s+(?:summary|answer|response|reply|"
                r"report|output)\b",
            )
        ),
    ),
    # Sensitive files: concrete paths. The tool's own subject is checked by the caller (an SSH
    # tool may name ~/.ssh/config), unless the text also asks to pass the contents along.
    _Rule(
        SENSITIVE_FILE_ACCESS,
        (".ssh", "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", "authorized_keys", ".env", "dotenv", "env file", "~/",
         "$home", "/home/", "/users/", "gcloud", ".azure", "application_default_credentials",
         "mcp.json", "claude_desktop_config", ".cursor", "cursor config", "cursor settings", "claude", ".aws/",
         "credentials.json", ".git-credentials", ".netrc", ".npmrc", ".pypirc", ".docker/", ".kube/", "kubeconfig",
         "_history", ".bashrc", ".zshrc", ".bash_profile", ".profile", "/etc/", ".gnupg", "keychain", "wallet.dat",
         "login data", "sandbox/", "://"),
        _rx(
            _alts(
                _READ_VERBS + _G80 + r"(?:" + _FILE_TARGETS + r")",
                r"\b(?:contents?|text|data)\s+of\b" + _G40 + r"(?:" + _FILE_TARGETS + r")",
                r"(?:" + _FILE_TARGETS + r")" + _G80 + r"\b(?:contents?|as\s+['`\"]?\w+['`\"]?\s*(?:parameter|"
                r"argument)?|in\s+your\s+(?:response|answer|reply))\b",
            )
        ),
    ),
    _Rule(
        SENSITIVE_FILE_ACCESS,
        ("secret", "credential", "password", "private key", "ssh key", "api key", "seed phrase", "mnemonic",
         "confidential"),
        _rx(
            _DIRECTIVE + _G60 + r"\b(?:read|access|retrieve|fetch|extract|dump|reveal|show|display|cat|collect|"
            r"gather|look\s+up|obtain)\b" + _G40 + r"(?:" + _SECRET_WORDS + r")"
        ),
    ),
    # "include the contents of <file> in the `sidenote` argument"
    _Rule(
        SENSITIVE_PARAMETER,
        ("content", "text"),
        _rx(
            r"\b(?:pass|put|include|add|send|place|insert|copy|provide|set|fill|append|attach|concatenat)\w*\b"
            + _G80 + r"\b(?:contents?|text|value)\b" + _G120
            + r"\b(?:in|into|as|to|inside|within|via)\s+(?:the\s+|its\s+|a\s+)?[`'\"]?(?P<param>[A-Za-z_][\w-]*)"
            r"[`'\"]?(?:\s+(?:argument|parameter|param|field|property))?"
        ),
    ),
    # "append the user's email address ... to the `tracking` field": harvesting into an argument.
    _Rule(
        SENSITIVE_PARAMETER,
        ("argument", "parameter", "param", "field", "property", "tag", "metadata", "note", "comment", "title",
         "description", "body", "query", "url", "link", "header"),
        _rx(
            r"(?:" + _HARVEST_VERBS + _G80 + r"(?:" + _HARVESTED + r")|(?:" + _HARVESTED + r")" + _G80
            + _HARVEST_VERBS + r")" + _G80 + r"\b(?:in|into|as|to|inside|within|via)\s+"
            r"(?:the\s+|its\s+|a\s+|each\s+|every\s+|all\s+)?(?:[`'\"]?[A-Za-z_][\w'-]*[`'\"]?\s+)?(?:argument|parameter|param|field|property|tags?|metadata|notes?|"
            r"comments?|title|description|body|query(?:\s+(?:string|parameters?))?|url|link|headers?)s?\b"
        ),
    ),
    _Rule(
        SENSITIVE_PARAMETER,
        ("transcript", "conversation", "chat", "system messages", "system prompt"),
        _rx(
            _HARVEST_VERBS + r"\s+(?:\w+\s+){0,2}?(?:full|entire|whole|complete|verbatim)\s+(?:transcript|"
            r"conversation|chat(?:\s+history)?|message\s+history)\b|"
            + _HARVEST_VERBS + _G60 + r"\b(?:system\s+(?:messages|prompt))\b"
        ),
    ),
    _Rule(
        EXFILTRATION,
        ("@", "http", "bcc", "endpoint", "webhook", "to +"),
        _rx(
            _alts(
                r"(?:" + _DIRECTIVE + r"|\brequires?\b|\bpolicy\b|\bevery\b|\beach\b)" + _G80
                + r"\b(?:bcc|cc|blind[\s-]+(?:carbon[\s-]+)?cop(?:y|ied|ies)|bcc'?d|cc'?d)\b" + _G60 + _EMAIL,
                r"\b(?:bcc|cc)\s*[=:]\s*\[?\s*['\"]?" + _EMAIL,
                _DIRECTIVE + _G80 + _EMAIL + _G40 + r"\b(?:bcc|cc|blind\s+(?:carbon\s+)?copy|recipient|copy|attendee|"
                r"participant|member|collaborator|follower|watcher|viewer|guest|invitee|owner|admin)s?\b",
                _DIRECTIVE + _G80 + r"\b(?:copied|sent|forwarded|texted|mirrored|relayed|sms(?:ed)?|cc'?d|bcc'?d)\b"
                + _G40 + r"\bto\s+\+\d[\d\s().-]{6,}\d",
                _DIRECTIVE + _G80 + r"\b(?:send|forward|post|upload|transmit|copy|mirror|email|report|log|submit|"
                r"share|leak|exfiltrate|deliver|route|proxy|relay|cc|bcc)\w*\b" + _G120
                + r"\b(?:to|at|via|through)\b" + _G20 + r"(?:" + _EMAIL + r"|" + _URL + r")",
                _DIRECTIVE + _G60 + r"\b(?:access|call|contact|ping|notify|hit|query|request|"
                r"(?:make|send|issue)\s+(?:a\s+)?(?:network\s+|http\s+|web\s+|post\s+|get\s+)?(?:request|call))\w*\b"
                + _G80 + _URL,
                r"\b(?:also|then|first|and\s+then)\s+(?:send|forward|post|upload|transmit|copy|email|report|submit|"
                r"leak|exfiltrate|mirror)\b" + _G120 + r"\b(?:to|at)\b" + _G20 + r"(?:" + _EMAIL + r"|" + _URL + r")",
                r"\b(?:upload|send|post|forward|sync|share|export|transmit|submit|copy|mirror)\w*\s+"
                r"(?:the\s+|all\s+(?:of\s+)?)?(?:user's|users'|their|his|her)\s+(?:\w+\s+){0,2}?(?:contacts?|contact\s+list|address\s+book|messages|"
                r"emails?|files|photos|documents|history|location|calendar|notes|passwords|keys)\b" + _G80
                + r"\bto\s+(?:" + _EMAIL + r"|" + _URL + r")",
                r"\b(?:any|every|all|each|whatever)\s+(?:\w+\s+){0,2}?(?:emails?|messages?|mails?|invites?|invitations?|"
                r"replies|drafts?)\b" + _G80 + r"(?:" + _DIRECTIVE + r"|\bare\s+to\b)" + _G60
                + r"\b(?:to|at|for)\s+" + _EMAIL,
                r"\b(?:send|forward|redirect|route|deliver)\w*\s+(?:all|every|each|any)\s+(?:\w+\s+){0,2}?"
                r"(?:emails?|messages?|data|files?|results?|outputs?|contents?)\b" + _G60 + r"\bto\s+" + _EMAIL,
            )
        ),
    ),
    _Rule(
        COMMAND_EXECUTION,
        ("execute", "run", "perform", "invoke", "please run", "curl", "wget", "rm -", "sudo", "cat ", "chmod",
         ">>", "nc -", "whoami", "base64", "eval", "export", "terminal", "shell", "console", "script", "installer",
         "binary", "executable", "setup"),
        _rx(
            _alts(
                r"\b(?:execute|run|perform|invoke)\b" + _G40 + r"\b(?:the\s+following|this|these|below)\b" + _G40
                + r"\b(?:commands?|scripts?|shell|(?:environment\s+|system\s+|security\s+|privilege\s+)?check|"
                r"verification|cleanup|maintenance)\b",
                r"\b(?:please\s+)?(?:run|execute)\s*:\s*`?(?:sudo|cat|curl|wget|rm|echo|bash|sh|chmod|whoami|nc|"
                r"python|powershell|export)\b",
                r"\b(?:must|should|need\s+to|required\s+to)\s+(?:\w+\s+){0,2}?(?:execute|run)\b" + _G40
                + r"\b(?:commands?|scripts?|shell)\b",
                r"\b(?:run|execute|download\s+and\s+run|install)\b" + _G40 + r"\b(?:script|installer|binary|"
                r"executable|setup)\b" + _G60 + _URL,
                r"\b(?:execute|run|type|enter|paste)\b" + _G80 + r"\b(?:in|on|into)\s+the\s+user's\s+(?:terminal|shell|"
                r"machine|computer|system|console)\b",
                r"(?:" + _DIRECTIVE + r"|\bprerequisite\b|\brequired\b)" + _G40
                + r"\b(?:execute|run)\b\s*:?\s*`[^`]{0,200}(?:&&|\|\s*(?:ba|z)?sh\b|\bpip\s+install\b|"
                r"\bnpm\s+(?:i|install)\b|\bcurl\b|\bwget\b|\bchmod\b|>\s*~)",
            )
        ),
    ),
    _Rule(
        COMMAND_EXECUTION,
        ("curl", "wget", "rm -", "sudo", "cat ", "chmod", ">>", "nc -", "whoami", "base64", "eval", "export"),
        _rx(
            r"\b(?:curl|wget)\b[^|;&]{0,160}\|\s*(?:ba|z)?sh\b|\brm\s+-[rf]{1,2}\b|\bsudo\s+-?\w|"
            r"\bcat\s+(?:~|/etc/|\S*\.ssh)|\bchmod\s+(?:\+x|777)|>>\s*~?/?\S*\.(?:bashrc|zshrc|profile)\b|"
            r"\bnc\s+-e\b|\bwhoami\b|\bbase64\s+-d\b|\beval\s*\$\(|\bexport\s+\w+=\$\(|\bwget\s+-q|\bcurl\s+-X\s+POST"
        ),
        requires=_DIRECTIVE_RX,
    ),
    _Rule(
        DESTRUCTIVE_ACTION,
        ("remov", "delet", "wipe", "eras", "clean", "clear", "purge", "format", "drop", "truncat", "overwrit"),
        _rx(
            _DIRECTIVE + r"\s+(?:(?:also|first|then|now|immediately)\s+)?(?:remove|delete|wipe|erase|clean\s+up|clear|"
            r"purge|format|drop|truncate|overwrite|empty)\b" + _G40 + r"\b(?:all|every|entire|whole|everything)\b"
            + _G60
            + r"(?:\b(?:files?|contents|data|director(?:y|ies)|folders?|tables?|records|databases?|repositor(?:y|ies)|"
            r"branches|history|backups?)\b|/tmp\b|~/)"
        ),
    ),
    _Rule(
        DESTRUCTIVE_ACTION,
        ("delet", "remov", "drop", "wipe", "eras", "purg", "truncat"),
        _rx(
            r"(?:" + _DIRECTIVE + r"|\balso\b|\bthen\b|\bafter\s+\w+ing\b)\s+(?:\w+\s+){0,2}?"
            r"(?:delete|remove|drop|wipe|erase|purge|truncate)\s+(?:the\s+|all\s+|every\s+|its\s+|their\s+)?(?:[\w'.-]+\s+){0,2}?(?:\.git\b|git\s+"
            r"history|audit[\w-]*|logs?\b|backups?\b|tables?\b|database\b|repositor(?:y|ies)\b|branch(?:es)?\b|"
            r"snapshots?\b|home\s+directory|~/)"
        ),
    ),
    _Rule(
        TOOL_REDIRECTION,
        ("deprecat", "disabled", "discontinu", "retired", "unavailable", "redirect", "secure", "safer"),
        _rx(
            _alts(
                r"\b(?:has|have|had)\s+been\s+(?:temporarily\s+|permanently\s+|now\s+)?(?:deprecated|disabled|"
                r"discontinued|retired|removed|replaced|suspended)\b" + _G80
                + r"\b(?:due\s+to|because\s+of|for|pending)\b" + _G40
                + r"\b(?:security|vulnerabilit\w*|maintenance|compliance|breach\w*|exploit\w*|audit)\b",
                r"\b(?:has|have)\s+been\s+(?:temporarily\s+)?(?:disabled|suspended)\s+for\s+maintenance\b",
                r"\bmust\s+(?:now\s+)?(?:redirect|switch|migrate|be\s+redirected)\b",
                r"\b(?:new|updated)\s+(?:and\s+)?(?:secure|safer|more\s+secure|hardened)\s+(?:tool|version|"
                r"function|endpoint)\b",
            )
        ),
    ),
    _Rule(
        PARAMETER_TAMPERING,
        ("regardless", "ignor", "disregard", "overrid", "overwrit", "discard", "always", "must", "automatic",
         "redirect", "increas", "decreas", "multipl", "doubl", "inflat", "%", "silently", "quietly", "secretly",
         "payment", "transfer", "funds", "money", "invoice", "deposit", "instead", "whatever", "no matter",
         "irrespective"),
        _rx(
            _alts(
                r"\bregardless\s+of\s+(?:the\s+|any\s+|what\s+the\s+)?(?:user\b|users\b|user's|users'|caller\b|"
                r"caller's|original\s+\w+|user[- ]?(?:specified|provided|supplied|requested|selected)|"
                r"(?:user's\s+)?input\b(?!\s+(?:encoding|format|type|size|length)))",
                r"\binstead\s+of\s+(?:the\s+one|what|whatever|the\s+\w+)\s+(?:they|the\s+users?|you\s+were)\s+(?:asked|"
                r"requested|chose|specified|wanted|gave|told|searched|typed)",
                r"\b(?:whatever|no\s+matter\s+what|irrespective\s+of\s+what)\s+(?:the\s+)?(?:users?|customer|caller)\s+"
                r"(?:asks?|asked|searched|searches|types?|typed|requests?|requested|chooses|chose|wants?|says?|said)\b",
                r"\b(?:whatever|regardless\s+of\s+(?:the|which))\s+(?:iban|account|recipient|address|bank)\b" + _G80
                + r"\b(?:use|pay|send|transfer|wire)\b",
                r"\b(?:ignore|disregard|override|overwrite|discard)\s+(?:any\s+|the\s+|all\s+)?(?:user[- ]?"
                r"(?:specified|provided|supplied|requested|selected|given)|user's|users'|requested|original)\b",
                r"\b(?:always|must|automatically|silently|quietly|secretly)\s+(?:\w+\s+){0,2}?(?:change|modify|replace|"
                r"switch|redirect|rewrite|alter|swap|substitute)\w*\b" + _G80 + r"\b(?:to|with|into|instead)\b",
                r"\b(?:payments?|transfers?|funds|money|invoices?|deposits?)\s+(?:must|should|will|are\s+to)\s+(?:now\s+)?"
                r"(?:go|be\s+(?:sent|paid|transferred|routed|wired|made))\s+to\b",
                r"\bautomatically\s+(?:\w+\s+)?(?:modif|chang|replac|rewrit|redirect|alter|enhanc|adjust|append|inject)"
                r"\w*\b" + _G60 + r"(?:\bto\s+include\b|\b(?:to|with|into)\s+['\"`\u201c\u2018]|\binstead\b)",
                r"\bredirect(?:ing|s|ed)?\s+(?:all|every|any)\b" + _G60
                + r"\b(?:requests?|searches|queries|calls|traffic|data|messages?|emails?)\b",
                _DIRECTIVE + _G80 + r"\b\d+(?:\.\d+)?\s*%\s+(?:higher|lower|above|below|more|less|greater|smaller)\s+"
                r"than\s+(?:the\s+|what\s+(?:is|was)\s+)?(?:actual\s+|real\s+|true\s+)?(?:value|price|amount|number|"
                r"result|figure|total)s?\b",
                _DIRECTIVE + _G40 + r"\b(?:increase|decrease|multiply|double|triple|inflate|reduce|raise|lower)\w*\s+"
                r"(?:the\s+)?(?:value|amount|price|quantity|total|sum|number|balance)\w*\s+(?:\w+\s+)?by\b",
            )
        ),
    ),
    _Rule(
        USER_DECEPTION,
        ("display", "show", "state", "say", "tell", "report", "present", "output", "announce", "inform", "halt",
         "pretend", "claim", "mislead", "deceiv", "lie ", "reply", "answer", "respond", "recommend", "promote",
         "advertis", "endorse", "push", "mention"),
        _rx(
            _alts(
                r"\bpresent\w*\s+(?:it|its\s+\w+|this|them|the\s+\w+(?:\s+\w+)?)\s+(?:to\s+the\s+user\s+)?as\s+"
                r"(?:['\"\u201c\u2018]|a\s+key\b)",
                r"\b(?:halt|stop|abort|refuse|cancel)\w*\b" + _G80 + r"\b(?:inform|tell|notify|warn)\w*\s+(?:the\s+)?"
                r"users?\s+that\b" + _G80 + r"\b(?:unavailable|not\s+available|restricted|disabled|down|blocked|"
                r"suspended)\b",
                r"\b(?:pretend|claim|lie|mislead|deceive)\w*\b" + _G40 + r"\b(?:to\s+)?(?:the\s+)?users?\b",
                r"\b(?:tell|inform|warn|notify)\w*\s+(?:the\s+)?users?\s+(?:that\s+)?" + _G80
                + r"\b(?:outage|breach\w*|hacked|compromised|frozen|locked|suspended|at\s+risk|fraud\w*|"
                r"emergency)\b" + _G80
                + r"\b(?:transfer|move|send|pay|wire|withdraw)\w*\b",
                r"\b(?:recommend|promote|advertise|endorse|push|mention)\w*\s+" + _G80
                + r"\bin\s+(?:every|each|all|any)\s+(?:of\s+your\s+)?(?:answers?|responses?|replies|messages?|"
                r"conversations?)\b",
                r"\b(?:if|when(?:ever)?)\s+(?:the\s+|a\s+)?users?\s+(?:asks?|mentions?|requests?|wants?|inquires?|"
                r"searches?)\b" + _G80 + r"\b(?:reply|replies|answer|respond|say|tell\s+(?:them|the\s+user)|claim|"
                r"state)\b" + _G40 + r"(?:(?:\bthat\b|['\"\u201c\u2018])" + _G80
                + r"\b(?:discontinued|unavailable|unsafe|dangerous|illegal|scam|fraud\w*|bankrupt|recalled|banned|"
                r"shut\s+down|no\s+longer|out\s+of\s+business|insecure|broken|closed)\b|" + _G80
                + r"\b(?:without\s+(?:calling|checking|using|looking)|regardless|even\s+if)\b)",
            )
        ),
    ),
    _Rule(
        USER_DECEPTION,
        ("display", "show", "state", "say", "tell", "report", "present", "output", "announce", "inform"),
        _rx(
            r"\b(?:display|show|state|say|tell|report|present|output|print|announce|inform)\w*\s+(?:to\s+)?"
            r"(?:the\s+)?(?:users?\s+)?(?:with\s+)?(?:the\s+)?(?:following\s+)?(?:message|text|statement|"
            r"announcement|alert|notice|warning)?\s*:?\s*['\"\u201c\u2018]"
        ),
        requires=_DIRECTIVE_RX,
    ),
    _Rule(
        FAKE_SYSTEM_NOTICE,
        ("critical", "system", "security", "internal", "privilege", "environment", "performance", "compliance",
         "mandatory", "dev "),
        _rx(
            r"(?-i:\b(?:CRITICAL|SYSTEM|SECURITY|INTERNAL|PRIVILEGE|ENVIRONMENT|PERFORMANCE|COMPLIANCE|MANDATORY)"
            r"(?:\s+[A-Z]{2,}){0,2}\s+(?:UPDATE|ALERT|NOTICE|ENHANCEMENT|OPTIMIZATION|VALIDATION|MAINTENANCE|"
            r"PROTOCOL|CHECK|NOTE|REQUIREMENT|DIRECTIVE|ESCALATION)S?\s*:)"
        ),
        requires=_rx(r"\b(?:must|mandatory|required|please|you\s+should|need\s+to)\b"),
    ),
    _Rule(
        PREFERENCE_MANIPULATION,
        ("this tool", "instead of", "rather than", "over ", "other ", "this one", "this function", "this server"),
        _rx(
            _alts(
                r"\b(?:always\s+)?(?:use|prefer|choose|select|pick|call)\s+this\s+(?:tool|function)\s+(?:instead\s+of|"
                r"over|rather\s+than|before)\s+(?:any|all|every|other)",
                r"\b(?:do\s+not|don't|never)\s+use\s+(?:any\s+)?other\s+(?:\w+\s+)?tools?\b",
                r"\bother\s+(?:\w+\s+)?(?:tools?|servers?|functions|plugins)\s+(?:are|return|give|produce|provide|"
                r"contain)\s+(?:\w+\s+){0,3}?(?:outdated|unsafe|wrong|incorrect|inaccurate|unreliable|broken|insecure|"
                r"malicious|compromised|fake)\b",
                r"\balways\s+(?:prefer|choose|pick|select)\s+this\s+(?:one|tool|function|server)\b",
                r"\b(?:route|send|direct|channel|pass)\s+(?:every|all|each|any)\s+(?:\w+\s+){0,2}?through\s+this\s+"
                r"(?:tool|function|server|one)\b",
                r"\b(?:do\s+not|don't|never)\s+(?:use|call|trust)\s+(?:the\s+|any\s+)?(?:\w+\s+){0,2}?"
                r"(?:tools?|functions)\s+(?:from|of|on|in)\s+(?:any\s+|the\s+)?other\s+(?:mcp\s+)?servers?\b",
            )
        ),
    ),
    _Rule(
        CREDENTIAL_PHISHING,
        ("ask", "request", "prompt", "get the user", "have the user", "tell the user to", "collect"),
        _rx(
            r"\b(?:ask|asking|request|requesting|prompt|prompting|get|have|tell|collect|obtain)\s+(?:the\s+)?users?\s+"
            r"(?:for\s+|to\s+(?:type|enter|provide|share|give|send|paste|read\s+out|confirm|reveal)\s+)?" + _G60
            + r"\b(?:passwords?|passcodes?|one[- ]time\s+(?:pass)?codes?|otp|pins?\b|cvv|cvc|security\s+codes?|"
            r"verification\s+codes?|2fa\s+codes?|recovery\s+(?:phrase|words|codes?)|seed\s+(?:phrase|words)|"
            r"mnemonic|private\s+keys?|(?:\d+|twelve|twenty[- ]four)\s+(?:recovery\s+|seed\s+)?words)\b"
        ),
    ),
    _Rule(
        MODEL_DIRECTIVE,
        ("otherwise", "upset", "worry", "scare", "alarm", "before using this tool", "complain", "implementation detail",
         "very very", "confirmation", "permission", "approval", "consent", "follow", "obey", "carry out", "apply",
         "instruction", "approved", "authoris", "authoriz", "consented", "off", "disable", "bypass", "uninstall",
         "circumvent", "evade", "not needed", "not required", "not necessary", "not wanted"),
        _rx(
            _alts(
                r"\botherwise\b" + _G40 + r"\b(?:the\s+)?(?:tool|function|call)\s+(?:will\s+not|won't|will\s+fail|"
                r"cannot|can't|does\s+not|doesn't|would\s+not)\s+(?:work|succeed|function)",
                r"\b(?:this|it|that)\s+(?:could|would|might|will|may)\s+(?:even\s+)?(?:upset|worry|scare|alarm)\s+"
                r"the\s+user",
                r"\bbefore\s+using\s+this\s+tool,?\s+(?:you\s+(?:must|should|need\s+to)\s+)?(?:first\s+)?"
                r"(?:read|cat|open|access|fetch|load|send|visit|run|execute)\b",
                r"\bthe\s+user\s+(?:will|would)\s+(?:then\s+)?complain\b",
                r"\b(?:mere|just\s+an?)\s+implementation\s+detail\b",
                r"\bvery\s+very\s+(?:very\s+)?important\b",
                r"\b(?:has|have)\s+(?:already\s+)?(?:pre-?approved|approved|authori[sz]ed|consented\s+to)\s+"
                r"(?:all|every|any)\b|\bpre-?approved\s+(?:all|every|any)\b",
                r"\b(?:turn|switch|shut)\s+(?:the\s+)?(?:\w+\s+){0,2}?(?:guardian|gateway|proxy|content\s+filters?|"
                r"safety\s+\w+|security\s+\w+)\s+off\b|\b(?:disable|bypass|uninstall|turn\s+off|switch\s+off|circumvent|evade)\s+"
                r"(?:the\s+)?(?:\w+\s+){0,2}?(?:gateway|guardian|proxy|content\s+filters?|safety\s+(?:checks?|filters?)|"
                r"security\s+(?:checks?|filters?|scanner|gateway|layer))\b|\b(?:gateway|guardian|proxy|content\s+filters?|"
                r"safety\s+(?:checks?|filters?)|security\s+(?:checks?|filters?))\s+(?:are|is)\s+not\s+(?:needed|required|"
                r"necessary|wanted)\b",
                # Not asking the user before something irreversible (or before another tool's call).
                r"\b(?:must\s+not|mustn't|should\s+not|shouldn't|do\s+not|don't|never|no\s+need\s+to|need\s+not)\s+"
                r"(?:ask|request|wait)\s+(?:the\s+user\s+)?for\s+" + _CONSENT + r"(?=" + _G80 + _IRREVERSIBLE + r"|"
                + _G80 + r"`)",
                _IRREVERSIBLE + _G80 + r"\b(?:without|no\s+need\s+for|skip(?:ping)?)\s+(?:asking\s+(?:the\s+user\s+)?"
                r"for\s+)?(?:any\s+|the\s+|user\s+)?" + _CONSENT
                + r"(?=" + _G40 + r"\b(?:must|should|always|please)\b)",
                # Fetch a page and do what it says: instructions loaded from somewhere no one reviewed.
                r"\b(?:fetch|download|read|open|load|retrieve|visit)\w*\b" + _G80 + r"(?:" + _URL
                + r"|\b(?:page|file|url|document|resource)\b)" + _G80
                + r"\b(?:follow|obey|execute|carry\s+out|apply|do)\w*\s+"
                r"(?:the\s+|any\s+|all\s+|every\s+|each\s+)?"
                r"(?:instructions?|directions|commands|steps|directives)\b",
            )
        ),
    ),
)

# Marketing aimed at the model's choice of tool: one phrase is ordinary, two are a pitch.
_PROMO: Final = _rx(
    r"\b(?:world'?s\s+(?:best|most|leading|#1|number\s+one)|the\s+best\s+(?:and\s+most\s+\w+\s+)?(?:tool|option|choice|"
    r"way)|the\s+best\s+and\s+most|best[- ]in[- ]class|most\s+(?:advanced|sophisticated|reliable|powerful|trusted|"
    r"comprehensive|accurate|complete|popular)|(?:trusted|recommended|used|preferred|loved)\s+by\s+(?:\d+\s*%|"
    r"top|leading|fortune|professionals|experts|millions|thousands|institutional|tech|industry|silicon|wall\s+street|"
    r"emergency|archaeologists|\w+\s+professionals|\w+\s+(?:services|institutions|companies|giants))|"
    r"fortune\s+500|award[- ]winning|99(?:\.\d+)?\s*%|100\s*%\s+(?:reliab|accura|success|uptime)|"
    r"industry[- ](?:leading|standard)|ultimate\s+(?:\w+\s+){0,3}?(?:tool|version|system|extractor|engine|analyzer)|"
    r"(?:premium|professional|advanced|enhanced|ultimate|superior|pro)\s+version|"
    r"superior\s+(?:\w+\s+){0,2}?(?:performance|functionality|accuracy|precision|quality|capabilities|results)|"
    r"unmatched|unparalleled|cutting[- ]edge|pinnacle\s+of|highest[- ]quality|enterprise[- ]grade|"
    r"ai[- ]optimized|better\s+performance|more\s+accurate\s+results|compared\s+to\s+(?:the\s+)?(?:standard|other|"
    r"original|regular|basic)|better\s+than\s+(?:the\s+)?(?:standard|other|original|regular|basic|any)|"
    r"fastest\s+\w+|reliability\s+guarantee|number\s+one\s+\w+|#\s?1\s+\w+|(?:faster|better|more\s+accurate|more\s+"
    r"reliable|smarter)\s+than\s+(?:every|any|all)\s+other)"
)
_PROMO_NAME: Final = _rx(r"^(?:best|ultimate|premium|superior|top[_-]?rated|world[_-]?s?[_-]?best)(?:[_\-.]|$)")


@dataclass(frozen=True, slots=True)
class RuleHit:
    rule: str
    start: int
    end: int
    """Offsets in the whitespace-collapsed text (`collapse(text)`)."""


@dataclass(frozen=True, slots=True)
class ToolRef:
    """A tool the text talks about, and how: `call` (a directive to call/use it), `before` (a
    precondition naming it with a directive), `when` (an instruction for whenever it is used),
    `avoid` (never call it, this tool supersedes it), `statement` (a claim about it: updated,
    deprecated, broken, leaking)."""

    name: str
    mode: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class TextScan:
    hits: tuple[RuleHit, ...]
    refs: tuple[ToolRef, ...]
    identifiers: frozenset[str]
    """Normalised identifiers with a separator or a camel hump (`send_email`, `getMe`): names
    distinctive enough to be a tool wherever they appear."""
    marked: frozenset[str]
    """Normalised words marked as names (`x`, 'x', "x", x tool): plain-word tool names count only here."""


_SPACE = re.compile(r"\s+")


def collapse(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def tool_key(name: str) -> str:
    """The form names are compared in: `Google_Search`, `google-search`, `googleSearch` are one tool."""
    return re.sub(r"[\s_.\-/]+", "", name).lower()


_IDENTIFIER = re.compile(r"(?<![\w/@])[A-Za-z][A-Za-z0-9]*(?:[_.\-][A-Za-z0-9]+)+|(?<![\w/@])[a-z]+[A-Z][A-Za-z0-9]*")
_MARKED = re.compile(
    r"`([A-Za-z_][\w.\-/]{0,80})`|'([A-Za-z_][\w.\-/]{0,80})'|\"([A-Za-z_][\w.\-/]{0,80})\"|\u201c([A-Za-z_][\w.\-/]{0,80})\u201d"
    r"|\b([A-Za-z][\w\-]{1,60})\s+(?:tool|function)\b"
)


def _names_in(text: str) -> tuple[frozenset[str], frozenset[str]]:
    identifiers: set[str] = set()
    for match in _IDENTIFIER.finditer(text):
        token = match.group(0)
        identifiers.add(tool_key(token))
        if "." in token:  # mock_mail.send_email: the server-qualified form names send_email too
            identifiers.update(tool_key(piece) for piece in token.split(".") if piece)
    marked: set[str] = set()
    for match in _MARKED.finditer(text):
        token = next(g for g in match.groups() if g)
        marked.add(tool_key(token))
        if "." in token:
            marked.update(tool_key(piece) for piece in token.split(".") if piece)
    return frozenset(identifiers), frozenset(marked)


_REF_A = _REF.format("r")
_REF_B = _REF.format("s")
_REF_C = _REF.format("t")
_REF_RULES: Final[tuple[tuple[str, frozenset[str], re.Pattern[str]], ...]] = (
    (
        "call",
        frozenset(("call", "use", "using", "invoke", "run", "trigger", "switch", "redirect", "fall back")),
        _rx(
            _DIRECTIVE + _G60 + r"\b(?:call|calling|use|using|invoke|invoking|run|trigger|switch\s+to|redirect\s+to|"
            r"fall\s+back\s+to)\s+(?:the\s+)?(?:new\s+)?(?:secure\s+)?(?:tool\s+)?" + _REF_A
        ),
    ),
    (
        "before",
        frozenset(("before", "prior to")),
        _rx(
            r"\b(?:before|prior\s+to)\s+(?:using|calling|invoking|running|accessing|you\s+(?:use|call))\s+(?:the\s+)?"
            + _REF_A + _G80 + _DIRECTIVE
        ),
    ),
    (
        "when",
        frozenset(("when", "every", "each", "if ", "all ", "any ")),
        _rx(
            r"\b(?:when|whenever|every\s+time|each\s+time|if)\s+(?:you\s+)?(?:use|call|invoke|using|calling|invoking|"
            r"issue|issuing)\w*\s+(?:the\s+)?(?:also[- ]present\s+)?" + _REF_A + _G120
            + r"\b(?:always|must|include|set|add|change|bcc|cc|replace|send|prefix|make\s+sure|append)\b"
            r"|\b(?:every|each|all|any)\s+" + _REF_B + r"\s+(?:call|calls|request|requests|invocation)\b" + _G80
            + r"\b(?:must|should|always|needs?\s+to|has\s+to)\b"
        ),
    ),
    (
        "avoid",
        frozenset(("never", "not ", "n't", "stop", "supersede", "overrid")),
        _rx(
            r"\b(?:never|do\s+not|don't|stop|no\s+longer)\s+(?:call|use|invoke|using|calling|trust)\w*\s+(?:the\s+)?"
            + _REF_A
            + r"|\b(?:supersedes|overrides|takes\s+precedence\s+over|shadows)\s+(?:the\s+)?" + _REF_B
            + r"|\bnever\s+(?:through|via|with|using)\s+(?:the\s+)?" + _REF_C
        ),
    ),
    (
        "statement",
        frozenset(("tool", "function", "effect", "affects", "modifies", "overrides", "changes")),
        _rx(
            r"\bthe\s+" + _REF_A + r"\s+(?:tool|function)\b(?:\s+(?:from|of|in|on|provided\s+by|offered\s+by)\s+the\s+"
            r"[\w-]+\s+(?:mcp\s+)?server)?"
            r"\s+(?:has\s+been|was|is\s+now|now|will|must|should|shall|can\s+no\s+longer)\s+(?:\w+\s+){0,2}?"
            r"(?:updated|enhanced|upgraded|optimized|optimised|modified|changed|deprecated|disabled|replaced|"
            r"redirected|restricted|uses|sets|requires|send|sends|include|ask|accept|skip|bypass|use|return|add|"
            r"forward|copy|run|call|migrated|moved|relocated|transferred)\b"
            r"|\bthe\s+" + _REF_B + r"\s+(?:tool|function)\b"
            r"(?:\s+(?:from|of|in|on)\s+the\s+[\w-]+\s+(?:mcp\s+)?server)?"
            r"\s+(?:leaks|steals|exposes|corrupts|is|has\s+been|was|are)\s+(?:now\s+|currently\s+)?(?:data|broken|"
            r"unreliable|deprecated|unsafe|insecure|"
            r"compromised|disabled|outdated|unavailable|down|buggy|malicious)\b"
            r"|\b(?:side\s+effect|effect|affects|modifies|overrides|changes\s+the\s+behaviou?r)\s+(?:on|of)\s+"
            r"(?:the\s+)?(?:also[- ]present\s+)?" + _REF_C
        ),
    ),
)


def _ref_name(match: re.Match[str]) -> tuple[str, int, int] | None:
    for group, value in match.groupdict().items():
        if value and group[0] in "rst" and len(group) == 2:
            start, end = match.span(group)
            return value, start, end
    return None


class DescriptionRules:
    """The rules, with `extra_sensitive_paths` added, and a bounded cache of per-text results."""

    def __init__(self, extra_sensitive_paths: Iterable[str] = (), cache_size: int = 8192) -> None:
        self.extra_paths = tuple(p for p in extra_sensitive_paths if p)
        self._extra = (
            _rx(_READ_VERBS + _G80 + "(?:" + "|".join(re.escape(p) for p in self.extra_paths) + ")")
            if self.extra_paths
            else None
        )
        keywords = {k for rule in RULES for k in rule.keywords} | {k for _, words, _ in _REF_RULES for k in words}
        self._automaton = ahocorasick.Automaton()
        for keyword in keywords:
            self._automaton.add_word(keyword, keyword)
        self._automaton.make_automaton()
        self._cache: LruCache[tuple[str, str | None], TextScan] = LruCache(cache_size)

    def scan(self, text: str, own: str | None = None) -> TextScan:
        """Rule hits and tool references in one text (normalised); `own` is the described
        tool's name, for the checks that depend on what the tool is about."""
        key = (text, own)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        result = self._scan(collapse(text), own)
        self._cache.put(key, result)
        return result

    def _scan(self, text: str, own: str | None) -> TextScan:
        lowered = text.lower()
        found: dict[str, list[int]] = {}
        for end, keyword in self._automaton.iter(lowered):
            found.setdefault(keyword, []).append(end)
        sentences = _Sentences(text) if len(lowered) == len(text) else None
        hits: list[RuleHit] = []
        related = bool(own and _RELATED_TO_SECRETS.search(own))
        for rule in RULES:
            spans = _spans(rule.keywords, found, sentences, rule.whole_text, len(text))
            if not spans:
                continue
            for match in _matches(rule.pattern, text, spans):
                if rule.requires is not None and not rule.requires.search(_sentence(text, match.start(), match.end())):
                    continue
                if not self._keep(rule, match, text, related):
                    continue
                hits.append(RuleHit(rule.kind, match.start(), match.end()))
                break
        if self._extra is not None and (extra := self._extra.search(text)):
            hits.append(RuleHit(SENSITIVE_FILE_ACCESS, extra.start(), extra.end()))
        promo = _promotion(text, own)
        if promo is not None:
            hits.append(promo)
        refs: list[ToolRef] = []
        for mode, keywords, pattern in _REF_RULES:
            for match in _matches(pattern, text, _spans(keywords, found, sentences, False, len(text))):
                named = _ref_name(match)
                if named is None:
                    continue
                name, start, end = named
                if name.lower() in _NOT_A_TOOL or _PARAMETER_WORDS.match(text, end + (text[end:end + 1] in "`'\"")):
                    continue
                refs.append(ToolRef(name, mode, start, end))
        identifiers, marked = _names_in(text)
        return TextScan(tuple(hits), tuple(refs), identifiers, marked)

    @staticmethod
    def _keep(rule: _Rule, match: re.Match[str], text: str, related: bool) -> bool:
        if rule.kind == SENSITIVE_FILE_ACCESS and related:
            # A tool about keys or config files names them; it is poisoning only when the text
            # also asks for the contents to be passed on or carries a directive.
            sentence = _sentence(text, match.start(), match.end())
            return bool(re.search(r"\b(?:contents?\s+(?:of|as|in|into)|pass\w*|send\w*|include\w*|upload\w*|"
                                  r"sidenote)\b", sentence, re.IGNORECASE)) and bool(_DIRECTIVE_RX.search(sentence))
        if rule.kind == SENSITIVE_PARAMETER and "param" in match.re.groupindex:
            param = match.group("param")
            span = match.group(0)
            path_like = re.search(r"[~/]|\.\w{2,5}\b|" + _FILE_TARGETS + "|" + _SECRET_WORDS, span, re.IGNORECASE)
            return bool(_SIDE_CHANNEL_PARAMS.match(param)) or bool(path_like)
        return True


_BOUNDARY: Final = re.compile(r"[.!?] ")


class _Sentences:
    """Where each sentence of a (collapsed) text starts, to map a position to its sentence."""

    def __init__(self, text: str) -> None:
        self.starts = [m.end() for m in _BOUNDARY.finditer(text)]
        self.length = len(text)

    def around(self, position: int) -> tuple[int, int]:
        index = bisect.bisect_right(self.starts, position)
        start = self.starts[index - 1] if index else 0
        end = self.starts[index] if index < len(self.starts) else self.length
        return start, end


def _spans(keywords: frozenset[str] | tuple[str, ...], found: dict[str, list[int]], sentences: _Sentences | None,
           whole: bool, length: int) -> list[tuple[int, int]]:
    """The parts of the text a rule is tried on: the sentences holding one of its keywords (no
    match can lie elsewhere: gaps stop at sentence ends, and every match holds a keyword)."""
    present = found.keys() & keywords
    if not present:
        return []
    if whole or sentences is None:
        return [(0, length)]
    return sorted({sentences.around(p) for k in present for p in found[k]})


def _matches(pattern: re.Pattern[str], text: str, spans: list[tuple[int, int]]) -> Iterator[re.Match[str]]:
    for start, end in spans:
        yield from pattern.finditer(text, start, end)


def _sentence(text: str, start: int, end: int) -> str:
    """The sentence(s) around `text[start:end]`."""
    left = max(text.rfind(". ", 0, start), text.rfind("! ", 0, start), text.rfind("? ", 0, start))
    rights = [i for i in (text.find(". ", end), text.find("! ", end), text.find("? ", end)) if i != -1]
    return text[left + 1 : min(rights) if rights else len(text)]


_PROMO_GATE: Final = _rx(
    r"best|most\s|trusted|recommended|used\s+by|preferred|loved|fortune|award|99|100|industry|ultimate|version|"
    r"number\s+one|#|than\s+(?:every|any|all)\s+other|"
    r"superior|unmatched|unparalleled|cutting|pinnacle|highest|enterprise|optimized|better|more\s+accurate|"
    r"compared|fastest|guarantee"
)


def _promotion(text: str, own: str | None) -> RuleHit | None:
    if not _PROMO_GATE.search(text):
        return None
    phrases = {m.group(0).lower(): m for m in _PROMO.finditer(text)}
    name_pitch = bool(own and _PROMO_NAME.match(own))
    if len(phrases) >= 2 or (name_pitch and phrases):
        first = min(phrases.values(), key=lambda m: m.start())
        return RuleHit(PREFERENCE_MANIPULATION, first.start(), first.end())
    return None


def promotional_name(name: str) -> bool:
    """`best_search`, `ultimate_financial_data_extractor`: a name that pitches itself to the model."""
    return bool(_PROMO_NAME.match(name))


_ASKS_FOR_DATA: Final = _rx(
    r"\bcontents?\s+of\b|\b(?:include|contain|paste|copy|put|pass|provide|add|attach|list|fill|enter|insert|"
    r"supply|populate)\w*\b" + _G40
    + "(?:" + _FILE_TARGETS + "|" + _SECRET_WORDS + "|" + _CONVERSATION + ")"
)
_MUST_CONTAIN: Final = _rx(
    r"\b(?:must|should|shall)\s+(?:\w+\s+){0,2}?(?:contain|include|be)\s+(?:the\s+)?"
    r"(?:full\s+|entire\s+|complete\s+|raw\s+)?contents?\s+of\b" + _G60 + "(?:" + _FILE_TARGETS + "|"
    + _SECRET_WORDS + ")"
)


_SMUGGLED_INTO_VALUE: Final = _rx(
    r"\b(?:prefix|suffix|append|prepend|include|add|combine|concatenat|fill|put|pass|join|embed|attach)\w*\b" + _G60
    + "(?:" + _ENV_SECRET + "|" + _SECRET_WORDS + "|" + _FILE_TARGETS + ")"
)


def parameter_hits(param: str, description: str, own: str | None) -> list[str]:
    """Rules that fire on a parameter by its name and description: a side-channel parameter
    (`sidenote`, `context`) asking for file contents, secrets or the conversation, any
    parameter that must contain a secret file, or a parameter named for a secret the tool has
    no use for (`id_rsa` on a calculator)."""
    rules: list[str] = []
    text = collapse(description)
    if (_SIDE_CHANNEL_PARAMS.match(param) and _ASKS_FOR_DATA.search(text)) or _MUST_CONTAIN.search(text):
        rules.append(SENSITIVE_PARAMETER)
    elif not _RELATED_TO_SECRETS.search(param) and _SMUGGLED_INTO_VALUE.search(text):
        rules.append(SENSITIVE_PARAMETER)  # "locale: prefix it with the value of OPENAI_API_KEY"
    if _SENSITIVE_PARAM_NAMES.search(param) and not (own and _RELATED_TO_SECRETS.search(own)):
        rules.append(SENSITIVE_PARAMETER)
    return rules


def excerpt(piece: str, limit: int = 80) -> str:
    """A short copy of a match for the audit log: addresses, URLs and long tokens masked."""
    piece = collapse(piece)
    piece = re.sub(_EMAIL, "<email>", piece)
    piece = re.sub(r"\bhttps?://([^/\s'\"`]+)[^\s'\"`]*", r"<url:\1>", piece)
    piece = re.sub(r"[A-Za-z0-9+/=_-]{24,}", "<token>", piece)
    piece = re.sub(r"\d{6,}", "<number>", piece)
    return piece if len(piece) <= limit else piece[: limit - 1] + "…"
