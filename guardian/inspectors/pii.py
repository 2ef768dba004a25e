"""PII: personal data in MCP traffic (emails, phone numbers, card numbers, IBANs, US SSNs, IP
addresses, person names) is redacted to `[REDACTED:<ENTITY>]`, or blocked, per policy.

Detection is presidio-analyzer, fully offline: a blank spaCy pipeline shipped in the package
and loaded by path (no model download), presidio's email/SSN/IBAN/IP recognizers, and our own
card, phone and name recognizers (see `pii_recognizers` for why each was replaced, and
`pii_model` for the shipped data). The engine is built once per process, lazily and under
a lock, and warmed with one sentence.

presidio costs ~0.15 ms per call however short the string and ~3 ms per 4 KB of prose, most
of it spent where nothing can match, so it reads only what can. Cheap gates run first (an '@',
seven digits in a row give or take separators, two letters and two digits…; for PERSON a word
on the name lists or a title): a string that passes none never reaches presidio. Then the
seeds of each enabled entity (a phone's seven linked digits, an IBAN's letters and digits, an
IPv4 quad…) mark regions, and presidio analyses windows around them in one call (`PiiDetector`
says why the results are presidio's for the whole string, and how that is kept). Prose with
version numbers and percentages costs the scan alone (~0.1 ms per 4 KB). Results are cached
by content hash (bounded LRU): tool lists, repeated results and retried calls repeat strings
verbatim.

Spans are found on the original text (`Event.texts()`), so redaction rewrites exactly the
entity. Overlapping spans, of one type or several, are merged into one covering span that
takes the type of its highest-scoring part. The audit excerpt is the entity type, a keyed
hash and the length: a plain hash of an SSN or phone number is reversed by enumeration, so the
key is random per process (sightings correlate within a process, never across the log).

Policy (`from_options`): redact both ways by default (`standard`). `arguments_action` sets a
different action for PII in `tools/call` arguments (enterprise: block), and `allow_tools`
names tools (globs) whose arguments may carry PII (a CRM's `create_contact`).
Descriptions (`tools/list` and the like) are the server's own metadata, not user data: skipped.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

from guardian.decision import Action, Finding
from guardian.errors import ConfigError
from guardian.events import Direction, Event, Kind, Surface
from guardian.inspector import EveryMessage
from guardian.inspectors import pii_model
from guardian.inspectors.lru import LruCache
from guardian.inspectors.options import BOTH_DIRECTIONS, Options
from guardian.inspectors.secrets import keyed_excerpt

ENTITIES: tuple[str, ...] = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_SSN",
    "IP_ADDRESS",
    "PERSON",
)
STRUCTURED = frozenset(ENTITIES) - {"PERSON"}
DEFAULT_ENTITIES: tuple[str, ...] = tuple(e for e in ENTITIES if e in STRUCTURED)
"""PERSON is opt-in: without an NER model, names come from a gazetteer (recall about half of
what NER finds), and a name in tool arguments is usually the point of the call ("films by
Tim Burton"), so redacting it by default would break ordinary use."""
DEFAULT_REGIONS: tuple[str, ...] = ("US", "GB", "DE", "FR")
"""Regions whose national formats validate a phone number without a `+` prefix. Each costs a
parse per candidate; international (+CC) numbers are found whatever the list."""
DEFAULT_MIN_SCORE = 0.5
MAX_CHUNK = 100_000
"""Characters per presidio call (spaCy refuses texts over 1,000,000); chunks overlap by `_OVERLAP`."""
_OVERLAP = 200


_GATES: dict[str, str] = {
    "EMAIL_ADDRESS": r"@",
    "PHONE_NUMBER": r"(?:\d[ ().\-/]{0,3}){7}",
    "US_SSN": r"(?:\d[ .\-]?){9}",
    "CREDIT_CARD": r"(?:\d[ \-]?){12}",
    "IBAN_CODE": r"[A-Za-z]{2}\d{2}",
    "IP_ADDRESS": r"\d\.\d{1,3}\.\d|[0-9A-Fa-f]:[0-9A-Fa-f]{0,4}:",
}
"""Per entity, a substring without which it cannot occur: a string that holds none of them (and,
with PERSON, no name-list word or title) is never analysed. `scan` decides this without
running these (an alternation that starts with a letter class costs ~0.5 ms per 4 KB); they
are its definition and its path for text with non-ASCII digits."""

_SEEDS: dict[str, str] = {
    "EMAIL_ADDRESS": r"@",
    "PHONE_NUMBER": r"\d(?:[ ().\-/]{0,3}\d){6,}",
    "CREDIT_CARD": r"\d(?:[ \-]?\d){11,}",
    "US_SSN": r"[0-9](?:[- .]?[0-9]){8,}",
    "IBAN_CODE": "[A-Za-z\u0131\u017f\u212a]{2}[0-9]{2}",
    "IP_ADDRESS": r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]|:(?=[0-9A-Fa-f]{0,4}:)",
}
"""Per entity, what every match of its recognizers holds, as the recognizers' own patterns read
it: an '@'; a phone body's seven digits, linked by at most three of ` ().-`; a card's twelve
digits and an SSN's nine (ASCII) linked by single separators; an IBAN's two letters (under
IGNORECASE `[A-Z]` also takes U+0131, U+017F and U+212A) and two digits; an IPv4 quad or the
colons of an IPv6 address. Text far from every such seed cannot hold a result."""

