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
   response_manipulation ("in your reply, ..."), prompt_extraction and jailbreak. One
   Aho-Corasick pass over the text finds which rules' keywords occur at all; only those run.
   response_manipulation and tool_invocation apply to text from servers only: a user may
   well say how to answer and which tool to use.
2. A classifier trained here that ships in the package (`injection_model.py`, trained by
   `bench/train_injection.py`, model card `guardian/data/injection_model.md`): hashed
   n-grams and logistic regression, numpy only at run time. Text from servers is scored one
   sentence at a time by its `indirect` head, text from the client a few sentences at a time
   by its `direct` head; a text scores as its worst chunk.

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
  (default 262144); the rules read everything. Bounds the inline cost (~0.25 ms per KB).

Profiles: basic: not enabled. standard: the defaults. enterprise: every surface but
descriptions, the classifier on all of them, threshold 0.4, warn_threshold 0.2 (measured:
client text recall 0.926 -> 0.938 for FPR 1.2 % -> 1.8 %; lower thresholds add FPR, not recall).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, Self

import ahocorasick

from guardian.decision import Action, Finding
from guardian.events import Direction, Event, Surface
from guardian.inspector import EveryMessage
from guardian.inspectors.injection_model import (
    HEAD_TARGETS,
    RULE_TARGET,
    ChunkScore,
    InjectionModel,
    pack,
    segments,
    shipped_model,
)
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
    keywords: tuple[str, ...]
    """Lower-case substrings of the normalised text, one of which must occur (the gate)."""
    pattern: re.Pattern[str]
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
        ("ignor", "disregard", "forget", "overrid", "overwrit", "bypass", "abandon", "discard", "neglect",
         "set aside", "skip", "follow", "obey", "heed"),
        _rx(
            _EN_OVERRIDE_VERB + r"\b" + _GAP + r"\b" + _EN_PRIOR + r"\b" + _GAP + r"\b" + _EN_ORDERS + r"\b"
            r"|(?:ignore|disregard|forget|override|bypass|abandon|discard)\s+(?:all\s+(?:of\s+)?)?your\s+"
            r"(?:instructions|guidelines|rules|programming|directives|system\s+prompt|training|restrictions|"
            r"safety\s+(?:rules|guidelines|filters)|content\s+polic(?:y|ies))\b"
        ),
    ),
    Rule(
        "instruction_override",
        ("ignor", "disregard", "forget"),
        _rx(
            r"(?:ignore|disregard|forget)\s+(?:everything|all(?:\s+of\s+it)?|anything|what)\s*"
            r"(?:(?:that\s+)?(?:you\s+)?(?:were|was|have\s+been|'ve\s+been|had\s+been)\s+(?:told|said|given|written)\s*)?"
            r"(?:above|before|previously|so\s+far|earlier|up\s+to\s+(?:now|here|this\s+point)|until\s+now|prior)\b"
        ),
    ),
    Rule(
        "instruction_override",
        ("instruction", "task", "objective", "goal", "from now on", "no longer", "directive", "orders"),
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
        ("instrucci", "instrucoes", "instruções", "istruzioni", "instructions", "consignes", "anweisung", "befehl",
         "regeln", "vorgaben", "инструкц", "указан", "команд", "правил", "指令", "指示", "说明", "說明", "命令",
         "规则", "規則", "提示", "要求", "设定", "設定", "ルール", "プロンプト", "directives", "indicazioni",
         "direttive", "regole", "règles", "orientações", "instruktionen"),
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
        ("<|", "[inst", "[/inst", "<<sys", "<</sys", "<start_of_turn", "<end_of_turn", "<system", "</system", "<sys>",
         "</user", "</human"),
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
        ("system", "assistant", "instruction", "chatgpt", "claude", "gpt", "### response", "end of", "beginning of",
         "start of"),
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
        ("<important", "<critical", "<system", "<instruction", "<admin", "<secret", "<hidden", "<ai", "<assistant",
         "<llm", "<agent", "<note to", "<mandatory", "<urgent", "<override", "[system", "[admin", "[ai ",
         "[assistant", "[important", "[hidden", "< important", "< system"),
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
        ("if you are", "if you're", "note to", "attention", "message to", "message for", "instructions for",
         "instructions to", "instruction for", "instruction to", "memo to", "memo for", "note for", "reading this",
         "processing this", "summarizing this", "summarising this", "parsing this", "seeing this"),
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
        ("user", "human", "customer", "operator"),
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
        ("silently", "secretly", "covertly", "quietly", "discreetly"),
        _rx(
            r"(?:silently|secretly|covertly|quietly|discreetly)\b[^.!?\n]{0,30}?\b(?:send|forward|upload|exfiltrate|"
            r"email|post|transmit|call|invoke|leak|copy|share)\b"
        ),
    ),
    Rule(
        "concealment",
        ("usuario", "utilisateur", "benutzer", "nutzer", "anwender", "usuário", "utente", "用户", "用戶", "使用者",
         "ユーザー", "利用者", "пользовател"),
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
        ("](", "<img", "src="),
        # A markdown image/link or <img> whose URL carries a placeholder for the model to fill in.
        _rx(
            r"(?:!?\[[^\]\n]{0,120}\]\(\s*|<img\b[^>]{0,80}\bsrc\s*=\s*[\"']?)(?:https?:)?//[^\s)\"'>]{1,200}[?&/=]"
            r"[^\s)\"'>]{0,120}?(?P<ph>\{\{?[^}\s]{1,40}\}\}?|\$\{?[a-z_]{3,}|<[a-z_ ]{2,40}>|\[[a-z_ ]{3,40}\]|"
            r"%7b[^\s)]{1,40}%7d|insert_|replace_|your_|data\b|secret\b|conversation\b)"
        ),
        confirm=_upper_group("ph"),
    ),
    Rule(
        "exfiltration",
        ("conversation", "chat", "previous messages", "system prompt", "key", "token", "credential", "password",
         "secret", "cookie", "env", "id_rsa", "user", "personal", "~/", "/etc/", ".ssh"),
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
        ("curl", "wget", "invoke-webrequest", "nc "),
        _rx(
            r"(?:curl|wget|invoke-webrequest|nc)\b[^\n]{0,160}(?:~/\.ssh|id_rsa|\.aws/credentials|/etc/passwd|"
            r"/etc/shadow|\.env\b|\$\(\s*(?:cat|env|printenv|whoami|history)\b|`(?:cat|env|printenv)\b)"
        ),
    ),
    # -- instructions to call tools ------------------------------------------------------------
    Rule(
        "tool_invocation",
        ("call", "invoke", "execute", "run", "use", "trigger", "require", "before"),
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
        ("your response", "your answer", "your reply", "your output", "your message", "your next"),
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
        ("respond", "reply", "answer", "write"),
        _rx(
            r"(?:respond|reply|answer|write)\s+(?:only\s+)?(?:in|using|with)\s+(?:\w+\s+){0,2}(?:emojis?|base\s?\d\d|"
            r"hex|binary|morse|cipher|leetspeak|pig\s+latin|reverse|uppercase|all\s+caps)\b"
        ),
        server_only=True,
    ),
    # -- system-prompt extraction, jailbreak personas (mostly direct) ------------------------
    Rule(
        "prompt_extraction",
        ("prompt", "instruction", "system message", "developer message", "text above", "words above"),
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
        ("dan", "stan", "dude", "ucar"),
        # A persona name only in capitals: "Dan" is a name, "DAN" is the jailbreak.
        _rx(r"(?:you\s+are|you're|act\s+as|pretend\s+to\s+be|become|roleplay\s+as)\s+(?:now\s+)?(?:a\s+)?"
            r"(?P<name>dan|stan|dude|ucar)\b"),
        confirm=_upper_group("name"),
    ),
    Rule(
        "jailbreak",
        ("do anything now", "developer mode", "jailbr", "ethical", "moral", "unfiltered", "uncensored", "amoral",
         "unrestricted"),
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


def _automaton() -> ahocorasick.Automaton:
    automaton = ahocorasick.Automaton()
    for keyword in {k for rule in RULES for k in rule.keywords}:
        automaton.add_word(keyword, keyword)
    automaton.make_automaton()
    return automaton


_KEYWORDS: Final = _automaton()


def keywords_in(lowered: str) -> set[str]:
    """Every rule keyword in `lowered`, in one pass (the gate before any regex runs)."""
    return {keyword for _, keyword in _KEYWORDS.iter(lowered)}


@dataclass(frozen=True, slots=True)
class RuleHit:
    kind: str
    start: int
    end: int
    """Offsets of the match in the text the rules were run on."""


def match_rules(text: str, present: set[str] | None = None, *, from_server: bool = True) -> list[RuleHit]:
    """Every rule match in `text` (normalised, any case), in rule order; `present` is
    `keywords_in(text.lower())` when the caller has it. `from_server=False` (text from the
    client) skips the rules that only make sense for content from servers. Offsets are into
    `text` (lower-casing keeps them, except for a handful of characters such as U+0130)."""
    lowered = text.lower()
    if present is None:
        present = keywords_in(lowered)
    if not present:
        return []
    same_offsets = len(lowered) == len(text)
    hits: list[RuleHit] = []
    for rule in RULES:
        if present.isdisjoint(rule.keywords) or (rule.server_only and not from_server):
            continue
        for match in rule.pattern.finditer(lowered):
            start = match.start()
            if start > 0 and lowered[start].isalnum() and lowered[start - 1].isalnum():
                continue  # not at a word boundary ("signore", "abundant")
            if rule.confirm is not None and same_offsets and not rule.confirm(text, match):
                continue
            hits.append(RuleHit(rule.kind, start, match.end()))
    return hits


# ---------------------------------------------------------------------------------------------
# Options

_ALL_SURFACES: Final = frozenset(s.value for s in Surface)
STANDARD_SURFACES: Final = ("tool_result", "resource", "prompt", "sampling")
"""Not descriptions: the tool_poisoning inspector reads them, applies these same rules, and
withholds just the poisoned tool, where a block here would refuse the whole listing."""
STANDARD_CLASSIFIER_SURFACES: Final = ("tool_result", "resource", "prompt", "sampling")
_GATEWAY_KEYS: Final = ("enabled", "monitor", "timeout", "fail_closed")
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
        read = Options(InjectionInspector.name, options)
        for key in _GATEWAY_KEYS:
            read.raw(key, None)  # the gateway's business
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
        max_chars = read.number("max_classifier_chars", 262144, low=0)
        if max_chars != int(max_chars):
            read.problem("max_classifier_chars", f"{max_chars!r} is not a whole number")
        read.done()
        return cls(
            action=action,
            surfaces=frozenset(Surface(s) for s in surfaces),
            rules_enabled=rules,
            classifier_enabled=classifier,
            classifier_surfaces=frozenset(Surface(s) for s in classifier_surfaces),
            threshold=threshold,
            warn_threshold=warn,
            max_classifier_chars=int(max_chars),
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


class InjectionInspector(EveryMessage):
    """Prompt-injection detector (rules + shipped classifier); options in the module docstring:
    action, surfaces, rules_enabled, classifier_enabled, classifier_surfaces, threshold,
    warn_threshold, max_classifier_chars."""

    name = "prompt_injection"
    offload_above: int | None = 4096
    """Characters of text above which the pipeline runs this check in a worker thread
    (rules and numpy inference hold no shared mutable state)."""

    def __init__(self, policy: InjectionPolicy | None = None, model: InjectionModel | None = None) -> None:
        self.policy = policy or InjectionPolicy()
        self._model = model
        policy = self.policy
        self._uses_model = policy.classifier_enabled and bool(policy.classifier_surfaces & policy.surfaces)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Self:
        return cls(InjectionPolicy.from_options(options))

    def warm(self) -> None:
        """Load the classifier at start-up (a few ms) rather than on the first message."""
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
                self.warm()
            model = self._model
        if not policy.rules_enabled and model is None:
            return []
        head = head_for(event)
        budget = policy.max_classifier_chars
        findings: list[Finding] = []
        for item, normalized in zip(event.texts(), event.normalized_texts(), strict=True):
            text = item.text
            present = keywords_in(normalized.text.lower()) if policy.rules_enabled else set()
            if not present and (model is None or budget <= 0):
                continue
            clean = normalized.text == text  # nothing hidden: offsets agree, chunks need no normalising
            segs = segments(text)
            item_findings: list[Finding] = []
            if present:
                from_server = head == "indirect"
                item_findings.extend(self._rule_findings(item.path, text, normalized.text, segs, present, from_server))
            if model is not None and budget > 0:
                spans = [span for span in pack(segs, HEAD_TARGETS[head]) if span[1] <= budget]
                budget -= len(text)
                scores = model.score_chunks(text, head, spans, clean=clean)
                item_findings.extend(self._classifier_findings(item.path, text, scores))
            findings.extend(_merge_overlapping(item_findings, text))
        return findings

    def _rule_findings(
        self, path: Any, text: str, normalized: str, segs: list[tuple[int, int]], present: set[str], from_server: bool
    ) -> list[Finding]:
        hits = match_rules(normalized, present, from_server=from_server)
        if not hits:
            return []
        if normalized == text:  # offsets agree: the span is the sentences the match covers
            return [
                self._rule_finding(path, h.kind, _covering(segs, h.start, h.end), text[h.start : h.start + 200])
                for h in hits
            ]
        # Obfuscated text: normalised offsets are not the original's, so find the windows again.
        found = []
        for start, end in pack(segs, RULE_TARGET):
            chunk = normalize(text[start:end])
            for hit in match_rules(chunk, present & keywords_in(chunk.lower()), from_server=from_server):
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

    def _classifier_findings(self, path: Any, text: str, scores: Sequence[ChunkScore]) -> list[Finding]:
        policy = self.policy
        floor = policy.threshold if policy.warn_threshold is None else policy.warn_threshold
        found = []
        for chunk in scores:
            if chunk.score < floor:
                continue
            action = policy.action if chunk.score >= policy.threshold else Action.WARN
            found.append(
                Finding(
                    self.name,
                    "classifier",
                    _KIND_MESSAGES["classifier"],
                    action=action,
                    score=round(chunk.score, 4),
                    path=path,
                    span=(chunk.start, chunk.end),
                    excerpt=excerpt_of(normalize(text[chunk.start : chunk.end])),
                    replacement=REPLACEMENT,
                )
            )
        return found


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
