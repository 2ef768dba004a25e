"""presidio recognizers for the PII inspector, and the analyzer engine built from them.

presidio's own recognizers are used where they hold up offline (email with the bundled
suffix list and not inside URL credentials, US SSN, IBAN made case-insensitive, IP without private/loopback addresses,
netmasks and version numbers); three are replaced:

- CREDIT_CARD: every major IIN range with its lengths (Visa 13/16/19, Mastercard 51-55 and
  2221-2720, Amex, Discover, JCB 15/16-19, Diners, Maestro 12-19, UnionPay, Mir), Luhn
  checked. presidio's pattern misses Mastercard's 2-series, 19-digit Visa, Maestro and
  15-digit JCB.
- PHONE_NUMBER: phone-shaped candidates found by one regex, scored by format (international
  `+CC`, North American, national trunk prefix, grouped digits) and by `phonenumbers`
  validity for the configured regions. presidio runs `PhoneNumberMatcher` over the whole
  text once per region (~2 ms per KB per region); validating only candidates costs a
  fraction of that, and catches numbers in formats no single region accepts.
- PERSON: there is no NER model offline, so names come from a shipped gazetteer (see
  `pii_model`): a known first name followed by capitalised words, a known surname after a
  title or "my name is", and never a phrase made of ordinary English words or a place.

Context words match whole words, through the shipped pipeline's lemmas ("Phones:" -> phone):
presidio's default substring match lets "ring" fire inside "string" and "tel" inside "hotel".
Its enhancer is also made linear in the text (see `LinearContextEnhancer`), and can score
results found in windows of a text as presidio scores them in the whole text
(`WindowArtifacts`, `analyze_windows`; `pii.PiiDetector` chooses the windows).

This module imports presidio, so `guardian.inspectors.pii` imports it lazily.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from collections.abc import Iterable, Sequence
from typing import Any

from guardian.inspectors import pii_model

# Before presidio imports tldextract, whose extractor reads the suffix-list URLs at import time.
pii_model.offline()

import phonenumbers  # noqa: E402
import regex  # type: ignore[import-untyped,unused-ignore]  # noqa: E402  # presidio's dependency: Unicode classes
from presidio_analyzer import (  # noqa: E402
    AnalysisExplanation,
    AnalyzerEngine,
    EntityRecognizer,
    LocalRecognizer,
    RecognizerRegistry,
    RecognizerResult,
)
from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer, LemmaContextAwareEnhancer  # noqa: E402
from presidio_analyzer.nlp_engine import NlpArtifacts  # noqa: E402
from presidio_analyzer.predefined_recognizers import (  # noqa: E402
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    UsSsnRecognizer,
)

# ---------------------------------------------------------------------------------------------
# Our recognizers' common part


class GuardianRecognizer(LocalRecognizer):
    """One of our recognizers: one entity, nothing to load, (start, end, score) from `find`."""

    NAME: str
    ENTITY: str
    CONTEXT: list[str] | None = None

    def __init__(self) -> None:
        super().__init__(supported_entities=[self.ENTITY], context=self.CONTEXT, name=self.NAME)

    def load(self) -> None:
        pass

    def find(self, text: str) -> Iterable[tuple[int, int, float]]:
        raise NotImplementedError

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        return [
            RecognizerResult(
                entity_type=self.ENTITY,
                start=start,
                end=end,
                score=score,
                analysis_explanation=AnalysisExplanation(self.NAME, score),  # the context enhancer writes to it
                recognition_metadata={
                    RecognizerResult.RECOGNIZER_NAME_KEY: self.NAME,
                    RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                },
            )
            for start, end, score in self.find(text)
        ]


# ---------------------------------------------------------------------------------------------
# Credit cards


def luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _r(low: int, high: int) -> range:
    return range(low, high + 1)


# (prefix length, numeric prefix range, allowed lengths, brand)
_IIN: tuple[tuple[int, range, range | tuple[int, ...], str], ...] = (
    (1, _r(4, 4), (13, 16, 19), "visa"),
    (2, _r(51, 55), (16,), "mastercard"),
    (4, _r(2221, 2720), (16,), "mastercard"),
    (2, _r(34, 34), (15,), "amex"),
    (2, _r(37, 37), (15,), "amex"),
    (4, _r(6011, 6011), _r(16, 19), "discover"),
    (3, _r(644, 649), _r(16, 19), "discover"),
    (2, _r(65, 65), _r(16, 19), "discover"),
    (2, _r(62, 62), _r(16, 19), "unionpay"),
    (2, _r(81, 81), _r(16, 19), "unionpay"),
    (2, _r(35, 35), _r(16, 19), "jcb"),  # 3528-3589 assigned; validators (and test generators) take all of 35
    (4, _r(2131, 2131), (15,), "jcb"),
    (4, _r(1800, 1800), (15,), "jcb"),
    (3, _r(300, 305), _r(14, 19), "diners"),
    (4, _r(3095, 3095), _r(14, 19), "diners"),
    (2, _r(36, 36), _r(14, 19), "diners"),
    (2, _r(38, 39), _r(14, 19), "diners"),
    (2, _r(50, 50), _r(12, 19), "maestro"),
    (2, _r(56, 69), _r(12, 19), "maestro"),
    (4, _r(2200, 2204), _r(16, 19), "mir"),
)


def card_brand(digits: str) -> str | None:
    """The brand whose IIN range and length fit `digits`, if any (Luhn not checked)."""
    for size, prefixes, lengths, brand in _IIN:
        if int(digits[:size]) in prefixes and len(digits) in lengths:
            return brand
    return None


_CARD_RUN = re.compile(r"(?<![\w.,+/:-])\d{4,19}(?:[ -]\d{3,6}){0,4}(?![\w-]|[.,:/]\d)")
_GROUP_SEP = re.compile(r"[ -]")


def find_cards(text: str) -> Iterable[tuple[int, int, float]]:
    """(start, end, score) of Luhn-valid numbers in a card IIN range: grouped as cards are
    printed (4-4-4-4, 4-6-5) scores higher than a bare run; 12 digits (Maestro only) needs
    context to pass."""
    for match in _CARD_RUN.finditer(text):
        groups = _GROUP_SEP.split(match.group())
        # Longest run of leading groups that is a card: an expiry date or amount may follow it.
        for count in range(len(groups), 0, -1):
            digits = "".join(groups[:count])
            if not 12 <= len(digits) <= 19 or card_brand(digits) is None or not luhn(digits):
                continue
            end = match.start() + len(" ".join(groups[:count]))
            if count > 1:  # printed in groups: 4-4-4-4 and 4-6-5 are cards' own layouts
                yield match.start(), end, 0.85 if len(groups[0]) == 4 else 0.6
            else:
                yield match.start(), end, 0.3 if len(digits) == 12 else 0.6
            break


class CardRecognizer(GuardianRecognizer):
    NAME = "GuardianCardRecognizer"
    ENTITY = "CREDIT_CARD"
    CONTEXT = ["credit", "card", "creditcard", "visa", "mastercard", "amex", "discover", "jcb", "diners", "maestro",
               "unionpay", "debit", "cc", "payment", "expiry", "expire", "exp"]

    def find(self, text: str) -> Iterable[tuple[int, int, float]]:
        return find_cards(text)


# ---------------------------------------------------------------------------------------------
# Phone numbers

_PHONE = re.compile(
    r"(?<![\w+/.:#-])"
    r"(?:\+\d{1,3}[ .-]?(?:\(0\)[ ]?)?)?"  # +CC, optional (0)
    r"(?:\(\d{1,5}\)[ .-]?)?"  # (area)
    r"\d{1,15}(?:[ .-]\d{1,8}){0,5}"
    r"(?:[ ]?(?:x|ext\.?|extension)[ ]?\d{1,6})?"
    r"(?!\w|-\d|[.,:/]\d)"  # "-Office" may follow (contact cards), a digit may not
)
_EXTENSION = re.compile(r"[ ]?(?:x|ext\.?|extension)[ ]?\d{1,6}$")
_NANP = re.compile(r"(?:\+?1[ .-]?)?(?:\([2-9]\d{2}\)[ ]?|[2-9]\d{2}[ .-])\d{3}[ .-]\d{4}")
_DATE_LIKE = re.compile(r"\d{4}[-./ ]\d{1,2}[-./ ]\d{1,2}|\d{1,2}[-./ ]\d{1,2}[-./ ]\d{4}")
_DECIMAL = re.compile(r"\d+[.,]\d{1,2}")
_THOUSANDS = re.compile(r"\d{1,3}(?:[.,]\d{3})+")
_VERSION = re.compile(r"\d{1,3}(?:\.\d{1,3}){1,3}")
_DOTTED_NUMBER = re.compile(r"\d{2,3}(?:\.\d{2,4}){2,4}")
"""Version-shaped, but grouped as phone numbers are written ("20.79.46.09", "555.123.456")."""
_NOT_DIGIT = re.compile(r"\D")
_PHONE_SEPARATORS = re.compile(r"[ .\-()]+")
_TRUNK = re.compile(r"0[1-9]\d{0,4}|00\d{1,4}")


def phone_score(candidate: str, regions: Sequence[str]) -> float:
    """How phone-like a candidate is: 0 for shapes that are something else (dates, amounts,
    versions), up to 0.75 for an international or North American number."""
    body = _EXTENSION.sub("", candidate)
    digits = _NOT_DIGIT.sub("", body)
    if not 7 <= len(digits) <= 15 or len(set(digits)) <= 2:  # "00 00 00 00": a hex dump, not a number
        return 0.0
    if _DATE_LIKE.fullmatch(body) or _DECIMAL.fullmatch(body) or _THOUSANDS.fullmatch(body):
        return 0.0
    if _VERSION.fullmatch(body) and not _DOTTED_NUMBER.fullmatch(body):
        return 0.0
    grouped = body != digits
    if body.startswith("+"):
        return 0.75 if len(digits) >= 8 and _possible(body, None) else 0.3
    if _NANP.fullmatch(body):
        return 0.7
    score = 0.15
    if any(_valid(body, region) for region in regions):
        score = 0.45
    if grouped:
        groups = [g for g in _PHONE_SEPARATORS.split(body) if g]
        trunk = _TRUNK.fullmatch(groups[0]) is not None  # 030, 0699; 0044
        parens = body.startswith("(")
        if trunk or parens:
            score = max(score, 0.5)
        elif len(groups) >= 3 and all(2 <= len(g) <= 4 for g in groups):
            score = max(score, 0.45)
        else:
            score = max(score, 0.3)
    return score


def _possible(number: str, region: str | None) -> bool:
    try:
        return bool(phonenumbers.is_possible_number(phonenumbers.parse(number, region)))
    except phonenumbers.NumberParseException:
        return False


def _valid(number: str, region: str) -> bool:
    try:
        return bool(phonenumbers.is_valid_number(phonenumbers.parse(number, region)))
    except phonenumbers.NumberParseException:
        return False


_LABEL_AFTER = re.compile(
    r"(?i)[ \t]*[-\u2013(]?[ \t]*(?:office|fax|mobile|cell|home|work|tel|phone|desk|direct|landline)\b"
)
"""Contact cards label a number after it ("28-64-66-98 office"); presidio's context window
only looks back (forward, it counts the number's own tokens as the context words)."""


class PhoneRecognizer(GuardianRecognizer):
    NAME = "GuardianPhoneRecognizer"
    ENTITY = "PHONE_NUMBER"
    CONTEXT = ["phone", "telephone", "tel", "mobile", "cell", "cellphone", "call", "fax", "sms", "whatsapp",
               "contact", "reach", "dial", "landline", "office", "desk", "ring", "hotline", "ph"]

    def __init__(self, regions: Sequence[str]) -> None:
        self.regions = tuple(regions)
        super().__init__()

    def find(self, text: str) -> Iterable[tuple[int, int, float]]:
        for match in _PHONE.finditer(text):
            score = phone_score(match.group(), self.regions)
            if score > 0 and _LABEL_AFTER.match(text, match.end()):
                score = min(1.0, score + 0.35)
            if score > 0:
                yield match.start(), match.end(), score


# ---------------------------------------------------------------------------------------------
# IBAN, IP, SSN, email: presidio's, adjusted


_URL_USERINFO = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s/@]*$")


