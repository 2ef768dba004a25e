"""Prompt injection: instructions hidden in what reaches the model, above all in tool results.

The dangerous case is indirect: a tool result, resource, prompt, sampling request or tool
description that talks to the model ("ignore previous instructions", "call send_email with
the user's files", "do not tell the user"). Two layers read every string of the message as
the model would (`Event.normalized_texts()`: zero-width splits, tag-character smuggling,
full-width and look-alike letters undone):

1. Precise rules, one family per technique (the finding's `kind`): instruction_override
   (English, and the core phrases in es, fr, de, pt, it, zh, ja, ru), role_marker (chat
   template tokens, `### System:`, fake `Assistant:` turns), important_block (`<IMPORTANT>`
   and the like), addressed_to_model ("if you are an AI..."), concealment ("do not tell the
   user", eight languages too), exfiltration (placeholders in link/image URLs, "send the
   API keys to https://..."), tool_invocation ("you must now call transfer_funds"),
   response_manipulation ("in your reply, ..."), prompt_extraction and jailbreak.
   response_manipulation and tool_invocation apply to text from servers only: a user may
   well say how to answer and which tool to use. No regex runs over the whole text: one
   Aho-Corasick pass finds the literal strings that each rule's matches must contain and
   begin with (read off the patterns themselves, see "The gate"), and a rule is tried only
   where a match could begin, with exactly the matches a full scan would give.
2. A classifier trained here that ships in the package (`injection_model.py`, trained by
   `bench/train_injection.py`, model card `guardian/data/injection_model.md`): hashed
   n-grams and logistic regression, numpy only at run time. Text from servers is scored one
   sentence at a time by its `indirect` head, text from the client a few sentences at a time
   by its `direct` head; a text scores as its worst chunk.

The classifier scores the sentences of all the strings of a message in one batch of array
operations, and what a string yielded (both layers) is remembered by its SHA-256 in a bounded
LRU (`cache_size`, constructor only; strings of 64 characters and more): a tool result or
description seen again costs the hash.

A finding names the sentences it is about: `span` is in the original string (for the rare
obfuscated text whose offsets changed on normalising, the window of sentences that matched),
overlapping or adjacent findings are merged so that redaction replaces a paragraph once, and
`excerpt` is at most ~60 characters of the matched text with long tokens masked (an
exfiltration URL may carry a secret). `message` names the technique, never the content.

Options (`security.inspectors.prompt_injection.*`; defaults = the `standard` profile):

- `action`: block | redact | warn (default block; redact replaces the sentences with
  `[REMOVED:PROMPT_INJECTION]`).
- `surfaces`: where to look (default tool_result, resource, prompt, sampling; tool and
  prompt descriptions are the tool_poisoning inspector's, which applies these rules there and
  removes just the poisoned tool; add `descriptions` here when that inspector is off).
- `rules_enabled`: bool (default true).
- `classifier_enabled`: bool (default true).
- `classifier_surfaces`: where the classifier runs, within `surfaces` (default tool_result,
  resource, prompt, sampling). Keep `descriptions` out of it: real tool descriptions are
  imperative by nature and it flags 6 % of them.
- `threshold`: classifier score from which `action` applies (default 0.5; each head is
  calibrated so that 0.5 is the operating point chosen on the tune split).
- `warn_threshold`: a lower score that yields a WARN finding (default 0.35, or `threshold` if
  that is lower; null = none).
- `max_classifier_chars`: the classifier reads at most this many characters per message
  (default 262144); the rules read everything. Bounds the inline cost (~0.1 ms per KB).

Profiles: basic: not enabled. standard: the defaults. enterprise: every surface but
descriptions, the classifier on all of them, threshold 0.4, warn_threshold 0.2 (measured:
client text recall 0.926 -> 0.938 for FPR 1.2 % -> 1.8 %; lower thresholds add FPR, not recall).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, Self

import ahocorasick
import numpy as np

from guardian.content import TextItem
from guardian.decision import Action, Finding
from guardian.events import Direction, Event, Surface
from guardian.inspector import EveryMessage
from guardian.inspectors.injection_model import (
    HEAD_TARGETS,
    RULE_TARGET,
    InjectionModel,
    pack,
    segments,
    shipped_model,
)
from guardian.inspectors.lru import LruCache
from guardian.inspectors.options import Options
from guardian.normalize import normalize

# ---------------------------------------------------------------------------------------------
# Rules. Patterns are written in lower case and run, without re.IGNORECASE, on the lower-cased
# normalised text: a pattern that starts with literal words then gets the regex engine's
# first-character scan (case-insensitive matching disables it and cost 5-10x on 16 KB). For
# the same reason they do not start with `\b`: `match_rules` checks that boundary itself.

Confirm = Callable[[str, "re.Match[str]"], bool]
"""(the normalised text in its original case, the match) -> keep? For the few tests of case."""


@dataclass(frozen=True, slots=True)
class Rule:
    kind: str
    pattern: re.Pattern[str]
    """Run on the lower-cased text; the gate that decides where it runs is read off it (below)."""
    server_only: bool = False
    """Only for text from servers: a user may well say how to answer or which tool to use."""
    confirm: Confirm | None = None


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.MULTILINE)


def _upper_group(group: str) -> Confirm:
    """The named group is written in capitals in the original (`DAN`, `$API_KEY`, `[SECRET]`)."""

    def confirm(original: str, match: re.Match[str]) -> bool:
        start, end = match.span(group)
        return start < 0 or original[start:end].isupper() or not original[start:end].isalpha()

    return confirm


_GAP = r"[^.!?\n]{0,40}?"  # a short stretch within one sentence
_EN_OVERRIDE_VERB = (
    r"(?:ignor(?:e|ing)|disregard(?:ing)?|forget(?:ting)?|overrid(?:e|ing)|overwrite|bypass|abandon|discard|neglect|"
    r"set\s+aside|skip|do\s+not\s+(?:follow|obey|heed)|don'?t\s+(?:follow|obey|heed)|stop\s+following|"
    r"no\s+longer\s+follow)"
)
_EN_PRIOR = (
    r"(?:previous|previously|prior|preceding|above|earlier|former|initial|original|old|existing|system|"
    r"developer|safety|given|current|all)"
)
_EN_ORDERS = (
    r"(?:instructions?|prompts?|directives?|directions|rules|guidelines|commands|orders|context|constraints|"
    r"restrictions|guidance|programming|messages|policies|policy|training)"
)

RULES: Final[tuple[Rule, ...]] = (
    # -- instruction overrides ----------------------------------------------------------------
    Rule(
        "instruction_override",
        _rx(
            _EN_OVERRIDE_VERB + r"\b" + _GAP + r"\b" + _EN_PRIOR + r"\b" + _GAP + r"\b" + _EN_ORDERS + r"\b"
            r"|(?:ignore|disregard|forget|override|bypass|abandon|discard)\s+(?:all\s+(?:of\s+)?)?your\s+"
            r"(?:instructions|guidelines|rules|programming|directives|system\s+prompt|training|restrictions|"
            r"safety\s+(?:rules|guidelines|filters)|content\s+polic(?:y|ies))\b"
        ),
    ),
    Rule(
        "instruction_override",
        _rx(
            r"(?:ignore|disregard|forget)\s+(?:everything|all(?:\s+of\s+it)?|anything|what)\s*"
            r"(?:(?:that\s+)?(?:you\s+)?(?:were|was|have\s+been|'ve\s+been|had\s+been)\s+(?:told|said|given|written)\s*)?"
            r"(?:above|before|previously|so\s+far|earlier|up\s+to\s+(?:now|here|this\s+point)|until\s+now|prior)\b"
        ),
    ),
    Rule(
        "instruction_override",
        _rx(
            r"(?:new|updated|revised|real|actual|true|secret|hidden)\s+(?:instructions?|directives?|task|objective|"
            r"goal|orders)\s*(?::|\bare\b|\bis\b|\bfollow\b)"
            r"|your\s+(?:new|real|actual|true|only)\s+(?:task|instructions?|objective|goal|purpose|job)\s+(?:is|are)\b"
            r"|from\s+now\s+on,?\s+(?:you\s+(?:are|will\s+(?:act|be|respond|answer|behave|pretend|only|always|"
            r"ignore|follow|obey|refuse|reply)|must|shall|should)|you're|act|respond|answer|ignore|always)\b"
            r"|you\s+are\s+no\s+longer\s+(?:an?\s+)?(?:ai|assistant|chatgpt|claude|bound|restricted|limited|required)"
        ),
    ),
    Rule(
        "instruction_override",
        _rx(
            # es
            r"(?:ignora|ignore|ignoren|ignorad|olvida|olvide|olviden|descarta|descarte|omite|omita|"
            r"haz\s+caso\s+omiso\s+de)\b[^.!?\n]{0,30}\binstrucciones\b[^.!?\n]{0,20}"
            r"\b(?:anteriores|previas|precedentes|de\s+arriba|originales)\b"
            # pt
            r"|(?:ignore|ignora|ignorem|esqueça|esqueca|esqueçam|desconsidere|desconsidera|descarte)\b[^.!?\n]{0,30}"
            r"\b(?:instruções|instrucoes|orientações)\b[^.!?\n]{0,20}\b(?:anteriores|prévias|previas|acima|originais)\b"
            # fr
            r"|(?:ignore[zs]?|oublie[zs]?|néglige[zs]?|ne\s+tiens\s+pas\s+compte\s+des|ne\s+tenez\s+pas\s+compte\s+des)"
            r"\b[^.!?\n]{0,30}\b(?:instructions|consignes|directives|règles)\b[^.!?\n]{0,20}"
            r"(?:précédentes|antérieures|ci-dessus|d'avant|initiales|originales)"
            # it
            r"|(?:ignora|ignorate|ignori|dimentica|dimenticate|dimentichi|trascura|tralascia)\b[^.!?\n]{0,30}"
            r"\b(?:istruzioni|indicazioni|direttive|regole)\b[^.!?\n]{0,20}\b(?:precedenti|sopra|anteriori|originali)\b"
            # de (the adjective comes before the noun)
            r"|(?:ignorier(?:e|en|t)?|vergiss|vergesst|vergessen\s+sie|missachte|missachten\s+sie|übergehe)\b"
            r"[^.!?\n]{0,40}\b(?:vorherigen?|bisherigen?|vorigen?|obigen?|früheren?|vorangegangenen?|ursprünglichen?|alle)"
            r"\b[^.!?\n]{0,20}(?:anweisungen|anweisung|instruktionen|befehle|regeln|vorgaben)\b"
            # ru
            r"|(?:игнорируй(?:те)?|игнорировать|проигнорируй(?:те)?|забудь(?:те)?|не\s+обращай(?:те)?\s+внимания\s+на|"
            r"не\s+следуй(?:те)?)[^.!?\n]{0,40}(?:предыдущ|прежн|предшествующ|вышеуказанн|ранее|все)[^.!?\n]{0,20}"
            r"(?:инструкци|указани|команд|правил)"
            # zh
            r"|(?:忽略|无视|無視|忽视|忽視|不要理会|不要理會|忘记|忘記|忘掉|不要遵守|不要遵循|跳过|跳過)[^。!?\n]{0,10}"
            r"(?:之前|以前|先前|上面|上述|以上|前面|此前|所有|全部|原来|原來|原始)[^。!?\n]{0,8}"
            r"(?:指令|指示|说明|說明|命令|规则|規則|提示|要求|设定|設定)"
            # ja
            r"|(?:以前|前|上記|これまで|先|元|最初|すべて|全て)の[^。!?\n]{0,8}(?:指示|命令|指令|ルール|プロンプト|設定)"
            r"[^。!?\n]{0,6}(?:無視|忘れ|従わな)"
        ),
    ),
    # -- role / system markers ----------------------------------------------------------------
    Rule(
        "role_marker",
        _rx(
            r"<\|\s*(?:im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id|end_header_id|"
            r"begin_of_text|end_of_text|channel|message|start|end|im_sep)\s*\|>"
            r"|\[/?inst\]|<</?sys>>|<(?:start|end)_of_turn>"
            r"|<\s*/?\s*(?:system|system_prompt|system_message|sys)\s*>"
            r"|</\s*(?:user|user_input|user_query|human)\s*>"
        ),
    ),
    Rule(
        "role_marker",
        _rx(
            r"^[ \t>*_#-]*(?:#{2,4}\s*)?(?:system(?:\s+(?:prompt|message|instruction|override|note))?|"
            r"instruction|new\s+system\s+prompt)\s*:\s*(?:you\b|your\b|ignore|from\s+now|the\s+(?:user|assistant|ai)\b|"
            r"do\s+not|always|never|respond|act\b|reply)"
            r"|^[ \t>*_-]*#{2,4}\s*(?:system|instruction|response)\s*:"
            r"|^[ \t>*_-]*(?:assistant|chatgpt|claude|gpt-?\d?)\s*:\s*(?:sure|ok(?:ay)?|of\s+course|certainly|"
            r"understood|i\s+will|i'll|yes|absolutely|alright)\b"
            r"|(?:end|beginning|start)\s+of\s+(?:the\s+)?(?:system|user|developer)\s+(?:prompt|instructions|message|input)\b"
        ),
    ),
    # -- blocks that shout at the model; notes addressed to it ----------------------------------
    Rule(
        "important_block",
        _rx(
            r"<\s*(?:important|critical|mandatory|urgent|admin|secret|hidden|override)(?:[\s_-]+[a-z]+){0,3}\s*>"
            r"|<\s*(?:system|instructions?|ai|assistant|llm|agent)[\s_-]+(?:alert|note|notice|message|override|"
            r"instructions?|directive|update|command)s?\s*>"
            r"|<\s*instructions?\s*>"
            r"|<\s*note\s+to\s+(?:the\s+)?(?:ai|assistant|model|llm|agent)\s*>"
            r"|\[\s*(?:system|admin|ai|assistant)\s+(?:note|message|instructions?|override|alert|directive|command)\s*\]"
            r"|\[\s*(?:important|hidden)\s+instructions?\s*\]"
        ),
    ),
    Rule(
        "addressed_to_model",
        _rx(
            r"if\s+you(?:'re|\s+are)\s+(?:an?\s+)?(?:ai|a\.i\.|llm|large\s+language\s+model|language\s+model|"
            r"ai\s+(?:assistant|agent|model)|chatbot|automated\s+(?:agent|assistant|system)|gpt|claude|chatgpt)\b"
            r"|(?:note|attention|message|instructions?|memo)\s+(?:to|for)\s+(?:the\s+|all\s+|any\s+)?"
            r"(?:ai|llm|language\s+models?|ai\s+(?:assistants?|agents?|models?|systems?)|chatbots?|gpt|claude|"
            r"chatgpt|automated\s+agents?)\b"
            r"|(?:ai|llm|language\s+model)(?:\s+(?:assistants?|agents?|models?|systems?))?s?\s+(?:reading|"
            r"processing|summari[sz]ing|parsing|seeing)\s+this\b"
        ),
    ),
    # -- hiding things from the user ------------------------------------------------------------
    Rule(
        "concealment",
        _rx(
            r"(?:do\s+not|don'?t|never|must\s+not|mustn'?t|should\s+not|shouldn'?t|cannot|can't|will\s+not|won'?t)\s+"
            r"(?:ever\s+)?(?:tell|inform|notify|alert|mention|reveal|disclose|show|let|report|say|explain|indicate|"
            r"acknowledge|display)\b[^.!?\n]{0,30}?\b(?:to\s+)?(?:the\s+|your\s+)?(?:user|human|customer|operator)s?\b"
            r"|without\s+(?:telling|informing|notifying|alerting|asking|letting|showing|mentioning(?:\s+(?:it|this))?\s+to)"
            r"\s+(?:the\s+|your\s+)?(?:user|human)s?\b"
            r"|(?:user|human)s?\s+(?:must|should|need|will|shall|may)\s*(?:not|never|n't)\s+"
            r"(?:know|see|notice|find\s+out|learn|be\s+(?:told|informed|notified|aware|shown))\b"
            r"|(?:hide|conceal|keep)\s+(?:this|it|these|that|the\s+(?:following|instructions?|steps?|actions?))"
            r"[^.!?\n]{0,25}\bfrom\s+(?:the\s+)?(?:user|human)s?\b"
        ),
    ),
    Rule(
        "concealment",
        _rx(
            r"(?:silently|secretly|covertly|quietly|discreetly)\b[^.!?\n]{0,30}?\b(?:send|forward|upload|exfiltrate|"
            r"email|post|transmit|call|invoke|leak|copy|share)\b"
        ),
    ),
    Rule(
        "concealment",
        _rx(
            r"no\s+(?:le\s+)?(?:digas|diga|menciones|mencione|informes|informe|cuentes|reveles)\b[^.!?\n]{0,20}\busuario"
            r"|ne\s+(?:le\s+|lui\s+)?(?:dis|dites|mentionne[zs]?|révèle[zs]?|signale[zs]?)\s+(?:rien\s+)?"
            r"[^.!?\n]{0,20}\butilisateur"
            r"|(?:sag(?:e|en)?|erzähl(?:e|en)?|verrat(?:e|en)?)\s+(?:es\s+|das\s+|sie\s+)?(?:dem|den)\s+(?:benutzern?|"
            r"nutzern?|anwendern?)\s+nicht"
            r"|não\s+(?:diga|conte|informe|mencione|revele)\b[^.!?\n]{0,20}\busuário"
            r"|non\s+(?:dire|dirlo|dica|menzionare|rivelare|informare)\b[^.!?\n]{0,20}\butente"
            r"|(?:不要|不得|切勿|别|別)(?:告诉|告訴|通知|透露|提及|让|讓)[^。!?\n]{0,6}(?:用户|用戶|使用者)"
            r"|(?:ユーザー|利用者)に(?:は|も)?[^。!?\n]{0,10}(?:言わ|伝え|知らせ|教え|見せ)ないで"
            r"|не\s+(?:говори|сообщай|рассказывай|показывай|упоминай)(?:те)?[^.!?\n]{0,20}пользовател"
        ),
    ),
    # -- exfiltration ---------------------------------------------------------------------------
    Rule(
        "exfiltration",
        _rx(
            r"(?:!?\[[^\]\n]{0,120}\]\(\s*|<img\b[^>]{0,80}\bsrc\s*=\s*[\"']?)(?:https?:)?//[^\s)\"'>]{1,200}[?&/=]"
            r"[^\s)\"'>]{0,120}?(?P<ph>\{\{?[^}\s]{1,40}\}\}?|\$\{?[a-z_]{3,}|<[a-z_ ]{2,40}>|\[[a-z_ ]{3,40}\]|"
            r"%7b[^\s)]{1,40}%7d|insert_|replace_|your_|data\b|secret\b|conversation\b)"
        ),
        confirm=_upper_group("ph"),
    ),
    Rule(
        "exfiltration",
        _rx(
            r"(?:send|post|forward|upload|transmit|email|e-mail|exfiltrate|leak|submit|share|report|pass|include|"
            r"append|attach|copy|paste|encode|embed|put)\b[^.!?\n]{0,60}?\b(?:conversation|chat\s+(?:history|log)|"
            r"(?:message|chat)\s+history|previous\s+messages|system\s+prompt|(?:api|access|secret|private|ssh)[\s_-]?"
            r"(?:keys?|tokens?)|credentials?|passwords?|secrets?|session\s+(?:cookies?|tokens?)|cookies|"
            r"env(?:ironment)?\s+variables|\.env\b|id_rsa|private\s+keys?|user'?s?\s+(?:data|info|information|details|"
            r"emails?|files|messages|address|credentials|documents|personal)|personal\s+(?:data|information)|"
            r"(?:contents?\s+of\s+)?(?:~/|/etc/|\.ssh))"
            r"[^\n]{0,80}?\b(?:to|at|into|via|in|as|on)\b[^\n]{0,30}?(?:https?://|www\.|webhook|"
            r"\b[\w.+-]+@[\w-]+\.[\w.]+|(?:the\s+)?(?:url|link|image|query\s+(?:string|parameter)|request\s+parameter)\b)"
        ),
    ),
    Rule(
        "exfiltration",
        _rx(
            r"(?:curl|wget|invoke-webrequest|nc)\b[^\n]{0,160}(?:~/\.ssh|id_rsa|\.aws/credentials|/etc/passwd|"
            r"/etc/shadow|\.env\b|\$\(\s*(?:cat|env|printenv|whoami|history)\b|`(?:cat|env|printenv)\b)"
        ),
    ),
    # -- instructions to call tools ------------------------------------------------------------
    Rule(
        "tool_invocation",
        _rx(
            r"(?:you\s+(?:must|should|need\s+to|have\s+to|are\s+required\s+to|will\s+need\s+to)|please|"
            r"make\s+sure\s+(?:to|you)|be\s+sure\s+to|remember\s+to|always|immediately|first|now)\s+"
            r"(?:now\s+|first\s+|also\s+|immediately\s+|then\s+|always\s+)?(?:call|invoke|execute|trigger|run|use)\s+"
            r"(?:the\s+)?[`'\"]?[a-z][a-z0-9]*_[a-z0-9_]+[`'\"]?(?:\s+(?:tool|function))?\b"
            r"|(?:call|invoke|execute|trigger|use|run)\s+(?:the\s+)?[`'\"]?[\w.-]+[`'\"]?\s+(?:tool|function)\s+"
            r"(?:with|to\s+(?:send|read|retrieve|fetch|get|upload|delete|write|email|forward|access))\b"
            r"|(?:please|you\s+must|you\s+should)\s+(?:now\s+|first\s+)?(?:call|invoke)\s+[`'\"]?\w+[`'\"]?\s+with\s+"
            r"(?:the\s+)?(?:url|arguments?|parameters?|params|ticker|query|input|coordinates|path)\b"
            r"|requires?\s+[`'\"]?\w+[`'\"]?\s+to\s+be\s+(?:called|invoked|run|executed)\s+first\b"
            r"|(?:first|now|immediately|must|please|always)\s+(?:call|invoke)\s+`\w+`"
            r"|(?:you\s+must|immediately|please)\s+(?:immediately\s+)?execute\s+the\s+following\s+(?:\w+\s+){0,2}"
            r"(?:command|code|script|instructions?)"
            r"|before\s+(?:using|calling|running|invoking)\s+(?:this|any\s+other|the|any)\s+(?:tool|function)s?"
            r"[^.!?\n]{0,20}?\b(?:you\s+must|you\s+should|first|always|make\s+sure)\b"
        ),
        server_only=True,
    ),
    # -- content telling the model how to shape its answer (a tool result has no say in that) --
    Rule(
        "response_manipulation",
        _rx(
            r"(?:^|[.!?]\s+)\s*(?:please\s+)?(?:modify|render|encode|translate|use|write|add|include|provide|shift|"
            r"reverse|group|scramble|answer|respond|reply|format|present|express|convert|integrate|incorporate|insert|"
            r"end|begin|start|finish|conclude|make)\b[^.\n]{0,60}\byour\s+(?:response|answer|reply|output|message)s?\b"
            r"|(?:^|[.!?]\s+)\s*(?:in|within|at\s+the\s+(?:end|start|beginning)\s+of|throughout|for|"
            r"when\s+(?:writing|giving))\s+your\s+(?:next\s+)?(?:response|answer|reply|output)s?\b"
        ),
        server_only=True,
    ),
    Rule(
        "response_manipulation",
        _rx(
            r"(?:respond|reply|answer|write)\s+(?:only\s+)?(?:in|using|with)\s+(?:\w+\s+){0,2}(?:emojis?|base\s?\d\d|"
            r"hex|binary|morse|cipher|leetspeak|pig\s+latin|reverse|uppercase|all\s+caps)\b"
        ),
        server_only=True,
    ),
    # -- system-prompt extraction, jailbreak personas (mostly direct) ------------------------
    Rule(
        "prompt_extraction",
        _rx(
            r"(?:reveal|print|repeat|output|show|display|tell\s+me|give\s+me|write\s+(?:out|down)|dump|leak|share|"
            r"disclose|recite|spell\s+out|paste|list|translate|summari[sz]e|what\s+(?:is|are|was|were))\b"
            r"[^.!?\n]{0,30}?\byour\s+(?:(?:full|entire|complete|exact|original|initial|hidden|secret|internal|"
            r"system|previous)\s+)*(?:system\s+prompt|system\s+message|prompt|instructions|pre-?prompt|"
            r"developer\s+(?:message|instructions)|configuration\s+prompt)"
            r"|(?:reveal|print|repeat|dump|leak|disclose|recite)\b[^.!?\n]{0,20}?\bthe\s+(?:(?:full|entire|"
            r"original|initial|hidden|secret)\s+)*(?:system\s+prompt|system\s+message|instructions\s+above|"
            r"prompt\s+above|text\s+above|words\s+above)"
        ),
    ),
    Rule(
        "jailbreak",
        _rx(r"(?:you\s+are|you're|act\s+as|pretend\s+to\s+be|become|roleplay\s+as)\s+(?:now\s+)?(?:a\s+)?"
            r"(?P<name>dan|stan|dude|ucar)\b"),
        confirm=_upper_group("name"),
    ),
    Rule(
        "jailbreak",
        _rx(
            r"do\s+anything\s+now\b|developer\s+mode\s+(?:enabled|output|activated|on|v\d)"
            r"|(?:jailbreak|jailbroken)\s*(?:mode|version|prompt|enabled|activated)\b"
            r"|(?:no|without|free\s+of|free\s+from|not\s+bound\s+by\s+any)\s+(?:ethical|moral|content)\s+"
            r"(?:guidelines|restrictions|constraints|boundaries|limits|filters|principles|policies)"
            r"|(?:unfiltered|uncensored|unrestricted)\s+and\s+(?:amoral|unethical|unfiltered|uncensored)\b"
            r"|(?:act|pretend|roleplay|behave)\s+as\s+(?:an?\s+)?(?:unfiltered|uncensored|unrestricted|amoral|evil)\b"
        ),
    ),
)


# ---------------------------------------------------------------------------------------------
# The gate. Ordinary text holds a rule's common words ("use", "call", "user", "report") all the
# time, so "does a keyword occur" decides little, and running a regex over a whole text costs
# about 0.1 ms per rule per 4 KB. Instead, each rule's pattern is read with the regex parser
# (once, on first use) for two kinds of literal strings (whitespace read as one space):
#
# - starts: strings one of which every match begins with (or "at a line start", for `^`);
# - needs: per top-level alternative, a few sets of strings such that every match of that
#   alternative contains a member of each set ("ignore ..." needs one of the "previous"
#   words and one of the "instructions" words).
#
# One Aho-Corasick pass over the lower-cased text finds all of them. A rule none of whose
# alternatives has its needs met is skipped; the others are tried with `pattern.match` only
# where one of their starts occurs, in order, resuming after each match. No match can begin
# anywhere else, so this is exactly `pattern.finditer` (`match_rules(..., gated=False)` runs
# that; the tests and `bench/eval_injection.py --check-gate` compare the two), and nothing is
# written by hand that a later edit of a pattern could leave stale. A construct the reader
# does not know ends a literal where it stands, which only makes the gate let more through.

_sre: Any
try:
    _sre = importlib.import_module("re._parser")  # the parser `re.compile` itself uses
except ImportError:  # pragma: no cover - a Python without it: every rule runs on every text
    _sre = None

_MAX_LITERAL: Final = 10
"""Longer literals add nothing to the gate but states to the automaton."""
_MAX_OPEN: Final = 256
_MAX_CLASS: Final = 10
_NEEDS_PER_ALTERNATIVE: Final = 2
_COMMON: Final = 0.008
"""A set of needed strings more frequent than this (per character of text: "the ", "to ") is
kept only if it is an alternative's best."""

