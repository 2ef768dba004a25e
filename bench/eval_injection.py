"""Accuracy and speed of the prompt-injection inspector on the labelled corpora.

    python bench/eval_injection.py [--corpus ../shared/corpus] [--per-category] [--threshold 0.5]
    python bench/eval_injection.py --check-gate   # the rules' gate changes no match (all corpora)

Rows are split 80/20 by sha256(id) (`int(hexdigest, 16) % 100 < 20` = test). Rules and the
classifier were tuned and trained on the 80 % only (bench/train_injection.py); the 20 % is
reported here. Every row goes through the real inspector (`InjectionInspector.check`) as the
gateway would show it:

- prompt_injection_direct.jsonl: a client's `tools/call` argument (surface tool_arguments,
  the classifier's `direct` head);
- prompt_injection_indirect.jsonl: a `tools/call` result (surface tool_result, `indirect` head);
- mcp_tool_poisoning.jsonl (out of domain, nothing was tuned on it): a `tools/list` result
  (surface descriptions), to see what each layer would do there.

Three configurations: rules only, classifier only, both (the shipped default). A row counts
as flagged when a finding asks for the configured action (WARN-level findings do not count).
BIPIA reuses one payload in several contexts, so the indirect test rows whose payload also
occurs in the tune split are reported apart from those whose payload is new.
Text of the corpora is never printed: only ids, categories and counts.

Speed is the cost of computing a verdict: the inspectors here remember nothing
(`cache_size=0`); what a string seen again costs (the content-hash cache) is a line of its own.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mcp_types import JSONRPCRequest, JSONRPCResponse  # noqa: E402

from bench.corpus import Table, corpus_missing, load, metrics, split_name, split_of  # noqa: E402
from guardian.decision import Action  # noqa: E402
from guardian.events import Direction, Event, SessionInfo, Surface  # noqa: E402
from guardian.inspectors.injection import InjectionInspector, InjectionPolicy, match_rules  # noqa: E402
from guardian.inspectors.injection_model import shipped_model  # noqa: E402
from guardian.normalize import normalize  # noqa: E402

DEFAULT_CORPUS = REPO.parent / "shared" / "corpus"
SESSION = SessionInfo(session_id="eval", transport="library", upstream="-")
HARD_NEGATIVE = "benign_hard_negative"
TABLE = Table(44, "group", clip=True)
ALL = [surface.value for surface in Surface]


def argument_event(text: str) -> Event:
    call = JSONRPCRequest(jsonrpc="2.0", id=1, method="tools/call", params={"name": "ask", "arguments": {"q": text}})
    return Event(SESSION, Direction.CLIENT_TO_SERVER, call)


_CALL = JSONRPCRequest(jsonrpc="2.0", id=1, method="tools/call", params={"name": "fetch", "arguments": {}})
_LIST = JSONRPCRequest(jsonrpc="2.0", id=1, method="tools/list", params={})


def result_event(text: str) -> Event:
    result = JSONRPCResponse(jsonrpc="2.0", id=1, result={"content": [{"type": "text", "text": text}]})
    return Event(SESSION, Direction.SERVER_TO_CLIENT, result, request=_CALL)


def description_event(row: dict[str, Any]) -> Event:
    tool = {"name": str(row.get("tool_name") or "tool"), "description": row["text"],
            "inputSchema": {"type": "object"}}
    return Event(SESSION, Direction.SERVER_TO_CLIENT, JSONRPCResponse(jsonrpc="2.0", id=1, result={"tools": [tool]}),
                 request=_LIST)


def inspector(mode: str, threshold: float, cache_size: int = 0) -> InjectionInspector:
    options: dict[str, Any] = {"surfaces": ALL, "classifier_surfaces": ALL, "threshold": threshold,
                               "warn_threshold": None, "rules_enabled": mode != "classifier",
                               "classifier_enabled": mode != "rules"}
    return InjectionInspector(InjectionPolicy.from_options(options), cache_size=cache_size)


GATE_FILES = ("prompt_injection_direct.jsonl", "prompt_injection_indirect.jsonl", "mcp_tool_poisoning.jsonl",
              "pii_sentences.jsonl", "tool_args_injection.jsonl")


def check_gate(corpus: Path) -> int:
    """Every rule over every row of every corpus, with the gate and as a full scan of each
    pattern (original and normalised text, as from a server and from the client): the same
    matches, or the ids where they differ."""
    differ: list[str] = []
    calls = matches = 0
    for name in GATE_FILES:
        for row in load(corpus / name):
            for text in {row["text"], normalize(row["text"])}:
                for from_server in (True, False):
                    gated = match_rules(text, from_server=from_server)
                    calls += 1
                    matches += len(gated)
                    if gated != match_rules(text, from_server=from_server, gated=False):
                        differ.append(f"{name} {row['id']} from_server={from_server}")
    print(f"rule gate: {calls} texts x rules, {matches} matches; differing from a full scan: {len(differ)}")
    print("\n".join(differ))
    return 1 if differ else 0


def flagged(check: Callable[[Event], list[Any]], event: Event) -> int:
    return int(any(f.action >= Action.BLOCK for f in check(event)))


def median_cost(run: Callable[[], object], repeat: int = 30) -> float:
    """Median CPU milliseconds of `run()` (CPU time, not wall time: the machine may be shared)."""
    samples = []
    for _ in range(repeat):
        start = time.process_time()
        run()
        samples.append((time.process_time() - start) * 1000)
    return sorted(samples)[len(samples) // 2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--per-category", action="store_true", help="every category, not only those with errors")
    parser.add_argument("--threshold", type=float, default=0.5, help="classifier threshold (0.5 = standard)")
    parser.add_argument("--split", choices=["test", "tune"], default="test")
    parser.add_argument("--misses", action="store_true", help="ids/categories of errors on the chosen split")
    parser.add_argument("--check-gate", action="store_true", help="compare the rules' gate with full scans, only")
    args = parser.parse_args(argv)
    files = {
        "direct": (args.corpus / "prompt_injection_direct.jsonl", argument_event,
                   "surface tool_arguments, direct head"),
        "indirect": (args.corpus / "prompt_injection_indirect.jsonl", result_event,
                     "surface tool_result, indirect head"),
        "descriptions*": (args.corpus / "mcp_tool_poisoning.jsonl", None, "out of domain, surface descriptions"),
    }
    if corpus_missing(args.corpus, files["direct"][0], hint="DIR"):
        return 0
    if args.check_gate:
        return check_gate(args.corpus)
    started = time.process_time()
    shipped_model()
    print(f"model load: {(time.process_time() - started) * 1000:.0f} ms (numpy already imported)")

    modes = ("rules", "classifier", "combined")
    checks = {mode: inspector(mode, args.threshold).check for mode in modes}
    print(f"split: {split_name(args.split)}; classifier threshold {args.threshold}\n")
    timing: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    misses: list[str] = []
    indirect_rows: list[dict[str, Any]] = []
    for short, (path, build, shown) in files.items():
        rows = load(path)
        if short == "indirect":
            indirect_rows = rows
        tune_payloads = {r.get("injected_payload") for r in rows if split_of(str(r["id"])) == "tune"}
        rows = [r for r in rows if split_of(str(r["id"])) == args.split]
        groups: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
        for r in rows:
            label = int(r["label"])
            category = str(r.get("category", "?"))
            for mode in modes:
                event = build(r["text"]) if build is not None else description_event(r)
                start = time.process_time()
                predicted = flagged(checks[mode], event)
                timing[mode][0] += time.process_time() - start
                timing[mode][1] += len(r["text"].encode())
                groups[(mode, "all")].append((label, predicted))
                groups[(mode, "cat:" + category.split("/", 1)[0])].append((label, predicted))
                if category.startswith(HARD_NEGATIVE):
                    groups[(mode, "hard negatives")].append((label, predicted))
                elif label == 0:
                    groups[(mode, "other negatives")].append((label, predicted))
                if "/" in category:
                    groups[(mode, "sub:" + category)].append((label, predicted))
                if label == 1 and r.get("injected_payload"):
                    seen = "payload seen in tune" if r["injected_payload"] in tune_payloads else "payload new"
                    groups[(mode, seen)].append((label, predicted))
                if args.misses and mode == "combined" and predicted != label:
                    misses.append(f"{short} {r['id']} {category} label={label}")
        print(f"== {path.name} ({short}: {shown})")
        print(TABLE.header)
        for mode in modes:
            print(TABLE.row(f"{mode}: all", metrics(groups[(mode, 'all')])))
            for extra in ("hard negatives", "other negatives", "payload seen in tune", "payload new"):
                if groups.get((mode, extra)):
                    print(TABLE.row(f"{mode}:   {extra}", metrics(groups[(mode, extra)])))
        print("per category (combined" + ("" if args.per_category else "; only those with errors") + "):")
        for (mode, group), pairs in sorted(groups.items()):
            m = metrics(pairs)
            if mode == "combined" and group.startswith("cat:") and (args.per_category or m["fp"] or m["fn"]):
                print(TABLE.row("  " + group[4:], m))
        if args.per_category:
            print("per sub-category (combined):")
            for (mode, group), pairs in sorted(groups.items()):
                if mode == "combined" and group.startswith("sub:"):
                    print(TABLE.row("  " + group[4:], metrics(pairs)))
        print()
    print("speed: CPU time of the whole check() (extraction, normalisation, rules, classifier), one thread;")
    print("corpus rows (median ~0.1 KB direct, ~0.7 KB indirect, so per-message overhead weighs in):")
    for mode in modes:
        elapsed, size = timing[mode]
        print(f"  {mode:<11} {elapsed * 1000 / (size / 1024):.3f} ms per KB ({size / 1024:.0f} KB)")
    print("one benign tool result of a given size (clean test-split contexts joined), median of 30;")
    print("building the event includes normalising its text (0.1 ms/KB here: the text is not ASCII):")
    clean = "\n".join(r["text"] for r in indirect_rows if split_of(str(r["id"])) == "test" and int(r["label"]) == 0)
    model = shipped_model()
    for kb in (1, 4, 16):
        text = clean[: kb * 1024]
        cost = {mode: median_cost(partial(lambda m, t: checks[m](result_event(t)), mode, text)) for mode in modes}
        cost["model only"] = median_cost(partial(model.score_chunks, text, "indirect", clean=True))
        built = result_event(text)
        built.normalized_texts()  # in the gateway, shared by every inspector of the message
        cost["combined on a built event"] = median_cost(partial(checks["combined"], built))
        print(f"  {kb:>2} KB: " + ", ".join(f"{k} {v:.3f} ms" for k, v in cost.items()))
    remembering = inspector("combined", args.threshold, cache_size=64)
    text = clean[: 4 * 1024]
    remembering.check(result_event(text))
    again = median_cost(lambda: remembering.check(result_event(text)))
    print(f"   4 KB seen again (content-hash cache; the event is still built each time): combined {again:.3f} ms")
    if misses:
        print("\nerrors (combined):")
        print("\n".join(misses))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
