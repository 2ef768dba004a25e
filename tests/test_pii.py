"""PII: each entity type is found and redacted with its exact replacement, identifiers that
merely look like numbers are left alone, overlaps become one span, and the audit trail never
holds the personal data itself.

Every sentence here was written for this project; card numbers are built with a valid (or
deliberately broken) Luhn check digit from a brand prefix.
"""

from __future__ import annotations

import json
import random
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from mcp_types import JSONRPCRequest, jsonrpc_message_adapter

from guardian.content import JSON
from guardian.decision import Action, Decision
from guardian.errors import ConfigError
from guardian.events import Direction, Event, SessionInfo
from guardian.inspectors import pii_model
from guardian.inspectors.pii import (
    DEFAULT_ENTITIES,
    ENTITIES,
    STRUCTURED,
    Boundaries,
    PiiDetector,
    PiiInspector,
    PiiSpan,
    Scanner,
    analyzer,
    candidate_windows,
    excerpt_of,
    merge,
    safe_end,
    safe_start,
)
from guardian.inspectors.pii_recognizers import luhn
from guardian.pipeline import Pipeline

pytestmark = pytest.mark.anyio

ALL = PiiDetector(ENTITIES)


def card(prefix: str, length: int, *, valid: bool = True) -> str:
    body = prefix + "7" * (length - len(prefix) - 1)
    digits = [body + d for d in "0123456789"]
    return next(n for n in digits if luhn(n) == valid)


def redact(text: str, detector: PiiDetector = ALL) -> str:
    for span in sorted(detector.find(text), key=lambda s: s.start, reverse=True):
        text = text[: span.start] + f"[REDACTED:{span.entity}]" + text[span.end :]
    return text


VISA_19 = card("4", 19)
MC_2_SERIES = card("2720", 16)
AMEX = card("37", 15)
JCB_15 = card("2131", 15)
MAESTRO_12 = card("6759", 12)

CASES: list[tuple[str, str]] = [
    ("Send the invoice to maria.gonzalez@example-shop.com before Friday.",
     "Send the invoice to [REDACTED:EMAIL_ADDRESS] before Friday."),
    ("You can reach the on-call engineer at +44 20 7946 0958.",
     "You can reach the on-call engineer at [REDACTED:PHONE_NUMBER]."),
    ("Call (212) 555-0147 after lunch.", "Call [REDACTED:PHONE_NUMBER] after lunch."),
    ("Mobile: 06 12 34 56 78", "Mobile: [REDACTED:PHONE_NUMBER]"),
    ("Desk line 4567 8901 (office)", "Desk line [REDACTED:PHONE_NUMBER] (office)"),
    ("Charge it to 4111 1111 1111 1111, expiry 09/27.", "Charge it to [REDACTED:CREDIT_CARD], expiry 09/27."),
    (f"The new Mastercard is {MC_2_SERIES}.", "The new Mastercard is [REDACTED:CREDIT_CARD]."),
    (f"Visa {VISA_19} was declined", "Visa [REDACTED:CREDIT_CARD] was declined"),
    (f"amex: {AMEX[:4]} {AMEX[4:10]} {AMEX[10:]}", "amex: [REDACTED:CREDIT_CARD]"),
    (f"JCB card {JCB_15} on file", "JCB card [REDACTED:CREDIT_CARD] on file"),
    (f"Maestro card number {MAESTRO_12}", "Maestro card number [REDACTED:CREDIT_CARD]"),
    ("Wire it to IBAN GB82 WEST 1234 5698 7654 32 today.", "Wire it to IBAN [REDACTED:IBAN_CODE] today."),
    ("my iban is de89370400440532013000", "my iban is [REDACTED:IBAN_CODE]"),
    ("Employee SSN: 536-22-8019", "Employee SSN: [REDACTED:US_SSN]"),
    ("Login from 203.0.113.42 was blocked.", "Login from [REDACTED:IP_ADDRESS] was blocked."),
    ("Peer 2001:db8::8a2e:370:7334 connected", "Peer [REDACTED:IP_ADDRESS] connected"),
    ("Please forward the contract to Maria Gonzalez in legal.",
     "Please forward the contract to [REDACTED:PERSON] in legal."),
    ("Dear Mr. Olsen, your order has shipped.", "Dear Mr. [REDACTED:PERSON], your order has shipped."),
]


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[1].split("[REDACTED:")[1][:12] for c in CASES])
def test_each_entity_is_redacted_exactly(text: str, expected: str) -> None:
    assert redact(text) == expected