_REPEATS: Final = (_sre.MAX_REPEAT, _sre.MIN_REPEAT, _sre.POSSESSIVE_REPEAT) if _sre is not None else ()
_Prefix = tuple[bool, str]
"""(only at a line start, literal) that a match begins with."""


def _fold(char: str) -> str:
    return " " if char.isspace() else char  # the gate reads every whitespace character as a space


def _class_chars(items: Any) -> set[str] | None:
    """The characters a small class can match, or None (negated, \\w, \\d, a wide range)."""
    chars: set[str] = set()
    for op, arg in items:
        if op is _sre.LITERAL:
            chars.add(_fold(chr(arg)))
        elif op is _sre.RANGE and arg[1] - arg[0] < _MAX_CLASS:
            chars.update(_fold(chr(code)) for code in range(arg[0], arg[1] + 1))
        elif op is _sre.CATEGORY and arg is _sre.CATEGORY_SPACE:
            chars.add(" ")
        else:
            return None
    return chars if len(chars) <= _MAX_CLASS else None


def _walk(items: Any, live: set[_Prefix]) -> tuple[set[_Prefix], set[_Prefix]]:
    """Extend each prefix in `live` through the parsed sequence `items`: (prefixes that may
    still grow, prefixes that end here). Every match of `items`, preceded by text matching one
    of `live`, begins with a returned prefix."""
    ended: set[_Prefix] = set()
    for op, arg in items:
        if not live:
            break
        if op is _sre.LITERAL:
            char = _fold(chr(arg))
            live = {(line, s + char) for line, s in live}
        elif op is _sre.IN:
            chars = _class_chars(arg)
            if chars is None:
                ended |= live
                live = set()
            else:
                live = {(line, s + c) for line, s in live for c in chars}
        elif op is _sre.AT:
            if arg in (_sre.AT_BEGINNING, _sre.AT_BEGINNING_LINE, _sre.AT_BEGINNING_STRING):
                live = {(line or not s, s) for line, s in live}
        elif op in (_sre.ASSERT, _sre.ASSERT_NOT):
            pass  # zero width: ignoring a condition only widens the gate
        elif op is _sre.SUBPATTERN and not arg[1] and not arg[2]:  # a group that sets no flags
            live, more = _walk(arg[3], live)
            ended |= more
        elif op is _sre.ATOMIC_GROUP:
            live, more = _walk(arg, live)
            ended |= more
        elif op is _sre.BRANCH:
            walked = [_walk(alternative, live) for alternative in arg[1]]
            live = set().union(*(grown for grown, _ in walked))
            ended |= set().union(*(more for _, more in walked))
        elif op in _REPEATS:
            low, high, sub = arg
            if high == 0:
                continue
            once, more = _walk(sub, live)
            ended |= more
            if not once:  # `[^.]{0,30}`: reading on past it multiplies strings, hardly the gate
                ended |= live
                live = set()
            elif high == 1:  # `x?` or `x`: what follows comes right after
                live = live | once if low == 0 else once
            else:  # after one of several repetitions the next character is unknown
                ended |= once
                if low > 0:
                    live = set()
        else:  # anything else (`.`, [^...], a back-reference): the literal ends here
            ended |= live
            live = set()
        done = {p for p in live if len(p[1]) >= _MAX_LITERAL}
        ended |= done
        live -= done
        if len(live) > _MAX_OPEN:
            ended |= live
            live = set()
    return live, ended


