"""Text as a reader sees it, and the characters that make it differ from the bytes.

Obfuscation hides instructions from people and from pattern-matching detectors alike:
ASCII smuggled in Unicode tag characters, zero-width characters splitting a keyword,
bidi overrides reordering what is displayed, terminal escapes hiding or rewriting
output, Cyrillic or Greek look-alikes inside Latin words. `hidden_spans()` finds them
(for the hidden-characters inspector) and `normalize()` undoes them once per string, so
every other detector matches against what the model will actually understand.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

TAG = "tag_characters"
INVISIBLE = "invisible_characters"
BIDI = "bidi_control"
TERMINAL = "terminal_escape"
CONTROL = "control_characters"
VARIATION = "variation_selector_run"
HOMOGLYPH = "mixed_script_word"

# Every class that can be stripped without changing the visible text. The order of the
# alternatives matters: escape sequences are matched whole before a lone ESC/control.
_HIDDEN: Final = re.compile(
    "(?P<" + TAG + ">[\U000e0000-\U000e007f]+)"
    "|(?P<" + TERMINAL + ">\x1b\\[[0-?]*[ -/]*[@-~]|\x1b\\][^\x07\x1b]*(?:\x07|\x1b\\\\)"
    "|\x1b[@-~]|\x9b[0-?]*[ -/]*[@-~])"
    "|(?P<" + BIDI + ">[\u202a-\u202e\u2066-\u2069\u061c]+)"
    "|(?P<" + VARIATION + ">[\U000e0100-\U000e01ef]+)"
    "|(?P<" + INVISIBLE + ">[\u00ad\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u2060-\u2064"
    "\u206a-\u206f\u3164\ufeff\uffa0]+)"
    "|(?P<" + CONTROL + ">[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x80-\x9f]+)"
)
_ASCII_SUSPECT: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ZWJ: Final = "\u200d"


@dataclass(frozen=True, slots=True)
class HiddenSpan:
    kind: str
    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start


def hidden_spans(text: str) -> list[HiddenSpan]:
    """Runs of characters that change what is read without being seen (cheap on plain ASCII)."""
    if text.isascii() and _ASCII_SUSPECT.search(text) is None:
        return []
    spans = []
    for match in _HIDDEN.finditer(text):
        kind = match.lastgroup or INVISIBLE
        start, end = match.span()
        if kind == INVISIBLE and _emoji_joiner(text, start, end):
            continue
        spans.append(HiddenSpan(kind, start, end))
    return spans


def _emoji_joiner(text: str, start: int, end: int) -> bool:
    """A zero-width joiner inside an emoji sequence (👨‍👩‍👧) is how emoji are spelled."""
    if text[start:end] != _ZWJ or start == 0 or end >= len(text):
        return False
    before, after = text[start - 1], text[end]
    return unicodedata.category(before) in ("So", "Mn") or (before == "\ufe0f" and unicodedata.category(after) == "So")


_WORD: Final = re.compile(r"[^\W\d_]{2,}")
_GREEK_OR_CYRILLIC: Final = re.compile(
    "[\u0370-\u03ff\u0400-\u052f\u1c80-\u1c8f\u1f00-\u1fff\u2de0-\u2dff\ua640-\ua69f]"
)


def mixed_script_words(text: str) -> list[tuple[int, int]]:
    """Spans of words that mix Latin with Cyrillic or Greek letters (`paypal` spelled with a Cyrillic a)."""
    if text.isascii() or _GREEK_OR_CYRILLIC.search(text) is None:
        return []  # accents, bullets and CJK cannot make a mixed Latin/Cyrillic/Greek word
    found = []
    for match in _WORD.finditer(text):
        word = match.group()
        if word.isascii():
            continue
        scripts = {_script(ch) for ch in word}
        if "LATIN" in scripts and scripts & {"CYRILLIC", "GREEK"}:
            found.append(match.span())
    return found


@lru_cache(maxsize=4096)
def _script(char: str) -> str:
    if char.isascii():
        return "LATIN"
    return unicodedata.name(char, "UNKNOWN").split(" ", 1)[0]


# Look-alikes folded to the Latin letter they imitate (the ones seen in phishing and
# prompt-injection obfuscation; Unicode's full confusables table is far larger).
_CONFUSABLES: Final = str.maketrans(
    # Cyrillic, then Greek look-alikes (escaped: the letters themselves are indistinguishable here) ...
    (
        "\u0430\u0435\u043e\u0440\u0441\u0443\u0445\u0456\u0458\u0455\u0501\u04bb\u04cf\u051b\u051d\u0410"
        "\u0412\u0415\u041a\u041c\u041d\u041e\u0420\u0421\u0422\u0425\u0423\u0406\u0408\u0405\u03b1\u03bf"
        "\u03c1\u03bd\u03b9\u03ba\u03c4\u03c5\u0391\u0392\u0395\u0396\u0397\u0399\u039a\u039c\u039d\u039f"
        "\u03a1\u03a4\u03a5\u03a7"
    ),
    # ... and the Latin letters they imitate.
    "aeopcyxijsdhlqwABEKMHOPCTXYIJSaopviktuABEZHIKMNOPTYX",
)


def normalize(text: str) -> str:
    """What the text says once hidden characters are gone, compatibility forms unified (NFKC)
    and look-alike letters inside mixed-script words folded to Latin.

    Tag characters are decoded rather than dropped: they spell ASCII, and the smuggled
    instruction is exactly what injection detectors need to see.
    """
    if text.isascii() and _ASCII_SUSPECT.search(text) is None:
        return text
    pieces, last = [], 0
    for span in hidden_spans(text):
        pieces.append(text[last : span.start])
        if span.kind == TAG:
            pieces.append(" " + "".join(chr(ord(c) - 0xE0000) for c in text[span.start : span.end]) + " ")
        last = span.end
    pieces.append(text[last:])
    cleaned = unicodedata.normalize("NFKC", "".join(pieces))
    words = mixed_script_words(cleaned)
    if not words:
        return cleaned
    out, last = [], 0
    for start, end in words:
        out.append(cleaned[last:start])
        out.append(cleaned[start:end].translate(_CONFUSABLES))
        last = end
    out.append(cleaned[last:])
    return "".join(out)