_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_FOLDED_LETTERS = _LETTERS | frozenset("\u0131\u017f\u212a")
_HEX = frozenset("0123456789abcdefABCDEF")
_ASCII_RUN = re.compile(r"[0-9]+")
_ASCII_DIGIT = re.compile(r"[0-9]")
_OTHER_DIGIT = re.compile(r"(?![0-9])\d")
_IPV6_COLON = re.compile(r":(?=[0-9A-Fa-f]{0,4}:)")
_WHITESPACE = re.compile(r"\s")
_PHONE_GAP = " ().-/"

_WINDOW_MARGINS: tuple[tuple[int, int] | None, ...] = ((128, 32), (1024, 256), None)
"""Characters of text kept before and after each seed's region, then the whole text: presidio's
context words are the five keywords before a match, which a wider window must hold if the first
cannot (`pii_recognizers.WindowTooSmall`)."""


@dataclass(frozen=True, slots=True)
class PiiSpan:
    entity: str
    start: int
    end: int
    score: float


# ---------------------------------------------------------------------------------------------
# The engine: one per (entities, regions) per process


_ENGINES: dict[tuple[frozenset[str], tuple[str, ...]], Any] = {}
_ENGINE_LOCK = threading.Lock()
_WARM_UP = "Call +1 212 555 0199, mail jane.doe@example.org, card 4111 1111 1111 1111. Mr. John Smith"


def analyzer(entities: frozenset[str], regions: tuple[str, ...]) -> Any:
    """The presidio `AnalyzerEngine` for this configuration, built and warmed on first use."""
    key = (entities, regions)
    engine = _ENGINES.get(key)
    if engine is None:
        with _ENGINE_LOCK:
            engine = _ENGINES.get(key)
            if engine is None:
                pii_model.offline()
                from guardian.inspectors import pii_recognizers

                engine = pii_recognizers.analyzer(sorted(entities), regions)
                engine.analyze(_WARM_UP, language="en", entities=sorted(entities))
                _ENGINES[key] = engine
    return engine


def merge(spans: Iterable[PiiSpan]) -> list[PiiSpan]:
    """Overlapping spans become one span covering them all, typed by the highest score."""
    merged: list[PiiSpan] = []
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if merged and span.start < merged[-1].end:
            last = merged[-1]
            best = last if last.score >= span.score else span
            merged[-1] = PiiSpan(best.entity, last.start, max(last.end, span.end), best.score)
        else:
            merged.append(span)
    return merged


# ---------------------------------------------------------------------------------------------
# Candidates: where in a string an entity can be, found without presidio

Region = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Boundaries:
    """Which patterns can run across a space, so a window may not start or end there."""

    digits: bool  # phone, card, SSN: a space between digits
    phone: bool  # also ") (", and a label after the number ("4567 8901 - office")
    iban: bool  # groups of letters and digits: "GB82 WEST 1234"

    @classmethod
    def of(cls, entities: frozenset[str]) -> Boundaries:
        return cls(bool(entities & {"PHONE_NUMBER", "CREDIT_CARD", "US_SSN"}), "PHONE_NUMBER" in entities,
                   "IBAN_CODE" in entities)

    def joins(self, text: str, space: int) -> bool:
        """Whether a match may hold the space at `space` (no pattern holds two in a row, or a
        newline; an IBAN starts with two digits at most 44 characters before any of its spaces)."""
        before = text[space - 1] if space > 0 else ""
        after = text[space + 1] if space + 1 < len(text) else ""
        if self.digits and (before.isdecimal() or after.isdecimal()):
            return True
        if self.phone and before == ")" and after == "(":
            return True
        return (self.iban and before.isalnum() and after.isalnum()
                and _ASCII_DIGIT.search(text, max(0, space - 44), space) is not None)