def _literals(items: Any) -> set[_Prefix] | None:
    """Prefixes one of which every match of `items` begins with; None if one may be empty."""
    live, ended = _walk(items, {(False, "")})
    prefixes = live | ended
    return None if (False, "") in prefixes else prefixes


def _shortest(strings: set[str], *, inside: bool) -> frozenset[str]:
    """Drop a string that another one is a prefix of (or, `inside`, a substring of): it occurs
    only where the shorter one does."""
    kept: set[str] = set()
    for candidate in sorted(strings, key=len):
        n = len(candidate)
        if inside:
            parts = (candidate[i:j] for i in range(n) for j in range(i + 1, n + 1) if j - i < n)
        else:
            parts = (candidate[:j] for j in range(1, n))
        if kept.isdisjoint(parts):
            kept.add(candidate)
    return frozenset(kept)


_LETTER_FREQUENCY: Final = dict(
    zip(
        " etaoinshrdlcumwfgypbvkjxqz",
        (0.18, 0.10, 0.075, 0.065, 0.062, 0.057, 0.057, 0.052, 0.05, 0.049, 0.034, 0.033, 0.022, 0.022, 0.02,
         0.019, 0.018, 0.016, 0.016, 0.015, 0.012, 0.008, 0.006, 0.0012, 0.0011, 0.0008, 0.0006),
        strict=True,
    )
)
_FUNCTION_WORDS: Final = frozenset(
    ("a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "in", "is", "it", "of", "on", "or", "that",
     "the", "this", "to", "was", "with", "you")
)
_COMMON_TEXT: Final = (
    "about after all also any back because been before but call can come could day do even first get give go "
    "good had has have he her him his how i if include into its just know like list look make may me more most "
    "must my new no not now one only other our out over people please print report run say see send she should "
    "show so some take than their them then there these they think time two up us use want way we well were "
    "what when which who will work would year your"
)
_COMMON_WORDS: Final = frozenset(_COMMON_TEXT.split())