class EmailAddressRecognizer(EmailRecognizer):
    """presidio's email pattern, minus URL credentials: in `postgres://app:pw@db.example.com`
    the `pw@db.example.com` is a password and a host (the secrets inspector's), not an address."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None,
                regex_flags: int | None = None) -> list[RecognizerResult]:
        results: list[RecognizerResult] = super().analyze(text, entities, nlp_artifacts, regex_flags)
        return [r for r in results if not _URL_USERINFO.search(text[max(0, r.start - 256) : r.start])]


class CaseInsensitiveIban(IbanRecognizer):
    """IBANs typed in lower case ("my iban is gb42nawi…") fail presidio's upper-case pattern."""

    def __init__(self) -> None:
        super().__init__(regex_flags=regex.DOTALL | regex.MULTILINE | regex.IGNORECASE)

    def validate_result(self, pattern_text: str) -> bool | None:
        result: bool | None = super().validate_result(pattern_text.upper())
        return result


_VERSION_BEFORE = re.compile(r"(?i)(?:\bv|version|ver\.?|release|build|firmware|\bv\.)\s*[:=]?\s*$")
_INTERNAL = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
                                                     "fc00::/7"))
"""Private networks (RFC 1918, carrier-grade NAT, unique local): infrastructure in tool output
(kubectl, docker), not a person. Documentation ranges (192.0.2.0/24…) read as public: flagged."""
_NETMASK_OCTETS = frozenset({"0", "128", "192", "224", "240", "248", "252", "254", "255"})