def safe_start(text: str, target: int, rules: Boundaries) -> int:
    """The last position at or before `target` where a window may start: after a space or
    newline, before a non-space, where no pattern runs across."""
    position = target
    newline = text.rfind("\n", 0, position)
    while position > 0:
        if newline >= position:
            newline = text.rfind("\n", 0, position)
        space = max(text.rfind(" ", 0, position), newline)
        if space < 0:
            return 0
        start = space + 1
        if start < len(text) and not text[start].isspace() and (text[space] == "\n" or not rules.joins(text, space)):
            return start
        position = space
    return 0


def safe_end(text: str, target: int, rules: Boundaries) -> int:
    """The first position at or after `target` where a window may end: before a space or
    newline, after a non-space, where no pattern runs across (nor a phone's label lookahead)."""
    length = len(text)
    position = target
    newline = text.find("\n", position)
    while position < length:
        if 0 <= newline < position:
            newline = text.find("\n", position)
        space = text.find(" ", position)
        end = min(space, newline) if space >= 0 and newline >= 0 else max(space, newline)
        if end < 0:
            return length
        if end > 0 and not text[end - 1].isspace() and (
            text[end] == "\n"
            or not (rules.joins(text, end) or (rules.phone and text[end - 1] in "-\u2013("))
        ):
            return end
        position = end + 1
    return length


def candidate_windows(text: str, regions: Iterable[Region], before: int, after: int, rules: Boundaries
                      ) -> list[Region]:
    """Disjoint, ordered windows that hold each region with `before`/`after` characters around
    it, widened to safe boundaries."""
    length = len(text)
    windows: list[Region] = []
    for low, high in sorted(regions):
        low, high = max(0, low - before), min(length, high + after)
        if windows and low <= windows[-1][1]:
            if high > windows[-1][1]:
                windows[-1] = (windows[-1][0], safe_end(text, high, rules))
            continue
        start = safe_start(text, low, rules)
        if windows and start <= windows[-1][1]:
            windows[-1] = (windows[-1][0], max(windows[-1][1], safe_end(text, high, rules)))
        else:
            windows.append((start, safe_end(text, high, rules)))
    return windows


def _chunk(text: str, position: int) -> Region:
    """The run of non-space characters around `position` (its start may be earlier: only
    spaces, newlines and tabs are looked for)."""
    start = max(text.rfind(" ", 0, position), text.rfind("\n", 0, position), text.rfind("\t", 0, position)) + 1
    space = _WHITESPACE.search(text, position)
    return start, space.start() if space else len(text)


def _region(entity: str, text: str, start: int, end: int) -> Region:
    """Where results can be around a seed: the whitespace-free run for an address (email, IP);
    a phone's prefix ("+(") and extension (" ext. 123456"); an IBAN's 43 characters."""
    if entity in ("EMAIL_ADDRESS", "IP_ADDRESS"):
        return _chunk(text, start)
    if entity == "PHONE_NUMBER":
        return max(0, start - 3), min(len(text), end + 20)
    if entity == "IBAN_CODE":
        return start, min(len(text), start + 43)
    return start, end


def _chains(runs: list[Region], links: list[bool], digits: int) -> Iterable[Region]:
    """Maximal runs of digit runs joined where `links` allows, holding at least `digits` digits."""
    index, count = 0, len(runs)
    while index < count:
        last, total = index, runs[index][1] - runs[index][0]
        while last < count - 1 and links[last]:
            last += 1
            total += runs[last][1] - runs[last][0]
        if total >= digits:
            yield runs[index][0], runs[last][1]
        index = last + 1