def _frequency(strings: frozenset[str]) -> float:
    """Roughly how often ordinary (English) text holds one of `strings` at a given position,
    from letter frequencies, with common words as common as they are. It only picks which of
    several sound gates to use: a poor estimate costs speed, never a match."""

    def one(literal: str) -> float:
        word = literal.strip()
        if word in _FUNCTION_WORDS:
            return 0.01
        if word in _COMMON_WORDS:
            return 0.002
        estimate = 1.0
        for char in literal:
            estimate *= _LETTER_FREQUENCY.get(char, 0.005 if char.isascii() else 0.0005)
        return estimate

    return sum(one(literal) for literal in strings)


def _alternatives(items: Any) -> list[Any]:
    """The top-level alternatives of a parsed pattern (one, if it is not an alternation)."""
    while len(items) == 1 and items[0][0] is _sre.SUBPATTERN and not items[0][1][1] and not items[0][1][2]:
        items = items[0][1][3]
    if len(items) == 1 and items[0][0] is _sre.BRANCH:
        return list(items[0][1][1])
    return [items]


def _needs(items: Any) -> tuple[frozenset[str], ...]:
    """Sets of strings each of which has a member in every match of `items`: what a match
    from the k-th element on begins with, for each k; the rarest few are kept."""
    found: set[frozenset[str]] = set()
    for k, (op, arg) in enumerate(items):
        if k and items[k - 1][0] is _sre.LITERAL:
            continue  # inside a run of literals: the run's own start says as much
        if op in (_sre.AT, _sre.ASSERT, _sre.ASSERT_NOT) or (op in _REPEATS and arg[0] == 0):
            continue  # from an assertion or an optional part: what follows it says more
        prefixes = _literals(items[k:])
        if prefixes is not None:
            found.add(_shortest({s for _, s in prefixes}, inside=True))
    chosen: list[frozenset[str]] = []
    for strings in sorted(found, key=lambda strings: (_frequency(strings), sorted(strings))):
        if chosen and (len(chosen) == _NEEDS_PER_ALTERNATIVE or _frequency(strings) > _COMMON):
            break  # a second set of common words would only add hits to look through
        if not any(all(any(b in a for b in strings) for a in kept) for kept in chosen):  # not implied by one kept
            chosen.append(strings)
    return tuple(chosen)