class IpAddressRecognizer(IpRecognizer):
    """IP addresses that can point at a person: public ones; not loopback, link-local, private
    or multicast, not a netmask, not a four-part version number ("version 10.2.0.1")."""

    def invalidate_result(self, pattern_text: str) -> bool:
        if super().invalidate_result(pattern_text):
            return True
        address = ipaddress.ip_interface(pattern_text).ip
        if address.is_loopback or address.is_unspecified or address.is_multicast or address.is_link_local:
            return True
        if any(address in network for network in _INTERNAL if network.version == address.version):
            return True
        octets = pattern_text.split("/")[0].split(".")
        return len(octets) == 4 and octets[0] == "255" and set(octets) <= _NETMASK_OCTETS

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None,
                regex_flags: int | None = None) -> list[RecognizerResult]:
        results: list[RecognizerResult] = super().analyze(text, entities, nlp_artifacts, regex_flags)
        return [r for r in results if not _VERSION_BEFORE.search(text[max(0, r.start - 12) : r.start])]


# ---------------------------------------------------------------------------------------------
# Person names (gazetteer)

# Anna, O'Brien, McDonald, Jean-Luc; not the "Li" of "LiDAR".
_WORD = r"\p{Lu}(?:[\p{Ll}\p{M}]+|['\u2019](?=\p{Lu}))(?:['\u2019\-]?\p{Lu}?[\p{Ll}\p{M}]+)*(?![\p{L}\p{N}])"
_INITIAL = r"\p{Lu}\.?(?![\p{L}\p{N}'\u2019])"
_NAME_TOKEN = regex.compile(rf"(?<![\p{{L}}\p{{N}}])(?:{_WORD}|{_INITIAL})")
_POSSESSIVE = re.compile(r"['\u2019]s$")
_PARTICLES = frozenset({"van", "von", "de", "der", "den", "da", "di", "del", "la", "le", "du", "dos", "bin", "ibn",
                        "al", "ter", "ten"})