class Scanner:
    """`scan(text)`: whether `_GATES` passes, and the regions around every `_SEEDS` match."""

    def __init__(self, entities: frozenset[str]) -> None:
        self.entities = entities & STRUCTURED
        gates = [_GATES[e] for e in sorted(self.entities)]
        self._gate = re.compile("|".join(gates)) if gates else None
        self._seeds = [(e, re.compile(_SEEDS[e])) for e in sorted(self.entities)]

    def scan(self, text: str) -> tuple[bool, list[Region]]:
        entities = self.entities
        regions: list[Region] = []
        gate = False
        if "EMAIL_ADDRESS" in entities and "@" in text:
            gate = True
            position = text.find("@")
            while position >= 0:
                regions.append(_chunk(text, position))
                position = text.find("@", max(position + 1, regions[-1][1]))
        if "IP_ADDRESS" in entities and ":" in text:
            for match in _IPV6_COLON.finditer(text):
                colon = match.start()
                gate = gate or (colon > 0 and text[colon - 1] in _HEX)
                regions.append(_chunk(text, colon))
        if entities - {"EMAIL_ADDRESS"}:
            if text.isascii() or _OTHER_DIGIT.search(text) is None:
                gate = self._digits(text, regions) or gate
            else:  # other scripts' digits: the definitions themselves
                gate = self._defined_digits(text, regions) or gate
        return gate, regions

    def by_definition(self, text: str) -> tuple[bool, list[Region]]:
        """`scan` by running `_GATES` and `_SEEDS` as written (slower; the reference)."""
        regions: list[Region] = []
        if "EMAIL_ADDRESS" in self.entities:
            regions.extend(_chunk(text, m.start()) for m in re.finditer("@", text))
        if "IP_ADDRESS" in self.entities:
            regions.extend(_chunk(text, m.start()) for m in _IPV6_COLON.finditer(text))
        self._defined_digits(text, regions)
        return self._gate is not None and self._gate.search(text) is not None, regions

    def _defined_digits(self, text: str, regions: list[Region]) -> bool:
        for entity, pattern in self._seeds:
            if entity == "IP_ADDRESS":  # its IPv4 half: the colons are the caller's
                regions.extend(_chunk(text, m.start()) for m in pattern.finditer(text) if m.group() != ":")
            elif entity != "EMAIL_ADDRESS":
                regions.extend(_region(entity, text, *m.span()) for m in pattern.finditer(text))
        return self._gate is not None and self._gate.search(text) is not None

    def _digits(self, text: str, regions: list[Region]) -> bool:
        """`_GATES` and `_SEEDS` for the entities made of digits, from the runs of digits
        (ASCII only: the caller checked) and the gaps between them."""
        entities = self.entities
        runs = [m.span() for m in _ASCII_RUN.finditer(text)]
        if not runs:
            return False
        gaps = [text[runs[i][1] : runs[i + 1][0]] for i in range(len(runs) - 1)]
        gate = False
        if "PHONE_NUMBER" in entities:
            for start, end in _chains(runs, [len(g) <= 3 and not g.strip(_PHONE_GAP) for g in gaps], 7):
                gate = True
                regions.append(_region("PHONE_NUMBER", text, start, end))
        if "CREDIT_CARD" in entities:
            for span in _chains(runs, [g == " " or g == "-" for g in gaps], 12):
                gate = True
                regions.append(span)
        if "US_SSN" in entities:
            for span in _chains(runs, [g == " " or g == "-" or g == "." for g in gaps], 9):
                gate = True
                regions.append(span)
        if "IBAN_CODE" in entities:
            for start, end in runs:
                if end - start < 2 or start < 2:
                    continue
                first, second = text[start - 2], text[start - 1]
                if first in _FOLDED_LETTERS and second in _FOLDED_LETTERS:
                    gate = gate or (first in _LETTERS and second in _LETTERS)
                    regions.append(_region("IBAN_CODE", text, start - 2, start))
        if "IP_ADDRESS" in entities:
            for i in range(len(gaps) - 1):
                if gaps[i] == "." and gaps[i + 1] == "." and runs[i + 1][1] - runs[i + 1][0] <= 3:
                    gate = True
                    if i + 2 < len(gaps) and gaps[i + 2] == "." and runs[i + 2][1] - runs[i + 2][0] <= 3:
                        regions.append(_chunk(text, runs[i][0]))
        return gate