HARD_NEGATIVES = [
    f"Request {uuid.UUID(int=0x1234_5678_9ABC_DEF0_1234_5678_9ABC_DEF0)} failed after 3 retries.",
    "Merged 7c7d9cf07255bc509cb3acac23db7c6e9b7d180a into main (parent 0f1e2d3c).",
    "Upgraded numpy from 1.26.4 to 2.1.3 on Windows build 10.0.19045.4291.",
    "Order #A-10023 and ORD-2024-558812 shipped; UPS tracking 1Z999AA10123456784.",
    "Order 96504107 shipped on 2024-08-13; tracking id 267056069902.",
    "Job finished at 2024-05-26T16:50:00Z (epoch 1716742200, 1716742200123 ms).",
    "Date: Mon, 27 May 2024 09:15:00 +0000",
    "Total: 1,234,567.89 USD, tax 3846.27 USD, 12 items.",
    "netmask 255.255.255.0 gateway 10.0.3.1, listening on 127.0.0.1:8080, firmware version 1.2.3.4",
    '{"page": 32, "per_page": 100, "total_count": 301965, "latency_ms": 452}',
    "Matrix 2168x3758, lr=0.0004, epoch 53/146, loss 0.0602",
    "Will the Grace period apply in May? Mark the ticket as done.",
    "The Rose Garden and Victoria Station are closed on Sunday.",
    "Translate this paragraph from English to French.",
    "DATABASE_URL=postgres://app:hunter2@db.example.com:5432/app",  # URL credentials: the secrets inspector's
    f"Card {card('4', 16, valid=False)} is not a valid number.",
    f"Reference {MAESTRO_12} belongs to the batch.",  # a 12-digit Maestro-range number without card context
]


@pytest.mark.parametrize("text", HARD_NEGATIVES)
def test_identifiers_and_look_alikes_are_not_flagged(text: str) -> None:
    assert ALL.find(text) == ()


def test_luhn_invalid_numbers_are_not_cards() -> None:
    for prefix, length in [("4", 16), ("4", 19), ("2221", 16), ("37", 15), ("6011", 16), ("35", 16), ("62", 17)]:
        good, bad = card(prefix, length), card(prefix, length, valid=False)
        assert [s.entity for s in ALL.find(f"card {good}")] == ["CREDIT_CARD"]
        assert all(s.entity != "CREDIT_CARD" for s in ALL.find(f"card {bad}"))


def test_context_words_raise_a_weak_match_over_the_threshold() -> None:
    """The shipped pipeline's lemmatizer is what lets presidio see "Phone" before a number."""
    assert [s.entity for s in ALL.find("Phone: 4567 8901")] == ["PHONE_NUMBER"]
    assert ALL.find("Ref: 4567 8901") == ()


def test_overlapping_spans_of_different_types_merge_into_the_higher_score() -> None:
    text = "Call me on 212 55 0147 tonight."
    raw = analyzer(frozenset(ENTITIES), ("US", "GB", "DE", "FR")).analyze(text, language="en", score_threshold=0.5)
    assert {r.entity_type for r in raw} == {"PHONE_NUMBER", "US_SSN"}  # both recognizers claim it
    assert ALL.find(text) == (PiiSpan("PHONE_NUMBER", 11, 22, pytest.approx(0.8)),)
    spans = [PiiSpan("PERSON", 0, 10, 0.6), PiiSpan("EMAIL_ADDRESS", 5, 30, 1.0), PiiSpan("PHONE_NUMBER", 28, 40, 0.7),
             PiiSpan("IP_ADDRESS", 50, 60, 0.6)]
    merged = merge(spans)
    assert merged == [PiiSpan("EMAIL_ADDRESS", 0, 40, 1.0), PiiSpan("IP_ADDRESS", 50, 60, 0.6)]


def test_entities_option_limits_what_is_found_and_cache_returns_the_same_result() -> None:
    text = "Mail jane.doe@example.org or call +1 415 555 2671."
    emails_only = PiiDetector(["EMAIL_ADDRESS"])
    assert [s.entity for s in emails_only.find(text)] == ["EMAIL_ADDRESS"]
    assert emails_only.find(text) is emails_only.find(text)
    uncached = PiiDetector(["EMAIL_ADDRESS"], cache_size=0)
    assert uncached.find(text) == emails_only.find(text) and uncached.find(text) is not uncached.find(text)