_HONORIFICS = frozenset({"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "dame", "lord", "lady", "prince",
                         "princess", "king", "queen", "duke", "duchess", "earl", "baron", "baroness", "count",
                         "countess", "saint", "pope", "president", "senator", "governor", "mayor", "general",
                         "captain", "judge", "professor", "doctor", "reverend", "rev", "father", "mother",
                         "brother", "sister", "uncle", "aunt", "officer", "agent", "coach"})
"""Words that stand before a name but are not one; they split a run of capitals."""
_NOT_NAMES = frozenset({
    # languages and nationalities: "from English to French"
    "english", "french", "german", "spanish", "italian", "dutch", "swedish", "danish", "norwegian", "finnish",
    "polish", "czech", "russian", "ukrainian", "greek", "turkish", "portuguese", "chinese", "japanese", "korean",
    "arabic", "hebrew", "hindi", "irish", "scottish", "welsh", "british", "american", "canadian", "australian",
    "indian", "european", "african", "asian", "latin", "christian", "jewish", "muslim", "catholic", "roman",
    # days and months (several are also first names: "in June", "by April")
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "january", "february",
    "march", "april", "may", "june", "july", "august", "september", "october", "november", "december",
})
_PLACE_WORDS = frozenset({"street", "st", "avenue", "ave", "road", "rd", "lane", "drive", "city", "county", "river",
                          "lake", "mount", "park", "bay", "island", "valley", "hills", "beach", "university",
                          "college", "school", "hospital", "church", "inc", "ltd", "llc", "gmbh", "corp", "company"})
_STRONG_CUE = re.compile(
    r"(?i)(?:\b(?:mr|mrs|ms|miss|mx|dr|prof|professor|doctor|sir|dame|lord|lady|judge|senator|president|"
    r"dear|hi|hello|hey|greetings)\.?,?|\bname(?:\s+is|:)|\bnamed|\bcalled|\bsigned)\s*$"
)
"""Before a run of capitals, these make it a name even when no word of it is on the lists."""
_CUE = re.compile(
    r"(?i)\b(?:thanks|regards|sincerely|says|said|told|wrote|asked|contact|"
    r"patient|customer|client|employee|user|i'm|i am|this is|"
    r"kid|son|daughter|child|wife|husband|partner|spouse|friend|colleague|boss|manager|mom|mum|dad|"
    r"grandfather|grandmother|grandma|grandpa|cousin|neighbou?r|coworker|teacher|nurse|lawyer)[\s:,]*$"
)
"""Before a single word on the name lists, these make it a name."""
_VERB_AFTER = re.compile(r"^(?:['\u2019]s\b|\s+(?:is|was|has|had|said|says|will|would|can|could|did|does|told|asked|"
                         r"wrote|lives|lived|works|worked|went|gave|called|likes|loves|thinks)\b)")
"""After a single first name: "Scott is", "Amanda's"."""