class PiiDetector:
    """Finds PII spans in a string: gates, a bounded cache, then presidio over windows.

    presidio costs about 3 ms per 4 KB of ordinary prose (spaCy's lemmatizer and keyword list
    over every token, every recognizer over every character), most of it where nothing can
    match. So it reads only windows around the seeds (`Scanner`), joined into one call, with
    lemmas worked out only for the tokens a context walk reads (`WindowArtifacts`). The results
    are presidio's for the whole string, spans and scores alike:

    - every recognizer match holds a seed and lies in that seed's region (`_SEEDS`, `_region`);
    - a window starts after and ends before whitespace where no pattern runs across
      (`Boundaries`), so each pattern finds there just the whole string's matches, and their
      lookarounds (12 characters before an IP, 256 before an email but never past whitespace,
      a phone's label after it) stay inside;
    - spaCy tokenizes each run of non-space characters alone, so a window's tokens are the
      string's; a context walk that would leave its window widens the windows, then reads the
      whole string (`WindowTooSmall`); a keyword test that depends on the rest of the string
      reads it (`WindowArtifacts`) or hands the whole string to presidio (`NeedWholeText`);
    - presidio's duplicate removal compares overlapping results only, which share a window.

    PERSON comes from the gazetteer recognizer over the whole string: it has no presidio
    context, and is cheap. The gates (`_GATES`) still decide whether a string is analysed at
    all, and long strings are still analysed in overlapping chunks, so results match the
    whole-string analysis exactly (tests/test_pii.py compares the two on mixed documents).
    """

    def __init__(
        self,
        entities: Iterable[str] = DEFAULT_ENTITIES,
        regions: Sequence[str] = DEFAULT_REGIONS,
        min_score: float = DEFAULT_MIN_SCORE,
        cache_size: int = 4096,
    ) -> None:
        self.entities = frozenset(entities)
        self.regions = tuple(regions)
        self.min_score = min_score
        self.cache_size = cache_size
        self._structured = sorted(self.entities & STRUCTURED)
        self._person = "PERSON" in self.entities
        self._scanner = Scanner(self.entities)
        self._boundaries = Boundaries.of(self.entities)
        self._engine: Any = None  # presidio's, for the structured entities; looked up once
        self._windows = False  # whether the pipeline allows windows; set with `_engine`
        self._cache: LruCache[bytes, tuple[PiiSpan, ...]] = LruCache(cache_size)

    def warm(self) -> None:
        """Build the engine now (start-up) rather than on the first message."""
        if self._structured:
            self._structured_engine()
        if self._person:
            pii_model.offline()
            from guardian.inspectors import pii_recognizers  # noqa: F401  # presidio's import cost, now

            pii_model.names()

    def find(self, text: str) -> tuple[PiiSpan, ...]:
        if not self.entities or len(text) < 3:
            return ()
        gate, regions = self._scanner.scan(text)
        if not gate and not (self._person and self._name_gate(text)):
            return ()
        if not regions and not self._person:
            return ()  # passes a gate, but holds nothing a structured recognizer matches
        key = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        found = tuple(merge(self._analyze(text, regions)))
        self._cache.put(key, found)
        return found

    @staticmethod
    def _name_gate(text: str) -> bool:
        from guardian.inspectors.pii_recognizers import name_gate

        return name_gate(text, pii_model.names())

    def _analyze(self, text: str, regions: list[Region]) -> list[PiiSpan]:
        from guardian.inspectors import pii_recognizers

        spans: list[PiiSpan] = []
        for offset in range(0, max(len(text) - _OVERLAP, 1), MAX_CHUNK - _OVERLAP):
            chunk = text[offset : offset + MAX_CHUNK]
            results = pii_recognizers.person_results(chunk, self.min_score) if self._person else []
            seeds = regions if len(chunk) == len(text) else self._scanner.scan(chunk)[1]
            if seeds:
                results.extend(self._structured_results(chunk, seeds))
            for r in pii_recognizers.presidio_order(results):
                spans.append(PiiSpan(r.entity_type, offset + r.start, offset + r.end, float(r.score)))
        return spans

    def _structured_engine(self) -> Any:
        """The process's engine for this detector's configuration, and whether it allows
        windows, looked up on first use (not per message)."""
        if self._engine is None:
            from guardian.inspectors import pii_recognizers

            engine = analyzer(frozenset(self._structured), self.regions)
            self._windows = pii_recognizers.windows_supported(engine.nlp_engine)
            self._engine = engine
        return self._engine

    def _structured_results(self, text: str, regions: list[Region]) -> list[Any]:
        from guardian.inspectors import pii_recognizers

        engine = self._structured_engine()
        if self._windows:
            for margins in _WINDOW_MARGINS:
                if margins is None:
                    windows = [(0, len(text))]
                else:
                    windows = candidate_windows(text, regions, *margins, self._boundaries)
                try:
                    results: list[Any] = pii_recognizers.analyze_windows(
                        engine, text, windows, self._structured, self.min_score)
                    return results
                except pii_recognizers.WindowTooSmall:
                    continue
                except pii_recognizers.NeedWholeText:
                    break
        results = engine.analyze(text, language="en", entities=self._structured, score_threshold=self.min_score)
        return results


# ---------------------------------------------------------------------------------------------