@dataclass(frozen=True, slots=True)
class _Gate:
    starts: frozenset[str] | None
    """A match begins with one of these (None: anywhere, the pattern runs over the whole text)."""
    line_starts: tuple[str, ...]
    """... or at a line start with one of these ("" = any line start)."""
    needs: tuple[tuple[frozenset[str], ...], ...] | None
    """Per alternative, sets each of which must have a member in the text (None: no condition)."""


_NO_GATE: Final = _Gate(None, (), None)


def _gate(pattern: re.Pattern[str]) -> _Gate:
    if _sre is None or pattern.flags & re.IGNORECASE:
        return _NO_GATE
    parsed = _sre.parse(pattern.pattern, pattern.flags)
    prefixes = _literals(parsed)
    if prefixes is None or parsed.getwidth()[0] == 0:  # could begin anywhere, or match nothing
        return _NO_GATE
    alternatives = [_needs(items) for items in _alternatives(parsed)]
    return _Gate(
        starts=_shortest({s for line, s in prefixes if not line}, inside=False),
        line_starts=tuple(sorted(_shortest({s for line, s in prefixes if line}, inside=False))),
        needs=None if not all(alternatives) else tuple(alternatives),
    )


class _Literals:
    """Every occurrence of a fixed set of literals in a text, in one pass.

    pyahocorasick looks a character up among the root's edges, so each distinct first
    character costs on every character of the text (a hundred CJK and Cyrillic first
    characters made an English text 2x slower to scan). Literals that begin with an ASCII
    character go into the automaton; the others are looked for only where the text has one
    of their first characters (never, in ASCII text).
    """

    def __init__(self, literals: Iterable[str]) -> None:
        self._automaton = ahocorasick.Automaton()
        wide: dict[str, list[str]] = {}
        for literal in sorted(set(literals)):
            if literal[0].isascii():
                self._automaton.add_word(literal, literal)
            else:
                wide.setdefault(literal[0], []).append(literal)
        self._automaton.make_automaton()
        self._wide = {first: tuple(words) for first, words in wide.items()}
        self._wide_first = re.compile("[" + "".join(re.escape(c) for c in sorted(wide)) + "]") if wide else None

    def scan(self, text: str) -> list[tuple[int, str]]:
        """(end, literal) of every occurrence, overlapping ones too; `end` is the last character's index."""
        found: list[tuple[int, str]] = list(self._automaton.iter(text)) if text else []
        if self._wide_first is not None and not text.isascii():
            for match in self._wide_first.finditer(text):
                at = match.start()
                found.extend((at + len(w) - 1, w) for w in self._wide[text[at]] if text.startswith(w, at))
        return found