def _chains(text: str) -> Iterable[list[tuple[int, int]]]:
    """Runs of capitalised tokens on one line, joined by single spaces (or a name particle)."""
    chain: list[tuple[int, int]] = []
    last_end = -1
    for match in _NAME_TOKEN.finditer(text):
        start, end = match.span()
        gap = text[last_end:start] if chain else ""
        joined = gap == " " or (len(gap) > 2 and gap[0] == gap[-1] == " " and gap.strip().lower() in _PARTICLES)
        if chain and not joined:
            yield chain
            chain = []
        chain.append((start, end))
        last_end = end
    if chain:
        yield chain


def find_names(text: str, names: pii_model.Names) -> Iterable[tuple[int, int, float]]:
    """(start, end, score) of person names: see the module docstring for the rules."""
    for chain in _chains(text):
        part: list[tuple[int, int]] = []
        for start, end in [*chain, (-1, -1)]:
            # Ordinary words split a run ("Entertainment Weekly" is no name); so do titles.
            word = text[start:end].rstrip(".").lower()
            breaker = start < 0 or (len(word) > 1 and (word in names.common or word in _PLACE_WORDS
                                                       or word in _HONORIFICS or word in _NOT_NAMES))
            if not breaker:
                part.append((start, end))
                continue
            while part and len(text[part[-1][0] : part[-1][1]].rstrip(".")) == 1:
                part.pop()  # a trailing initial is a sentence's "A" or "I", not part of a name
            if part:
                found = _name_span(text, part, names)
                if found is not None:
                    yield found
            part = []


def _name_span(text: str, part: list[tuple[int, int]], names: pii_model.Names) -> tuple[int, int, float] | None:
    start, end = part[0][0], part[-1][1]
    if _POSSESSIVE.search(text[start:end]):
        end -= 2
    score = _name_score(text, start, end, [text[s:e] for s, e in part], names)
    return (start, end, score) if score > 0 else None


def _name_score(text: str, start: int, end: int, tokens: list[str], names: pii_model.Names) -> float:
    words = [_POSSESSIVE.sub("", t) for t in tokens]
    full = [w for w in words if len(w.rstrip(".")) > 1]
    if not full:
        return 0.0
    before = text[max(0, start - 24) : start]
    strong = _STRONG_CUE.search(before) is not None
    if text[start:end] in names.places and not strong:
        return 0.0
    cue = strong or _CUE.search(before) is not None
    known = [w in names.first or w in names.last for w in full]
    first, last = full[0], full[-1]
    if len(full) >= 2:
        if first in names.first and last in names.last:
            return 0.85
        if first in names.first or (known[0] and last in names.last):
            return 0.7
        if all(known) or (any(known) and cue):
            return 0.6
        if last in names.last or len(words) > len(full):  # "Tosh Olsen", "Mohmad R. Vizirov"
            return 0.55
        return 0.55 if strong else (0.4 if any(known) else 0.0)
    if known[0]:
        if cue or (len(words) > 1 and last in names.last):  # "Dr Olsen", "J. Olsen"
            return 0.6
        if first in names.first and _VERB_AFTER.match(text[end : end + 12]):
            return 0.55
        return 0.3
    return 0.5 if strong else 0.0


class NameRecognizer(GuardianRecognizer):
    """PERSON from the gazetteer. Its cues are its own ("my name is", a title right before the
    name, "Scott is"), which presidio's window of single context words cannot express, so it
    declares no presidio context."""

    NAME = "GuardianNameRecognizer"
    ENTITY = "PERSON"

    def __init__(self, names: pii_model.Names) -> None:
        self.names = names
        super().__init__()

    def find(self, text: str) -> Iterable[tuple[int, int, float]]:
        return find_names(text, self.names)


_ANY_STRONG_CUE = regex.compile(
    r"(?i)\b(?:mrs?|ms|dr|prof|dear|hi|hello|hey|name|named|called|signed)\b"
    r"|(?-i:\p{Lu}\p{Ll}+ \p{Lu}\.? \p{Lu}\p{Ll})"  # a middle initial: "Mohmad R. Vizirov"
)


def name_gate(text: str, names: pii_model.Names) -> bool:
    """Cheap: could `find_names` find anything (a word on the name lists, or a title)?"""
    for match in _NAME_TOKEN.finditer(text):
        word = _POSSESSIVE.sub("", match.group())
        if word in names.first or word in names.last:
            return True
    return _ANY_STRONG_CUE.search(text) is not None


# ---------------------------------------------------------------------------------------------
# Windows: presidio over the parts of a text where an entity can be (see `pii.candidate_windows`)


class WindowTooSmall(Exception):
    """A context walk reached a window's edge with more text beyond it: analyse a wider window."""


class NeedWholeText(Exception):
    """A keyword test depends on tokens outside the windows ("cAll" is a stop word, "call" a
    context word, and presidio's keyword list is one per text): analyse the whole text."""


_WHITESPACE = re.compile(r"\s")


