"""Hidden characters: text that reads differently to a model than to the person checking it.

Runs on every string of every message, descriptions and schemas included. Strippable
kinds (zero-width, bidi controls, terminal escapes, control characters, tag characters)
are removed in place (REDACT) or the message is blocked, per profile; ASCII smuggled in
tag characters is an attack rather than formatting, so from `standard` up it blocks.
Words mixing Latin with Cyrillic or Greek letters cannot be "stripped" without changing
the word; they warn, and block in `enterprise`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from guardian.decision import Action, Finding
from guardian.events import Event
from guardian.inspector import EveryMessage
from guardian.inspectors.options import Options
from guardian.normalize import (
    BIDI,
    CONTROL,
    HOMOGLYPH,
    INVISIBLE,
    TAG,
    TERMINAL,
    VARIATION,
    hidden_spans,
    mixed_script_words,
)

_DESCRIPTIONS = {
    TAG: "Unicode tag characters (hidden ASCII)",
    INVISIBLE: "zero-width or invisible characters",
    BIDI: "bidirectional text controls",
    TERMINAL: "terminal escape sequence",
    CONTROL: "control characters",
    VARIATION: "variation selectors (hidden data)",
}


@dataclass(frozen=True, slots=True)
class HiddenCharacterPolicy:
    """What each kind of finding does."""

    strip: Action = Action.REDACT
    tags: Action = Action.BLOCK
    homoglyphs: Action = Action.WARN


class HiddenCharactersInspector(EveryMessage):
    """Options: `action` (strippable kinds: redact | block | warn), `tag_action` (tag-character
    smuggling; defaults to `action`), `homoglyph_action` (look-alike words; defaults to
    `action`, but warn when that is redact: a word cannot be stripped)."""

    name = "hidden_characters"

    def __init__(self, policy: HiddenCharacterPolicy | None = None) -> None:
        self.policy = policy or HiddenCharacterPolicy()

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> HiddenCharactersInspector:
        read = Options(cls.name, options)
        strip = read.action("action", Action.REDACT)
        tags = read.action("tag_action", strip)
        homoglyphs = read.action("homoglyph_action", Action.WARN if strip is Action.REDACT else strip)
        read.done()
        return cls(HiddenCharacterPolicy(strip, tags, homoglyphs))

    def check(self, event: Event) -> list[Finding]:
        findings: list[Finding] = []
        policy = self.policy
        for item in event.texts():
            text = item.text
            for span in hidden_spans(text):
                action = policy.tags if span.kind == TAG else policy.strip
                first = ord(text[span.start])
                findings.append(
                    Finding(
                        self.name,
                        span.kind,
                        _DESCRIPTIONS.get(span.kind, span.kind),
                        action=action,
                        path=item.path,
                        span=(span.start, span.end),
                        replacement="",
                        excerpt=f"{span.length} char(s) from U+{first:04X}",
                    )
                )
            for start, end in mixed_script_words(text):
                findings.append(
                    Finding(
                        self.name,
                        HOMOGLYPH,
                        "a word mixes Latin with Cyrillic or Greek look-alike letters",
                        action=policy.homoglyphs,
                        path=item.path,
                        span=(start, end),
                        excerpt=f"{end - start}-letter word",
                    )
                )
        return findings