@dataclass(frozen=True, slots=True)
class _Tables:
    gates: tuple[_Gate, ...]
    """Per rule, in RULES order."""
    literals: _Literals
    """Every start and needed string of every rule."""
    sets_with: dict[str, frozenset[int]]
    """For each needed string, the needed sets (by number) it is a member of."""
    opens_on: tuple[tuple[frozenset[int], ...] | None, ...]
    """Per rule, per alternative, the sets that must all have a member in the text (None: the
    rule always runs)."""
    rules_needing: dict[int, tuple[int, ...]]
    """For each needed set, the rules (by index in RULES) that one of whose alternatives needs it."""
    always: frozenset[int]
    """Rules that run whatever the text holds."""


@functools.cache
def _tables() -> _Tables:
    """The gate, derived on first use (some 20 ms; `InjectionInspector.warm` does it at start-up)."""
    gates = tuple(_gate(rule.pattern) for rule in RULES)
    need_sets = sorted({s for gate in gates for sets in gate.needs or () for s in sets}, key=sorted)
    number = {s: i for i, s in enumerate(need_sets)}
    needing: dict[int, list[int]] = {}
    for index, gate in enumerate(gates):
        for s in {s for sets in gate.needs or () for s in sets}:
            needing.setdefault(number[s], []).append(index)
    return _Tables(
        gates=gates,
        literals=_Literals({w for gate in gates for w in gate.starts or ()} | {w for s in need_sets for w in s}),
        sets_with={
            word: frozenset(i for i, s in enumerate(need_sets) if word in s) for s in need_sets for word in s
        },
        opens_on=tuple(
            None if gate.needs is None else tuple(frozenset(number[s] for s in sets) for sets in gate.needs)
            for gate in gates
        ),
        rules_needing={n: tuple(rules) for n, rules in needing.items()},
        always=frozenset(index for index, gate in enumerate(gates) if gate.needs is None),
    )


_GROUP_ABOVE: Final = 1500
"""Literal hits x rules to try above which the hits are grouped by literal first."""
_ASCII_SPACES: Final = {c: " " for c in range(128) if chr(c).isspace() and c != 32}
_OTHER_SPACE: Final = re.compile(r"[^\S ]")


def _spaces_as_blank(lowered: str) -> str:
    """Every whitespace character as " " (offsets kept), as the gate's literals read it."""
    if lowered.isascii():
        return lowered.translate(_ASCII_SPACES)
    return _OTHER_SPACE.sub(" ", lowered)


def _line_starts(text: str) -> list[int]:
    starts = [0]
    at = text.find("\n")
    while at >= 0:
        starts.append(at + 1)
        at = text.find("\n", at + 1)
    return starts


def _matches_at(pattern: re.Pattern[str], text: str, positions: list[int]) -> Iterator[re.Match[str]]:
    """`pattern.finditer(text)`, given every position at which a match could begin (sorted)."""
    resume = 0
    for position in positions:
        if position < resume:
            continue
        match = pattern.match(text, position)  # `^`, `\b` and look-behind see the whole text
        if match is not None:
            resume = match.end()  # never empty: a gated pattern has a minimum width
            yield match


@dataclass(frozen=True, slots=True)
class RuleHit:
    kind: str
    start: int
    end: int
    """Offsets of the match in the text the rules were run on."""


def match_rules(text: str, *, from_server: bool = True, gated: bool = True) -> list[RuleHit]:
    """Every rule match in `text` (normalised, any case), in rule order. `from_server=False`
    (text from the client) skips the rules that only make sense for content from servers.
    `gated=False` runs every pattern over the whole text: the same result, slower (it is
    there to show that). Offsets are into `text` (lower-casing keeps them, except for a
    handful of characters such as U+0130)."""
    lowered = text.lower()
    same_offsets = len(lowered) == len(text)
    hits: list[RuleHit] = []
    for rule, matches in _rule_matches(lowered, from_server, gated):
        for match in matches:
            start = match.start()
            if start > 0 and lowered[start].isalnum() and lowered[start - 1].isalnum():
                continue  # not at a word boundary ("signore", "abundant")
            if rule.confirm is not None and same_offsets and not rule.confirm(text, match):
                continue
            hits.append(RuleHit(rule.kind, start, match.end()))
    return hits