class WindowArtifacts(NlpArtifacts):
    """presidio's NLP artifacts for windows of `text` joined by newlines, for context scores
    equal to those presidio gives over the whole text. presidio lemmatizes and keyword-filters
    every token although context scoring reads a few per result; here only spaCy's tokenizer
    runs (the shipped pipeline's other step is a lookup lemmatizer, emulated per token) and a
    token's lemma and keyword status are worked out when a context walk reaches it, by
    presidio's rules:

    - a lemma is a keyword if it passes presidio's filter (no stop word, punctuation, "be",
      "-PRON-"), or if any other token of the text contributes it: a lemma with a colon
      contributes its parts ("https://x" gives "https"), and a case variant that passes
      contributes the lower-case form (the context words un-stopped in `analyzer`);
    - a walk that would cross a window's edge into text that is not in the windows raises
      `WindowTooSmall`, so a window result is either presidio's or not returned at all.

    Windows start after, and end before, whitespace: spaCy tokenizes each run of non-space
    characters on its own, so a window's tokens are the whole text's tokens.
    """

    def __init__(self, nlp_engine: Any, text: str, windows: Sequence[tuple[int, int]]) -> None:
        self.text = text
        self.windows = list(windows)
        self.joined = "\n".join(text[start:end] for start, end in self.windows)
        nlp = nlp_engine.get_nlp("en")
        self._tokenizer = nlp.tokenizer
        self._table = nlp.get_pipe("lemmatizer").lookups.get_table("lemma_lookup")
        doc = self._tokenizer(self.joined)
        indices: list[int] = doc.to_array("IDX").tolist()
        super().__init__(entities=[], tokens=doc, tokens_indices=indices, lemmas=[], nlp_engine=nlp_engine,
                         language="en")
        # Per window: its offset in `joined`, its first token, and (last token + 1, text before
        # it, text after it).
        self.offsets: list[int] = []
        self.firsts: list[int] = []
        self.bounds: list[tuple[int, bool, bool]] = []
        offset = 0
        for start, end in self.windows:
            self.offsets.append(offset)
            self.firsts.append(bisect.bisect_left(indices, offset))
            self.bounds.append((bisect.bisect_left(indices, offset + end - start), start > 0, end < len(text)))
            offset += end - start + 1
        self._keywords: dict[int, str | None] = {}
        self._passes: dict[str, bool] = {}
        self._others: dict[str, bool] = {}
        self._runs: list[str] | None = None
        self._run_parts: dict[str, frozenset[str]] = {}

    def to_text(self, position: int) -> int:
        """A position in `joined` as a position in `text`."""
        index = bisect.bisect_right(self.offsets, position) - 1
        return self.windows[index][0] + position - self.offsets[index]

    def context(self, index: int, before: int, after: int) -> list[str]:
        """presidio's `_extract_surrounding_words` from token `index`: `before` + 1 keywords
        walking back, `after` + 1 walking forward, the token itself included in both."""
        window = bisect.bisect_right(self.firsts, index) - 1
        first = self.firsts[window]
        last, text_before, text_after = self.bounds[window]
        return self._walk(index, before, -1, first, last, text_before) + self._walk(
            index, after, 1, first, last, text_after)

    def _walk(self, index: int, count: int, step: int, first: int, last: int, open_edge: bool) -> list[str]:
        words: list[str] = []
        remaining = count + 1
        i = index
        while first <= i < last and remaining > 0:
            word = self._keyword(i)
            if word is not None:
                words.append(word)
                remaining -= 1
            i += step
        if remaining > 0 and open_edge:
            raise WindowTooSmall
        return words

    def _keyword(self, index: int) -> str | None:
        """Token `index`'s lower-case lemma if presidio's keyword list holds it, else None."""
        if index in self._keywords:
            return self._keywords[index]
        text = self.tokens[index].text
        lemma: str = self._table.get(text, text)
        lower = lemma.lower()
        if self._filter(lemma):
            word = None if ":" in lower else lower  # a lemma with a colon is listed as its parts only
        else:
            contributed = self._others.get(lemma)
            if contributed is None:
                contributed = self._others[lemma] = self._contributed(lemma, lower)
            word = lower if contributed else None
        self._keywords[index] = word
        return word

    def _filter(self, lemma: str) -> bool:
        """presidio's keyword filter (`NlpArtifacts.set_keywords`)."""
        passes = self._passes.get(lemma)
        if passes is None:
            engine = self.nlp_engine
            passes = self._passes[lemma] = (
                not engine.is_stopword(lemma, "en") and not engine.is_punct(lemma, "en")
                and lemma != "-PRON-" and lemma != "be"
            )
        return passes

    def _contributed(self, lemma: str, lower: str) -> bool:
        """Whether another token of the text puts `lower` on the keyword list, `lemma` failing
        the filter itself."""
        # Case variants differ only where `analyzer` un-stopped a context word ("call", "Call",
        # "CALL" but not "cALL") and for "-PRON-": rare, and deciding it takes every token.
        if any(self._filter(form) for form in (lower, lower.capitalize(), lower.upper()) if form != lemma):
            raise NeedWholeText
        if ":" in lower:
            return False  # the list holds colon lemmas' parts, never a colon
        return any(lower in self._parts(run) for run in self._colon_runs()
                   if not run.isascii() or lower in run.lower())  # ASCII: a part is a substring

    def _colon_runs(self) -> list[str]:
        """The runs of non-space characters of the whole text that hold a colon."""
        if self._runs is None:
            runs: list[str] = []
            text = self.text
            colon = text.find(":")
            while colon >= 0:
                start = colon
                while start > 0 and not text[start - 1].isspace():
                    start -= 1
                space = _WHITESPACE.search(text, colon)
                end = space.start() if space else len(text)
                runs.append(text[start:end])
                colon = text.find(":", end)
            self._runs = runs
        return self._runs

    def _parts(self, run: str) -> frozenset[str]:
        """Parts of the colon lemmas in `run` that pass the filter (spaCy tokenizes each run of
        non-space characters on its own, so the run alone tokenizes as in the text)."""
        parts = self._run_parts.get(run)
        if parts is None:
            found: set[str] = set()
            for token in self._tokenizer(run):
                lemma = self._table.get(token.text, token.text)
                if ":" in lemma and self._filter(lemma):
                    found.update(lemma.lower().split(":"))
            parts = self._run_parts[run] = frozenset(found)
        return parts