def excerpt_of(entity: str, value: str) -> str:
    """Type, keyed hash and length: correlates sightings in one process, reveals nothing."""
    return keyed_excerpt(value, entity)


@dataclass(frozen=True, slots=True)
class PiiPolicy:
    action: Action = Action.REDACT
    directions: frozenset[Direction] = BOTH_DIRECTIONS
    arguments_action: Action | None = None
    """For PII in `tools/call` arguments; None = `action`."""
    allow_tools: tuple[str, ...] = ()
    """Globs of tool names whose `tools/call` arguments may carry PII."""

    def tool_allowed(self, tool: str | None) -> bool:
        return tool is not None and any(fnmatch.fnmatchcase(tool, pattern) for pattern in self.allow_tools)


_ARGUMENTS = ("params", "arguments")


class PiiInspector(EveryMessage):
    """Options (`security.inspectors.pii.*`), defaults = the `standard` profile:

    - `action`: redact | block | warn — what PII does (default redact).
    - `entities`: which of EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD, IBAN_CODE, US_SSN,
      IP_ADDRESS, PERSON (default all but PERSON, see `DEFAULT_ENTITIES`).
    - `phone_regions`: ISO 3166 regions for national phone formats (default US, GB, DE, FR).
    - `min_score`: presidio score threshold, 0..1 (default 0.5).
    - `directions`: client_to_server and/or server_to_client (default both).
    - `arguments_action`: block | redact | warn for PII in tools/call arguments (default: `action`).
    - `allow_tools`: tool-name globs whose tools/call arguments may carry PII (default none).
    - `cache_size`: strings whose results are remembered (default 4096; 0 = no cache).
    """

    name = "pii"
    offload_above: int | None = 4096
    """Characters of text above which the pipeline runs this hook in a worker thread: text dense
    with PII costs presidio ~3 ms per KB, too long to hold the event loop."""

    def __init__(self, policy: PiiPolicy | None = None, detector: PiiDetector | None = None) -> None:
        self.policy = policy or PiiPolicy()
        self.detector = detector or PiiDetector()

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Self:
        read = Options(cls.name, options)
        action = read.action("action", Action.REDACT)
        entities = read.strings("entities", DEFAULT_ENTITIES, choices=frozenset(ENTITIES))
        regions = read.strings("phone_regions", DEFAULT_REGIONS)
        min_score = read.number("min_score", DEFAULT_MIN_SCORE, low=0.0, high=1.0)
        directions = read.directions()
        arguments_action = read.action("arguments_action", action) if read.has("arguments_action") else None
        allow_tools = read.strings("allow_tools", ())
        cache_size = read.integer("cache_size", 4096, low=0, high=1_000_000)
        _check_regions(read, regions)
        read.done()
        try:
            pii_model.check()
        except pii_model.ModelMissing as exc:
            raise ConfigError([f"$.security.inspectors.{cls.name}: {exc}"]) from None
        policy = PiiPolicy(action, directions, arguments_action, allow_tools)
        return cls(policy, PiiDetector(entities, regions, min_score, cache_size))

    def warm(self) -> None:
        self.detector.warm()

    def check(self, event: Event) -> list[Finding]:
        policy = self.policy
        if event.direction not in policy.directions or event.surface is Surface.DESCRIPTIONS:
            return []
        action = policy.action
        arguments = event.surface is Surface.TOOL_ARGUMENTS and event.kind is Kind.REQUEST
        if arguments:
            if policy.tool_allowed(event.target):
                return []
            action = policy.arguments_action or action
        if action is Action.ALLOW:
            return []
        findings: list[Finding] = []
        for item in event.texts():
            if arguments and item.path[:2] != _ARGUMENTS:
                continue  # the tool's name is not user data
            for span in self.detector.find(item.text):
                label = span.entity.replace("_", " ").lower()
                findings.append(
                    Finding(
                        self.name,
                        span.entity.lower(),
                        f"personal data ({label}) in message",
                        action=action,
                        score=round(span.score, 3),
                        path=item.path,
                        span=(span.start, span.end),
                        excerpt=excerpt_of(span.entity, item.text[span.start : span.end]),
                        replacement=f"[REDACTED:{span.entity}]",
                    )
                )
        return findings


def _check_regions(read: Options, regions: Sequence[str]) -> None:
    import phonenumbers

    unknown = [r for r in regions if r not in phonenumbers.SUPPORTED_REGIONS]
    if unknown:
        listed = ", ".join(map(repr, unknown))
        read.problem("phone_regions", f"unknown region(s) {listed}; use ISO 3166 codes like 'US'")