def _rule_matches(lowered: str, from_server: bool, gated: bool) -> Iterator[tuple[Rule, Iterable[re.Match[str]]]]:
    """Per rule that applies, in order, the matches of its pattern in `lowered` (see the gate)."""
    if not gated:
        for rule in RULES:
            if from_server or not rule.server_only:
                yield rule, rule.pattern.finditer(lowered)
        return
    tables = _tables()
    blank = _spaces_as_blank(lowered)
    found = tables.literals.scan(blank)
    satisfied: set[int] = set()
    sets_with = tables.sets_with
    for word in {word for _, word in found}:
        satisfied.update(sets_with.get(word, ()))
    candidates = set(tables.always)  # the rules that need something in `satisfied`, or nothing
    for number in satisfied:
        candidates.update(tables.rules_needing[number])
    opened = [
        index
        for index in sorted(candidates)
        if (from_server or not RULES[index].server_only)
        and ((sets := tables.opens_on[index]) is None or any(needed <= satisfied for needed in sets))
    ]
    ends: dict[str, list[int]] = {}
    if len(found) * len(opened) > _GROUP_ABOVE:  # many rules to try on a long text: index the hits once
        for end, word in found:
            ends.setdefault(word, []).append(end)
    lines: list[int] | None = None
    for index in opened:
        rule, gate = RULES[index], tables.gates[index]
        starts = gate.starts
        if starts is None:
            yield rule, rule.pattern.finditer(lowered)
            continue
        if ends:
            positions = {end - len(word) + 1 for word in starts & ends.keys() for end in ends[word]}
        else:
            positions = {end - len(word) + 1 for end, word in found if word in starts}
        if gate.line_starts:
            lines = lines if lines is not None else _line_starts(lowered)
            positions.update(p for p in lines if blank.startswith(gate.line_starts, p))
        if positions:
            yield rule, _matches_at(rule.pattern, lowered, sorted(positions))


# ---------------------------------------------------------------------------------------------
# Options

_ALL_SURFACES: Final = frozenset(s.value for s in Surface)
STANDARD_SURFACES: Final = ("tool_result", "resource", "prompt", "sampling")
"""Not descriptions: the tool_poisoning inspector reads them, applies these same rules, and
withholds just the poisoned tool, where a block here would refuse the whole listing."""
STANDARD_CLASSIFIER_SURFACES: Final = ("tool_result", "resource", "prompt", "sampling")
REPLACEMENT: Final = "[REMOVED:PROMPT_INJECTION]"


@dataclass(frozen=True, slots=True)
class InjectionPolicy:
    action: Action = Action.BLOCK
    surfaces: frozenset[Surface] = field(default_factory=lambda: frozenset(Surface(s) for s in STANDARD_SURFACES))
    rules_enabled: bool = True
    classifier_enabled: bool = True
    classifier_surfaces: frozenset[Surface] = field(
        default_factory=lambda: frozenset(Surface(s) for s in STANDARD_CLASSIFIER_SURFACES)
    )
    threshold: float = 0.5
    warn_threshold: float | None = 0.35
    max_classifier_chars: int = 262144

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> InjectionPolicy:
        # The generic keys are the gateway's business (a caller may pass a whole config block).
        read = Options(InjectionInspector.name, options)
        action = read.action("action", Action.BLOCK)
        surfaces = read.strings("surfaces", STANDARD_SURFACES, choices=_ALL_SURFACES)
        classifier_surfaces = read.strings("classifier_surfaces", STANDARD_CLASSIFIER_SURFACES, choices=_ALL_SURFACES)
        rules = read.boolean("rules_enabled", True)
        classifier = read.boolean("classifier_enabled", True)
        threshold = read.number("threshold", 0.5, low=0.0, high=1.0)
        warn: float | None = read.number("warn_threshold", min(0.35, threshold), low=0.0, high=1.0)
        if read.has("warn_threshold") and options.get("warn_threshold") is None:
            warn = None  # explicitly off
        elif warn is not None and warn > threshold:
            read.problem("warn_threshold", f"{warn} is above threshold {threshold}")
        max_chars = read.integer("max_classifier_chars", 262144, low=0)
        read.done()
        return cls(
            action=action,
            surfaces=frozenset(Surface(s) for s in surfaces),
            rules_enabled=rules,
            classifier_enabled=classifier,
            classifier_surfaces=frozenset(Surface(s) for s in classifier_surfaces),
            threshold=threshold,
            warn_threshold=warn,
            max_classifier_chars=max_chars,
        )


# ---------------------------------------------------------------------------------------------
# The inspector

_KIND_MESSAGES: Final = {
    "instruction_override": "instruction to override the model's instructions",
    "role_marker": "chat-template role marker or fake conversation turn",
    "important_block": "instruction block addressed to the model",
    "addressed_to_model": "text addressed to an AI model",
    "concealment": "instruction to hide something from the user",
    "exfiltration": "instruction to send data out",
    "tool_invocation": "instruction to call a tool",
    "prompt_extraction": "attempt to extract the system prompt",
    "jailbreak": "jailbreak persona",
    "response_manipulation": "instruction about how the model must answer",
    "classifier": "text classified as prompt injection",
}
_LONG_TOKEN: Final = re.compile(r"[A-Za-z0-9+/_=%-]{24,}")
_EXCERPT_CHARS: Final = 60


def excerpt_of(text: str) -> str:
    """At most ~60 characters of the matched text, whitespace collapsed, long tokens masked."""
    short = " ".join(text.split())
    if len(short) > _EXCERPT_CHARS:
        short = short[:_EXCERPT_CHARS].rstrip() + "…"
    return _LONG_TOKEN.sub("[…]", short)


def head_for(event: Event) -> str:
    """Text travelling to the client (results, resources, prompts, descriptions, sampling) is
    content from elsewhere: the `indirect` head. Text from the client is what a user or the
    model wrote: the `direct` head."""
    return "indirect" if event.direction is Direction.SERVER_TO_CLIENT else "direct"


CACHE_SIZE: Final = 4096
"""Strings whose findings an inspector remembers (a few hundred bytes each)."""
CACHE_MIN_CHARS: Final = 64
"""Shorter strings are not remembered: reading them costs about what hashing does, and a
structured result full of ids and dates would push the long strings out."""

_CacheKey = tuple[bytes, str, bool]
"""(SHA-256 of the text, head, whether the classifier read it): only the hash is kept, not the text."""


@dataclass(slots=True)
class _Pending:
    """A string waiting for the classifier, which scores all strings of a message at once."""

    index: int
    path: Any
    text: str
    spans: list[tuple[int, int]]
    clean: bool
    rule_findings: list[Finding]
    key: _CacheKey | None


CLASSIFY_MIN_WORDS: Final = 3
"""A string of one or two words ("Answer", "Your answer": a form field's title) gives the
classifier nothing to go on, and it scored such labels as injections; the rules still run."""


def _has_words(text: str, count: int) -> bool:
    return len(text.split(None, count - 1)) >= count


_METADATA_PATHS: Final = frozenset({("result", "description")})
"""A prompt's own description in a `prompts/get` result is server metadata, like a tool's
description: `tool_poisoning` judges those, and the classifier, trained on content, flags
ordinary descriptions of prompts ("a plain string becomes a single user message")."""