def windows_supported(nlp_engine: Any) -> bool:
    """Whether `WindowArtifacts` reproduces this pipeline: tokenizer plus a lookup lemmatizer
    whose lemmas hold no colon (the shipped one)."""
    nlp = nlp_engine.get_nlp("en")
    if nlp.pipe_names != ["lemmatizer"] or nlp.get_pipe("lemmatizer").mode != "lookup":
        return False
    return not any(":" in lemma for lemma in nlp.get_pipe("lemmatizer").lookups.get_table("lemma_lookup").values())


def analyze_windows(engine: Any, text: str, windows: Sequence[tuple[int, int]], entities: list[str],
                    min_score: float) -> list[RecognizerResult]:
    """presidio's results for `text`, found by analysing only `windows` (all in one call, joined
    by newlines: no pattern crosses a newline). Raises `WindowTooSmall` or `NeedWholeText`
    where that might differ from analysing the whole text."""
    artifacts = WindowArtifacts(engine.nlp_engine, text, windows)
    results: list[RecognizerResult] = engine.analyze(artifacts.joined, language="en", entities=entities,
                                                     score_threshold=min_score, nlp_artifacts=artifacts)
    for result in results:
        start = artifacts.to_text(result.start)
        result.end = start + result.end - result.start
        result.start = start
    return results


def person_results(text: str, min_score: float) -> list[RecognizerResult]:
    """What presidio returns for PERSON on `text`: the name recognizer declares no context, and
    presidio's duplicate removal is per entity type, so no other recognizer changes these."""
    found = [RecognizerResult("PERSON", start, end, score) for start, end, score in find_names(text, pii_model.names())]
    kept: list[RecognizerResult] = EntityRecognizer.remove_duplicates([r for r in found if r.score >= min_score])
    return kept


def presidio_order(results: Iterable[RecognizerResult]) -> list[RecognizerResult]:
    """The order `AnalyzerEngine.analyze` returns results in (its duplicate removal's two sorts)."""
    by_type = sorted(results, key=lambda r: (str(r.entity_type), r.start, -(r.end - r.start), -r.score))
    return sorted(by_type, key=lambda r: (-r.score, r.start, -(r.end - r.start)))


# ---------------------------------------------------------------------------------------------
# The engine


