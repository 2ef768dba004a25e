"""PII: personal data in MCP traffic (emails, phone numbers, card numbers, IBANs, US SSNs, IP
addresses, person names) is redacted to `[REDACTED:<ENTITY>]`, or blocked, per policy.

Detection is presidio-analyzer, fully offline: a blank spaCy pipeline shipped in the package
and loaded by path (no model download), presidio's email/SSN/IBAN/IP recognizers, and our own
card, phone and name recognizers (see `pii_recognizers` for why each was replaced, and
`pii_model` for the shipped data). The engine is built once per process, lazily and under
a lock, and warmed with one sentence.

presidio costs ~0.4 ms per call however short the string, so cheap gates run first: one regex
search for what every enabled entity needs (an '@', seven digits in a row give or take
separators, two letters and two digits…), and for PERSON a word on the name lists or a title;
a string that passes no gate never reaches presidio. Results are cached by content hash
(bounded LRU): tool lists, repeated results and retried calls repeat strings verbatim.

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
import hmac
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

from guardian.decision import Action, Finding
from guardian.errors import ConfigError
from guardian.events import Direction, Event, Kind, Surface
from guardian.inspector import EveryMessage
from guardian.inspectors import pii_model
from guardian.inspectors.options import BOTH_DIRECTIONS, Options

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
"""Per entity, a substring without which it cannot occur: one regex search decides whether a
string is worth presidio's ~0.4 ms per call (most strings in MCP traffic are not)."""


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


class PiiDetector:
    """Finds PII spans in a string: gates, a bounded cache, then presidio."""

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
        gates = [_GATES[e] for e in sorted(self.entities & STRUCTURED)]
        self._gate = re.compile("|".join(gates)) if gates else None
        self._cache: OrderedDict[bytes, tuple[PiiSpan, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def warm(self) -> None:
        """Build the engine now (start-up) rather than on the first message."""
        if self.entities:
            analyzer(self.entities, self.regions)

    def _worth_analyzing(self, text: str) -> bool:
        if self._gate is not None and self._gate.search(text):
            return True
        if "PERSON" in self.entities:
            from guardian.inspectors.pii_recognizers import name_gate

            return name_gate(text, pii_model.names())
        return False

    def find(self, text: str) -> tuple[PiiSpan, ...]:
        if not self.entities or len(text) < 3 or not self._worth_analyzing(text):
            return ()
        key = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        found = tuple(merge(self._analyze(text)))
        if self.cache_size:
            with self._lock:
                self._cache[key] = found
                if len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return found

    def _analyze(self, text: str) -> list[PiiSpan]:
        engine = analyzer(self.entities, self.regions)
        entities = sorted(self.entities)
        spans: list[PiiSpan] = []
        for offset in range(0, max(len(text) - _OVERLAP, 1), MAX_CHUNK - _OVERLAP):
            chunk = text[offset : offset + MAX_CHUNK]
            for r in engine.analyze(chunk, language="en", entities=entities, score_threshold=self.min_score):
                spans.append(PiiSpan(r.entity_type, offset + r.start, offset + r.end, float(r.score)))
        return spans


# ---------------------------------------------------------------------------------------------

_KEY = secrets.token_bytes(16)


def excerpt_of(entity: str, value: str) -> str:
    """Type, keyed hash and length: correlates sightings in one process, reveals nothing."""
    digest = hmac.new(_KEY, value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:12]
    return f"{entity} hmac:{digest} ({len(value)} chars)"


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
    """Characters of text above which the pipeline runs this hook in a worker thread: presidio
    costs ~3 ms per KB once a string passes the gates, too long to hold the event loop."""

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
        cache_size = read.number("cache_size", 4096, low=0, high=1_000_000)
        if cache_size != int(cache_size):
            read.problem("cache_size", f"{cache_size!r} is not a whole number")
        _check_regions(read, regions)
        read.done()
        try:
            pii_model.check()
        except pii_model.ModelMissing as exc:
            raise ConfigError([f"$.security.inspectors.{cls.name}: {exc}"]) from None
        policy = PiiPolicy(action, directions, arguments_action, allow_tools)
        return cls(policy, PiiDetector(entities, regions, min_score, int(cache_size)))

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