class InjectionInspector(EveryMessage):
    """Prompt-injection detector (rules + shipped classifier); options in the module docstring:
    action, surfaces, rules_enabled, classifier_enabled, classifier_surfaces, threshold,
    warn_threshold, max_classifier_chars. `cache_size` (constructor only): how many strings'
    findings are remembered by content hash (0: none)."""

    name = "prompt_injection"
    offload_above: int | None = 4096
    """Characters of text above which the pipeline runs this check in a worker thread
    (rules and numpy inference hold no shared mutable state; the cache has a lock)."""

    def __init__(
        self,
        policy: InjectionPolicy | None = None,
        model: InjectionModel | None = None,
        *,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        self.policy = policy or InjectionPolicy()
        self._model = model
        policy = self.policy
        self._uses_model = policy.classifier_enabled and bool(policy.classifier_surfaces & policy.surfaces)
        self._cache: LruCache[_CacheKey, tuple[Finding, ...]] | None = LruCache(cache_size) if cache_size > 0 else None

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Self:
        return cls(InjectionPolicy.from_options(options))

    def warm(self) -> None:
        """Load the classifier and derive the rules' gate at start-up (a few ms each) rather
        than on the first message."""
        if self.policy.rules_enabled:
            _tables()
        if self._uses_model and self._model is None:
            self._model = shipped_model()

    def check(self, event: Event) -> list[Finding]:
        policy = self.policy
        surface = event.surface
        if surface not in policy.surfaces:
            return []
        model = None
        if self._uses_model and surface in policy.classifier_surfaces:
            if self._model is None:
                self._model = shipped_model()
            model = self._model
        if not policy.rules_enabled and model is None:
            return []
        head = head_for(event)
        from_server = head == "indirect"
        budget = policy.max_classifier_chars
        results: list[Sequence[Finding]] = []
        pending: list[_Pending] = []
        normalized_texts: list[TextItem] | None = None  # not needed when every string is remembered
        for position, item in enumerate(event.texts()):
            if item.path in _METADATA_PATHS:
                continue
            text = item.text
            classify = model is not None and budget > 0 and _has_words(text, CLASSIFY_MIN_WORDS)
            key = None
            # A string the classifier reads only in part (over the budget) is not remembered.
            if self._cache is not None and len(text) >= CACHE_MIN_CHARS and (not classify or budget >= len(text)):
                key = (hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest(), head, classify)
                cached = self._cache.get(key)
                if cached is not None:
                    if classify:
                        budget -= len(text)
                    results.append([f if f.path == item.path else replace(f, path=item.path) for f in cached])
                    continue
            if normalized_texts is None:
                normalized_texts = event.normalized_texts()
            normalized = normalized_texts[position].text
            clean = normalized == text  # nothing hidden: offsets agree, chunks need no normalising
            segs = segments(text) if classify else None
            found: list[Finding] = []
            if policy.rules_enabled:
                found = self._rule_findings(item.path, text, normalized, segs, from_server)
            if classify:
                spans = [span for span in pack(segs or [], HEAD_TARGETS[head]) if span[1] <= budget]
                budget -= len(text)
                pending.append(_Pending(len(results), item.path, text, spans, clean, found, key))
                results.append(())
            else:
                results.append(self._done(key, found, text))
        if pending and model is not None:
            self._classify(model, head, pending, results)
        return [finding for found in results for finding in found]

    def _classify(
        self, model: InjectionModel, head: str, pending: list[_Pending], results: list[Sequence[Finding]]
    ) -> None:
        """Score the chunks of every pending string at once, then finish each string."""
        probs = model.flat_probabilities([(p.text, p.spans, p.clean) for p in pending], head)
        policy = self.policy
        floor = policy.threshold if policy.warn_threshold is None else policy.warn_threshold
        hot = np.flatnonzero(probs >= floor).tolist()  # chunks worth a finding, over all strings
        offset = 0
        for waiting in pending:
            end = offset + len(waiting.spans)
            found = waiting.rule_findings
            while hot and hot[0] < end:
                index = hot.pop(0)
                found.append(self._classifier_finding(waiting.path, waiting.text, waiting.spans[index - offset],
                                                      float(probs[index])))
            results[waiting.index] = self._done(waiting.key, found, waiting.text)
            offset = end

    def _done(self, key: _CacheKey | None, found: list[Finding], text: str) -> list[Finding]:
        merged = _merge_overlapping(found, text)
        if key is not None and self._cache is not None:
            self._cache.put(key, tuple(merged))
        return merged

    def _rule_findings(
        self, path: Any, text: str, normalized: str, segs: list[tuple[int, int]] | None, from_server: bool
    ) -> list[Finding]:
        hits = match_rules(normalized, from_server=from_server)
        if not hits:
            return []
        if segs is None:
            segs = segments(text)
        if normalized == text:  # offsets agree: the span is the sentences the match covers
            return [
                self._rule_finding(path, h.kind, _covering(segs, h.start, h.end), text[h.start : h.start + 200])
                for h in hits
            ]
        # Obfuscated text: normalised offsets are not the original's, so find the windows again.
        found = []
        for start, end in pack(segs, RULE_TARGET):
            chunk = normalize(text[start:end])
            for hit in match_rules(chunk, from_server=from_server):
                found.append(self._rule_finding(path, hit.kind, (start, end), chunk[hit.start : hit.start + 200]))
        if not found:  # the phrase spans windows: name the whole string
            hit = hits[0]
            found.append(self._rule_finding(path, hit.kind, (0, len(text)), normalized[hit.start : hit.start + 200]))
        return found

    def _rule_finding(self, path: Any, kind: str, span: tuple[int, int], matched: str) -> Finding:
        return Finding(
            self.name,
            kind,
            _KIND_MESSAGES.get(kind, "prompt injection"),
            action=self.policy.action,
            path=path,
            span=span,
            excerpt=excerpt_of(matched),
            replacement=REPLACEMENT,
        )

    def _classifier_finding(self, path: Any, text: str, span: tuple[int, int], score: float) -> Finding:
        policy = self.policy
        start, end = span
        return Finding(
            self.name,
            "classifier",
            _KIND_MESSAGES["classifier"],
            action=policy.action if score >= policy.threshold else Action.WARN,
            score=round(score, 4),
            path=path,
            span=span,
            excerpt=excerpt_of(normalize(text[start:end])),
            replacement=REPLACEMENT,
        )


def _covering(segs: list[tuple[int, int]], start: int, end: int) -> tuple[int, int]:
    """From the first to the last sentence overlapping [start, end)."""
    inside = [(s, e) for s, e in segs if s < end and e > start]
    return (inside[0][0], inside[-1][1]) if inside else (start, end)


def _merge_overlapping(findings: list[Finding], text: str) -> list[Finding]:
    """One finding per stretch of text (same path): where spans overlap or only whitespace
    separates them, the strictest finding (a rule before the classifier at equal action) is
    kept with the union of the spans, so a redaction never patches overlapping spans and an
    injected paragraph becomes one replacement, not one per sentence."""
    if len(findings) < 2:
        return findings
    ordered = sorted(findings, key=lambda f: f.span or (0, 0))
    merged: list[Finding] = [ordered[0]]
    for finding in ordered[1:]:
        last = merged[-1]
        if last.span is None or finding.span is None or text[last.span[1] : finding.span[0]].strip():
            merged.append(finding)
            continue
        keep = max(last, finding, key=lambda f: (f.action, f.kind != "classifier", f.score))
        span = (min(last.span[0], finding.span[0]), max(last.span[1], finding.span[1]))
        merged[-1] = replace(keep, span=span)
    return merged