def test_concurrent_callers_get_the_same_answers() -> None:
    """The pipeline runs this detector in worker threads for large messages."""
    texts = [text for text, _ in CASES] + HARD_NEGATIVES
    expected = [PiiDetector(ENTITIES, cache_size=0).find(t) for t in texts]
    shared = PiiDetector(ENTITIES, cache_size=8)  # a small cache, so threads also evict each other's entries
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(3):
            assert list(pool.map(shared.find, texts)) == expected


def test_long_strings_are_analysed_in_chunks_with_exact_offsets() -> None:
    filler = "lorem ipsum " * 8_330  # ~100,000 characters: the email straddles the first chunk's end
    text = filler[:99_990] + " ops@example.org " + filler + " +44 20 7946 0958"
    found = PiiDetector(["EMAIL_ADDRESS", "PHONE_NUMBER"]).find(text)
    assert [(s.entity, text[s.start : s.end]) for s in found] == [
        ("EMAIL_ADDRESS", "ops@example.org"),
        ("PHONE_NUMBER", "+44 20 7946 0958"),
    ]


# ---------------------------------------------------------------------------------------------
# Windows: presidio reads only the parts of a string where an entity can be, with the results
# it gives for the whole string

PROSE = [
    "The nightly import finished in 12 minutes and 5 seconds, about 3% faster than on Monday.",
    "Version 2.7.1 of the exporter fixes the retry loop reported by the payments team.",
    "The queue held 1,204,331 messages at peak and drained within 40 minutes.",
    "Median latency is 87 ms for reads and 131 ms for writes across 6 regions.",
    "See https://docs.example.net/ops/queue for the updated runbook before the 21st.",
    "Error rates stayed at 0.04% while traffic grew by 17% week over week.",
    "Two of the nine canaries were paused while the schema migration ran at 02:30.",
    "Disk use on the build hosts fell from 81% to 64% after the cache was pruned.",
    "We will retire the v1 endpoints once the last client moves off them in Q3.",
    "The design review is booked for the 14th; bring the capacity plan for 2025.",
]
TRICKY = [
    "1 2 3 4 5 6 7 8 9 10 11 12 13", "the of and to in a is it the of and to in", "Phone: the the the",
    "see the:1 and of:2", "cAll", "call", "Tel: +1-202-555-0143", "4567 8901 - office", "(0) (20)",
    "GB82 WEST 1234 5698 7654 32", "version 10.2.0.1", "::a:b", "postgres://u:p@db.example.com/x",
]


def whole_string(detector: PiiDetector, text: str) -> tuple[PiiSpan, ...]:
    """presidio over the whole string: what `find` must return for a string that passes the gates."""
    engine = analyzer(detector.entities, detector.regions)
    results = engine.analyze(text, language="en", entities=sorted(detector.entities),
                             score_threshold=detector.min_score)
    return tuple(merge(PiiSpan(r.entity_type, r.start, r.end, float(r.score)) for r in results))


def mixed_document(rng: random.Random, size: int) -> str:
    pool = [text for text, _ in CASES] + HARD_NEGATIVES + PROSE * 3 + TRICKY
    parts: list[str] = []
    while sum(map(len, parts)) < size:
        parts.append(rng.choice(pool))
        parts.append(rng.choice([" ", " ", " ", "\n", "  ", "\t", "", ": ", " - ", "\n\n"]))
    return "".join(parts)


@pytest.mark.parametrize(("entities", "min_score"), [(DEFAULT_ENTITIES, 0.5), (ENTITIES, 0.5), (STRUCTURED, 0.0)],
                         ids=["standard", "with-person", "threshold-0"])
def test_windows_give_the_whole_string_results(entities: tuple[str, ...], min_score: float) -> None:
    rng = random.Random(20240611)
    detector = PiiDetector(entities, min_score=min_score, cache_size=0)
    found = 0
    for _ in range(12):
        text = mixed_document(rng, rng.choice([300, 1500, 4096, 6000]))
        expected = whole_string(detector, text)
        assert detector.find(text) == expected, text
        found += len(expected)
    assert found > 50  # the documents do hold PII


