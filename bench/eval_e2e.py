"""End-to-end detector accuracy: corpus rows sent through a running gateway.

    .venv/bin/python bench/eval_e2e.py [--per-label N] [--corpus DIR]

The unit evals (bench/eval_*.py) call each detector as a function; this one checks that the
same verdicts come out of the product: an SDK client talks to `guardian wrap --profile P`
in front of bench/corpus_server.py over real pipes. Rows come from the untuned 20 % split
(sha256 of `id`), up to N per label per corpus, deterministically. A row counts as caught
when the gateway blocked it (JSON-RPC error -32010) or changed it (redaction); benign rows
must come back byte-for-byte. For PII rows, every gold span must be gone from what the
client received. Text of rows is never printed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import anyio  # noqa: E402
from mcp import Client, MCPError, StdioServerParameters  # noqa: E402
from mcp.client.stdio import stdio_client  # noqa: E402

from bench.corpus import corpus_missing, id_hash, load, split_of  # noqa: E402
from tests.support.gateway import GUARDIAN  # noqa: E402

DEFAULT_CORPUS = REPO_ROOT.parent / "shared" / "corpus"
BLOCKED = -32010


@dataclass
class Scenario:
    name: str
    file: str
    surface: str
    """tool_result: the row is a tool's answer; tool_arguments: a tool's argument; prompt_arguments."""
    profile: str
    detector: str
    """The detector this corpus measures: a row counts as caught when IT blocked or redacted."""
    marker: str = ""
    """For redacting detectors: text its redactions leave (`[REDACTED:SECRET:`)."""


SCENARIOS = (
    Scenario("indirect injection", "prompt_injection_indirect.jsonl", "tool_result", "standard", "prompt_injection"),
    Scenario("indirect injection, classifier", "prompt_injection_indirect.jsonl", "tool_result", "enterprise",
             "prompt_injection"),
    Scenario("PII", "pii_sentences.jsonl", "tool_result", "standard", "pii", "[REDACTED:"),
    Scenario("secrets", "secrets.jsonl.gz", "tool_result", "standard", "secrets", "[REDACTED:SECRET:"),
    Scenario("argument injection", "tool_args_injection.jsonl", "tool_arguments", "standard", "argument_injection"),
    Scenario("direct injection", "prompt_injection_direct.jsonl", "tool_arguments", "enterprise", "prompt_injection"),
)

# Detectors of one corpus are measured with the others on, as in production; the eval gateway
# only turns pin approval off (enterprise holds every new prompt until a person approves it).
EVAL_CONFIG = {"security": {"inspectors": {"pins": {"enabled": False}}}}


@dataclass
class Tally:
    outcomes: Counter[tuple[int, str]] = field(default_factory=Counter)
    other: Counter[int] = field(default_factory=Counter)
    """Rows changed or blocked by some other detector only (by label)."""
    leaks: int = 0
    structured: int = 0
    seconds: list[float] = field(default_factory=list)

    def caught(self, label: int) -> int:
        return self.outcomes[(label, "blocked")] + self.outcomes[(label, "redacted")]

    def total(self, label: int) -> int:
        return sum(n for (lab, _), n in self.outcomes.items() if lab == label)


def sample(rows: list[dict[str, Any]], per_label: int) -> list[dict[str, Any]]:
    """Untuned-split rows, up to `per_label` of each label, in a fixed pseudo-random order."""
    test = sorted((r for r in rows if split_of(r["id"]) == "test"), key=lambda r: id_hash(r["id"]) // 100)
    picked: list[dict[str, Any]] = []
    for label in (0, 1):
        picked += [r for r in test if r["label"] == label][:per_label]
    return picked


def client_for(profile: str, corpus: Path, config: Path, stack: contextlib.ExitStack) -> Client:
    argv = [*GUARDIAN, "wrap", "--config", str(config), "--profile", profile, "--",
            sys.executable, "bench/corpus_server.py", str(corpus)]
    errlog = stack.enter_context(open("/dev/null", "w"))  # noqa: SIM115
    params = StdioServerParameters(command=argv[0], args=argv[1:], cwd=REPO_ROOT)
    return Client(stdio_client(params, errlog=errlog), mode="legacy", cache=None, read_timeout_seconds=60)


async def outcome(client: Client, scenario: Scenario, row: dict[str, Any]) -> tuple[str, str]:
    """What happened to the row: 'blocked' / 'redacted' (by the scenario's detector), 'other'
    (changed or blocked by another detector only), 'passed' or 'error'; and what arrived."""
    try:
        if scenario.surface == "tool_result":
            result = await client.call_tool("fetch_document", {"id": row["id"]})
            received = "".join(getattr(block, "text", "") for block in result.content)
        elif scenario.surface == "tool_arguments":
            result = await client.call_tool("lookup", {"value": row["text"]})
            return ("error" if result.is_error else "passed"), ""
        else:
            prompt = await client.get_prompt("ask", {"question": row["text"]})
            received = "".join(getattr(m.content, "text", "") for m in prompt.messages)
    except MCPError as exc:
        if exc.error.code != BLOCKED:
            return "error", ""
        reasons = (exc.error.data or {}).get("guardian", {}).get("reasons", [])
        return ("blocked" if any(r.startswith(scenario.detector + ":") for r in reasons) else "other"), ""
    if received == row["text"]:
        return "passed", received
    return ("redacted" if scenario.marker and scenario.marker in received else "other"), received


def leaked(row: dict[str, Any], received: str) -> bool:
    """A PII row whose gold span text still reached the client."""
    values = [s.get("value") or row["text"][s["start"]:s["end"]] for s in structured_spans(row)]
    return any(value and value in received for value in values)


STRUCTURED = {"EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS"}


def structured_spans(row: dict[str, Any]) -> list[dict[str, Any]]:
    """Gold spans of the types the standard profile redacts (names and places are enterprise's)."""
    return [s for s in row.get("spans") or [] if s.get("entity_type") in STRUCTURED]


async def run(args: argparse.Namespace) -> None:
    tallies: dict[str, Tally] = {}
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as scratch:
        config = Path(scratch) / "eval.json"
        config.write_text(json.dumps(EVAL_CONFIG))
        profiles = sorted({s.profile for s in SCENARIOS})
        clients = {p: client_for(p, args.corpus, config, stack) for p in profiles}
        async with contextlib.AsyncExitStack() as entered:
            for client in clients.values():
                await entered.enter_async_context(client)
            for scenario in SCENARIOS:
                path = args.corpus / scenario.file
                if not path.exists():
                    continue
                tally = tallies.setdefault(scenario.name, Tally())
                for row in sample(load(path), args.per_label):
                    started = time.perf_counter()
                    verdict, received = await outcome(clients[scenario.profile], scenario, row)
                    tally.seconds.append(time.perf_counter() - started)
                    tally.outcomes[(row["label"], verdict)] += 1
                    if verdict == "other":
                        tally.other[row["label"]] += 1
                    if row["label"] == 1 and scenario.detector == "pii" and structured_spans(row):
                        tally.structured += 1
                        tally.leaks += leaked(row, received)
    print_report(tallies)


def print_report(tallies: dict[str, Tally]) -> None:
    by_name = {s.name: s for s in SCENARIOS}
    head = (f"{'corpus (surface, profile)':<48} {'pos':>4} {'caught':>6} {'recall':>6} {'neg':>4} {'FP':>3} "
            f"{'FPR':>6} {'other':>5} {'errors':>6} {'med ms':>6}")
    print("End to end through `guardian wrap` (untuned split sample)")
    print(head)
    print("-" * len(head))
    for name, tally in tallies.items():
        scenario = by_name[name]
        pos, neg = tally.total(1), tally.total(0)
        recall = tally.caught(1) / pos if pos else float("nan")
        fpr = tally.caught(0) / neg if neg else float("nan")
        errors = tally.outcomes[(0, "error")] + tally.outcomes[(1, "error")]
        median = sorted(tally.seconds)[len(tally.seconds) // 2] * 1000 if tally.seconds else float("nan")
        label = f"{name} ({scenario.surface}, {scenario.profile})"
        other = f"{tally.other[1]}/{tally.other[0]}"
        print(f"{label:<48} {pos:>4} {tally.caught(1):>6} {recall:>6.3f} {neg:>4} {tally.caught(0):>3} "
              f"{fpr:>6.3f} {other:>5} {errors:>6} {median:>6.2f}")
        if scenario.detector == "pii":
            print(f"  rows with structured PII whose gold span text reached the client: "
                  f"{tally.leaks} of {tally.structured}")
    print("  caught / FP = blocked or redacted by the detector the corpus measures; other = rows (pos/neg)")
    print("  changed or blocked only by another detector of the profile (e.g. PII redacting an e-mail")
    print("  address in a clean e-mail context row), counted in neither")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--per-label", type=int, default=40, help="rows per label per corpus (default 40)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if corpus_missing(args.corpus, hint="DIR"):
        return 0
    args.corpus = args.corpus.resolve()
    anyio.run(run, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