class LinearContextEnhancer(LemmaContextAwareEnhancer):
    """presidio's lemma context enhancer, minus two linear scans per result: the match's token
    (a walk over every token of the text) and keyword membership (a list). On a 4 KB tool
    result with a few dozen hits these made context scoring 70 % of the analysis time, and
    grow with the square of the text."""

    def enhance_using_context(self, text: str, raw_results: list[RecognizerResult], nlp_artifacts: NlpArtifacts,
                              recognizers: list[EntityRecognizer], context: list[str] | None = None
                              ) -> list[RecognizerResult]:
        if isinstance(nlp_artifacts, WindowArtifacts):
            return self._enhance_in_place(text, raw_results, nlp_artifacts, recognizers, context)
        if nlp_artifacts is not None and isinstance(nlp_artifacts.keywords, list):
            # A set where presidio keeps a list: it only ever tests membership.
            nlp_artifacts.keywords = frozenset(nlp_artifacts.keywords)  # type: ignore[assignment]
        results: list[RecognizerResult] = super().enhance_using_context(
            text, raw_results, nlp_artifacts, recognizers, context
        )
        return results

    def _enhance_in_place(self, text: str, results: list[RecognizerResult], artifacts: WindowArtifacts,
                          recognizers: list[EntityRecognizer], context: list[str] | None) -> list[RecognizerResult]:
        """presidio's `enhance_using_context` loop, minus its deep copy of every result (a third
        of context scoring on text dense with PII): these results are fresh from the recognizers
        and nothing else holds them."""
        by_id = {recognizer.id: recognizer for recognizer in recognizers}
        extra = [word.lower() for word in context] if context else []
        key = RecognizerResult.RECOGNIZER_IDENTIFIER_KEY
        for result in results:
            metadata = result.recognition_metadata
            recognizer = by_id.get(metadata[key]) if metadata and key in metadata else None
            if not recognizer or not recognizer.context:
                continue
            if metadata.get(RecognizerResult.IS_SCORE_ENHANCED_BY_CONTEXT_KEY):
                continue
            words = self._extract_surrounding_words(artifacts, text[result.start : result.end], result.start)
            words.extend(extra)
            supportive = self._find_supportive_word_in_context(words, recognizer.context, self.context_matching_mode)
            if supportive != "":
                result.score += self.context_similarity_factor
                result.score = max(result.score, self.min_score_with_context_similarity)
                result.score = min(result.score, ContextAwareEnhancer.MAX_SCORE)
                result.analysis_explanation.set_supportive_context_word(supportive)
                result.analysis_explanation.set_improved_score(result.score)
        return list(results)

    def _extract_surrounding_words(self, nlp_artifacts: NlpArtifacts, word: str, start: int) -> list[str]:
        if not isinstance(nlp_artifacts, WindowArtifacts):
            words: list[str] = super()._extract_surrounding_words(nlp_artifacts, word, start)
            return words
        index = self._find_index_of_match_token(word, start, nlp_artifacts.tokens, nlp_artifacts.tokens_indices)
        return list(set(nlp_artifacts.context(index, self.context_prefix_count, self.context_suffix_count)))

    @staticmethod
    def _find_index_of_match_token(word: str, start: int, tokens: Any, tokens_indices: list[int]) -> int:
        # The first token that starts at `start` or covers it (presidio's rule), by bisection.
        index = max(bisect.bisect_right(tokens_indices, start) - 1, 0)
        if tokens_indices and start >= tokens_indices[index] + len(tokens[index]):
            index += 1
        if not tokens_indices or index >= len(tokens_indices):
            raise ValueError(f"no token at offset {start}")
        return index


def recognizers(entities: Iterable[str], regions: Sequence[str]) -> list[EntityRecognizer]:
    chosen = set(entities)
    built: list[EntityRecognizer] = []
    if "EMAIL_ADDRESS" in chosen:
        built.append(EmailAddressRecognizer(context=["email", "e-mail", "mail", "contact"]))
    if "PHONE_NUMBER" in chosen:
        built.append(PhoneRecognizer(regions))
    if "CREDIT_CARD" in chosen:
        built.append(CardRecognizer())
    if "IBAN_CODE" in chosen:
        built.append(CaseInsensitiveIban())
    if "US_SSN" in chosen:
        built.append(UsSsnRecognizer(context=["ssn", "ss", "social", "security"]))
    if "IP_ADDRESS" in chosen:
        built.append(IpAddressRecognizer(context=["ip", "ipv4", "ipv6", "address", "host", "client", "server"]))
    if "PERSON" in chosen:
        built.append(NameRecognizer(pii_model.names()))
    return built


def context_words() -> list[str]:
    """Every context word of every recognizer (the pipeline's lemma table is trimmed to these)."""
    words: set[str] = set()
    for recognizer in recognizers(
        ["EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS"], ["US"]
    ):
        words.update(recognizer.context)
    return sorted(words)


def analyzer(entities: Iterable[str], regions: Sequence[str]) -> Any:
    """A presidio `AnalyzerEngine` with only the chosen recognizers over the shipped pipeline."""
    registry = RecognizerRegistry(supported_languages=["en"])
    for recognizer in recognizers(entities, regions):
        registry.add_recognizer(recognizer)
    engine = pii_model.nlp_engine()
    # presidio drops stop words before matching context, and spaCy's English list has "call".
    vocab = engine.get_nlp("en").vocab
    for word in context_words():
        for form in {word, word.capitalize(), word.upper()}:
            vocab[form].is_stop = False
    return AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=["en"],
                          context_aware_enhancer=LinearContextEnhancer(context_matching_mode="whole_word"))