FAR = " Nothing else happened during the rest of the quarter." * 40  # ~2,200 characters


@pytest.mark.parametrize(
    ("text", "phone"),
    [
        # Stop words are no keywords: "Phone" is in context however far back it is.
        ("Phone: " + "of the and to in " * 30 + "4567 8901." + FAR, True),
        # ... unless a colon lemma anywhere in the string lists "the" as a keyword (presidio
        # keeps one keyword list per text): then the five keywords before the number are "the".
        ("Phone " + "the " * 6 + "4567 8901." + FAR, True),
        ("Phone " + "the " * 6 + "4567 8901." + FAR + " see the:1", False),
        # "cAll" is a stop word, "call" is not: "cAll" counts only if "call" is in the string.
        ("cAll 4567 8901." + FAR, False),
        ("cAll 4567 8901." + FAR + " Please call back.", True),
    ],
)
def test_context_that_depends_on_the_rest_of_the_string(text: str, phone: bool) -> None:
    detector = PiiDetector(cache_size=0)
    found = detector.find(text)
    assert found == whole_string(detector, text)
    assert [s.entity for s in found] == (["PHONE_NUMBER"] if phone else [])


def test_prose_with_numbers_costs_only_the_scan() -> None:
    """Version numbers and amounts pass the gates (as before) but seed no window."""
    text = " ".join(PROSE * 6)
    detector = PiiDetector(cache_size=0)
    passes, regions = Scanner(detector.entities).scan(text)
    assert passes and regions == []
    assert detector.find(text) == () == whole_string(detector, text)
    with_email = text + " Questions to ops@example.net please. " + text
    windows = candidate_windows(with_email, Scanner(detector.entities).scan(with_email)[1], 128, 32,
                                Boundaries.of(detector.entities))
    assert len(windows) == 1 and windows[0][1] - windows[0][0] < 400
    assert [s.entity for s in detector.find(with_email)] == ["EMAIL_ADDRESS"]


def test_scan_agrees_with_its_definitions() -> None:
    """The scan reads runs of digits instead of running the gate and seed patterns; it must
    say what they say, for every entity subset."""
    rng = random.Random(7)
    alphabets = ["0123456789" * 4 + " .-()/", "0123456789" * 2 + " .-:abAB\u0131\u017f\u212a@",
                 "0123456789abcdef:. @\n"]
    for _ in range(3000):
        scanner = Scanner(frozenset(rng.sample(sorted(STRUCTURED), rng.randint(1, 6))))
        alphabet = rng.choice(alphabets)
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        fast, defined = scanner.scan(text), scanner.by_definition(text)
        assert fast[0] == defined[0] and sorted(set(fast[1])) == sorted(set(defined[1])), text


@pytest.mark.parametrize(("kind", "entity", "label"), [
    ("PHONE_NUMBER", "+44 (0) 20 7946 0958", ""), ("PHONE_NUMBER", "4567 8901", " - office"),
    ("CREDIT_CARD", "4111 1111 1111 1111", ""), ("US_SSN", "536 22 8019", ""),
    ("IBAN_CODE", "GB82 WEST 1234 5698 7654 32", ""), ("IBAN_CODE", "GB33 BUKB ABCD 2020 1555 55", ""),
])
def test_window_edges_never_cut_an_entity(kind: str, entity: str, label: str) -> None:
    """Nor, for a window's end, the label the phone recognizer reads after a number."""
    text = f"Some words before it, then {entity}{label} and some words after it."
    start = text.index(entity)
    rules = Boundaries.of(frozenset({kind}))
    for position in range(len(text) + 1):
        assert not start < safe_start(text, position, rules) < start + len(entity)
        assert not start < safe_end(text, position, rules) < start + len(entity) + len(label)


# ---------------------------------------------------------------------------------------------
# The inspector on real JSON-RPC messages

SESSION = SessionInfo(session_id="t", transport="test", upstream="crm")
CALL = JSONRPCRequest(jsonrpc="2.0", id=7, method="tools/call", params={"name": "lookup_customer", "arguments": {}})


def tool_result(content: list[dict[str, Any]], structured: dict[str, Any] | None = None) -> Event:
    result: dict[str, Any] = {"content": content, "isError": False}
    if structured is not None:
        result["structuredContent"] = structured
    raw = json.dumps({"jsonrpc": "2.0", "id": 7, "result": result})
    return Event(SESSION, Direction.SERVER_TO_CLIENT, jsonrpc_message_adapter.validate_json(raw), request=CALL)


def tool_call(name: str, arguments: dict[str, Any]) -> Event:
    raw = {"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"name": name, "arguments": arguments}}
    return Event(SESSION, Direction.CLIENT_TO_SERVER, jsonrpc_message_adapter.validate_python(raw))


async def decide(inspector: PiiInspector, event: Event) -> Decision:
    pipeline = Pipeline()
    pipeline.add(inspector)
    return await pipeline.run(event)


RESULT_TEXT = "Customer: Maria Gonzalez\nEmail: maria.gonzalez@example-shop.com\nPhone: +1 415 555 2671\nTier: gold"
RAW_VALUES = ["Maria Gonzalez", "maria.gonzalez@example-shop.com", "+1 415 555 2671", "415 555 2671", "2671"]


async def test_tool_result_is_redacted_in_place_and_the_audit_holds_no_pii() -> None:
    inner = {"customer": {"email": "maria.gonzalez@example-shop.com", "ip": "198.51.100.23"}, "tier": "gold"}
    event = tool_result(
        [{"type": "text", "text": RESULT_TEXT}, {"type": "text", "text": json.dumps(inner)}],
        structured={"owner": "maria.gonzalez@example-shop.com"},
    )
    inspector = PiiInspector.from_options({"entities": list(ENTITIES)})
    decision = await decide(inspector, event)
    assert decision.action is Action.REDACT
    assert decision.patched is not None
    result = decision.patched.model_dump()["result"]
    assert result["content"][0]["text"] == (
        "Customer: [REDACTED:PERSON]\nEmail: [REDACTED:EMAIL_ADDRESS]\nPhone: [REDACTED:PHONE_NUMBER]\nTier: gold"
    )
    assert json.loads(result["content"][1]["text"]) == {
        "customer": {"email": "[REDACTED:EMAIL_ADDRESS]", "ip": "[REDACTED:IP_ADDRESS]"},
        "tier": "gold",
    }
    assert result["structuredContent"] == {"owner": "[REDACTED:EMAIL_ADDRESS]"}
    paths = {f.path for f in decision.findings}
    assert ("result", "content", 1, "text", JSON, "customer", "email") in paths
    record = json.dumps(decision.to_dict()) + " ".join(decision.reasons)
    for value in [*RAW_VALUES, "198.51.100.23", "example-shop"]:
        assert value not in record
    assert {f.excerpt.split()[0] for f in decision.findings if f.excerpt} == {
        "PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "IP_ADDRESS"}


async def test_large_result_is_checked_off_the_event_loop_with_the_same_redaction() -> None:
    filler = "Quarterly numbers were reviewed and the plan was approved without changes. " * 80
    text = filler + "Escalations go to ops.lead@example.org or +44 20 7946 0958." + filler
    assert len(text) > PiiInspector.offload_above  # the pipeline hands it to a worker thread
    decision = await decide(PiiInspector.from_options({}), tool_result([{"type": "text", "text": text}]))
    assert decision.patched is not None
    redacted = filler + "Escalations go to [REDACTED:EMAIL_ADDRESS] or [REDACTED:PHONE_NUMBER]." + filler
    assert decision.patched.model_dump()["result"]["content"][0]["text"] == redacted


def test_excerpt_is_type_keyed_hash_and_length() -> None:
    first, again = excerpt_of("US_SSN", "536-22-8019"), excerpt_of("US_SSN", "536-22-8019")
    assert first == again and first.startswith("US_SSN hmac:") and first.endswith("(11 chars)")
    assert "536" not in first and "8019" not in first
    assert excerpt_of("US_SSN", "536-22-8018") != first


async def test_default_profile_redacts_tool_arguments() -> None:
    event = tool_call("email_jane", {"to": "jane.doe@example.org", "body": "Hi, call me at (212) 555-0147."})
    decision = await decide(PiiInspector.from_options({}), event)
    assert decision.action is Action.REDACT and decision.patched is not None
    params = decision.patched.model_dump()["params"]
    assert params["name"] == "email_jane"
    assert params["arguments"] == {"to": "[REDACTED:EMAIL_ADDRESS]", "body": "Hi, call me at [REDACTED:PHONE_NUMBER]."}


async def test_enterprise_blocks_pii_in_arguments_unless_the_tool_is_allowed() -> None:
    options = {"arguments_action": "block", "allow_tools": ["crm_*", "send_invoice"]}
    inspector = PiiInspector.from_options(options)
    arguments = {"email": "jane.doe@example.org"}
    blocked = await decide(inspector, tool_call("web_search", arguments))
    assert blocked.action is Action.BLOCK
    assert "personal data (email address)" in blocked.reasons[0] and "jane" not in blocked.reasons[0]
    assert (await decide(inspector, tool_call("crm_create_contact", arguments))).action is Action.ALLOW
    assert (await decide(inspector, tool_call("send_invoice", arguments))).action is Action.ALLOW
    # Results of an allowed tool are still redacted (the rule is about what leaves the client).
    result = await decide(inspector, tool_result([{"type": "text", "text": "Contact: jane.doe@example.org"}]))
    assert result.action is Action.REDACT


async def test_directions_and_action_options() -> None:
    result = tool_result([{"type": "text", "text": "Contact: jane.doe@example.org"}])
    call = tool_call("notes", {"text": "jane.doe@example.org"})
    outbound_only = PiiInspector.from_options({"directions": ["client_to_server"], "action": "warn"})
    assert (await decide(outbound_only, result)).action is Action.ALLOW
    assert (await decide(outbound_only, call)).action is Action.WARN
    blocking = PiiInspector.from_options({"action": "block"})
    assert (await decide(blocking, result)).action is Action.BLOCK


async def test_tool_descriptions_are_not_user_data() -> None:
    listing = {"jsonrpc": "2.0", "id": 1, "result": {"tools": [
        {"name": "support", "description": "Escalates to support@example.org", "inputSchema": {"type": "object"}}]}}
    request = JSONRPCRequest(jsonrpc="2.0", id=1, method="tools/list")
    message = jsonrpc_message_adapter.validate_python(listing)
    event = Event(SESSION, Direction.SERVER_TO_CLIENT, message, request=request)
    assert (await decide(PiiInspector.from_options({}), event)).action is Action.ALLOW


def test_from_options_defaults_and_errors() -> None:
    inspector = PiiInspector.from_options({})
    assert inspector.policy.action is Action.REDACT
    assert inspector.policy.directions == frozenset(Direction)
    assert inspector.detector.entities == frozenset(DEFAULT_ENTITIES)
    assert inspector.detector.regions == ("US", "GB", "DE", "FR")
    with pytest.raises(ConfigError) as caught:
        PiiInspector.from_options({"entities": ["EMAIL", "PERSON"], "phone_regions": ["XX"], "min_score": 2,
                                   "cache_size": 1.5, "allow_tool": ["x"], "arguments_action": "drop"})
    problems = "\n".join(caught.value.problems)
    for key in ("entities", "phone_regions", "min_score", "cache_size", "allow_tool", "arguments_action"):
        assert f"$.security.inspectors.pii.{key}:" in problems


def test_nothing_is_downloaded_at_run_time() -> None:
    """presidio's email check must use tldextract's bundled suffix list, never fetch one; the
    pipeline is the shipped directory, loaded by path (presidio downloads a model otherwise)."""
    import tldextract.tldextract

    assert PiiDetector(["EMAIL_ADDRESS"]).find("write to ops@example.org") != ()
    assert tldextract.tldextract.TLD_EXTRACTOR.suffix_list_urls == ()
    engine = pii_model.nlp_engine()
    assert engine.models == [{"lang_code": "en", "model_name": str(pii_model.PIPELINE_DIR)}]
    assert pii_model.PIPELINE_DIR.is_relative_to(Path(pii_model.__file__).parent.parent)


def test_missing_model_data_names_the_fix(tmp_path: Path) -> None:
    pii_model.check()  # the shipped data is in place
    with pytest.raises(pii_model.ModelMissing) as caught:
        pii_model.check(tmp_path / "pipeline", tmp_path / "names.json.gz")
    message = str(caught.value)
    assert "\n" not in message and "python -m guardian.inspectors.pii_model build" in message
    assert pii_model.main(["check"]) == 0
