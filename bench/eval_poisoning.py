"""Accuracy and speed of the tool-poisoning inspector on the labelled corpus and on real servers.

    python bench/eval_poisoning.py [--corpus ../shared/corpus/mcp_tool_poisoning.jsonl] [--no-servers]
    python bench/eval_poisoning.py --misses tune [--show]     # tune-split errors
    python bench/eval_poisoning.py --no-injection-rules        # this inspector's own rules only

Each corpus row is one tool definition (its description, and its input schema where the row
has one), served alone as a `tools/list` result through `ToolPoisoningInspector.response`;
a row counts as flagged when any finding comes back. Rows are split 80/20 by sha256(id)
(tune / test); the rules were written and tuned on the 80 % only, the 20 % is the untuned
figure. Categories are reported on the test split; "hard negatives" are the real-server
and vulnerable-server benign rows (real MCP servers' tools and DVMCP's ordinary tools,
imperative and full of "must", files and URLs), and the project's own hard negatives
(`tests/data/poisoning_cases.json`, benign descriptions from the kinds of server that
name secrets and other tools for good reasons, in whole listings).

Real servers: server-everything (npm, `tests/node`) is started over stdio and its tools,
prompts, resources, templates and instructions are checked exactly as `guardian scan` does;
so is the demo server. Both must come back clean.

In context: the benchmark's "added malicious tool" rows (shadowing, function overlapping,
preference manipulation) are meant to sit beside the real tools they imitate. The second
table serves each row after another upstream listed the benchmark's real tool names
(the `tool_name` of its description-modification rows), which is how a gateway in front of
several servers sees them: name collisions and references become `shadowing`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mcp_types import JSONRPCRequest, JSONRPCResponse  # noqa: E402

from bench.corpus import SPLITS, Table, corpus_missing, load, metrics, split_name, split_of  # noqa: E402
from guardian.events import Direction, Event, SessionInfo  # noqa: E402
from guardian.inspectors.poisoning import PoisoningPolicy, ToolPoisoningInspector, ToolRegistry  # noqa: E402

DEFAULT_CORPUS = REPO.parent / "shared" / "corpus" / "mcp_tool_poisoning.jsonl"
CASES = REPO / "tests" / "data" / "poisoning_cases.json"
HARD_NEGATIVE_CATEGORIES = ("real_mcp_server_tool", "ordinary_docstring")
TABLE = Table(46)


def tool_of(r: dict[str, Any]) -> dict[str, Any]:
    """The corpus row as an MCP tool definition (BFCL's `"type": "dict"` schemas become objects)."""
    schema = r.get("input_schema") or {"type": "object", "properties": {}}
    schema = json.loads(json.dumps(schema).replace('"type": "dict"', '"type": "object"'))
    return {"name": r.get("tool_name") or "tool", "description": r["text"], "inputSchema": schema}


def listing_event(method: str, result: dict[str, Any], upstream: str = "eval", tenant: str | None = None) -> Event:
    request = JSONRPCRequest(jsonrpc="2.0", id=1, method=method, params={})
    response = JSONRPCResponse(jsonrpc="2.0", id=1, result=result)
    session = SessionInfo(session_id="eval", transport="eval", upstream=upstream, tenant=tenant)
    return Event(session, Direction.SERVER_TO_CLIENT, response, request=request)


_INSPECTORS: dict[PoisoningPolicy, ToolPoisoningInspector] = {}


def flagged(policy: PoisoningPolicy, tools: list[dict[str, Any]], registry: ToolRegistry | None = None,
            upstream: str = "eval") -> list[Any]:
    """Findings on one `tools/list` result; a fresh registry unless one is given (no memory between rows)."""
    inspector = _INSPECTORS.get(policy)
    if inspector is None:
        inspector = _INSPECTORS[policy] = ToolPoisoningInspector(policy, ToolRegistry())
    inspector.registry = registry if registry is not None else ToolRegistry()
    return inspector.response(listing_event("tools/list", {"tools": tools}, upstream))


def real_servers(policy: PoisoningPolicy) -> list[tuple[str, int, list[str]]]:
    """(server, definitions, findings) for the demo server and server-everything, listed over stdio
    and checked as `guardian scan` checks them (tool poisoning and hidden characters)."""
    import anyio

    from guardian.scan import ScanTarget, check_definitions, fetch_definitions

    everything = REPO / "tests" / "node" / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist"
    targets = [("demo_server (python)", [sys.executable, str(REPO / "examples" / "demo_server.py")])]
    if (everything / "index.js").exists():
        targets.append(("server-everything (npm)", ["node", str(everything / "index.js"), "stdio"]))
    else:
        print(f"  server-everything not installed at {everything} (npm ci --prefix tests/node); skipped")
    out = []
    for label, argv in targets:
        report = anyio.run(fetch_definitions, ScanTarget(command=tuple(argv)))
        found = check_definitions(report, policy)
        out.append((label, report.definitions, [f"{f.definition}: {f.detector}/{f.kind}" for f in found]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--misses", choices=["tune"], help="list ids/categories of errors on the tune split")
    parser.add_argument("--show", action="store_true", help="with --misses: the rules that fired and the text")
    parser.add_argument("--no-injection-rules", action="store_true",
                        help="without the prompt-injection rule families (option injection_rules: false)")
    parser.add_argument("--no-servers", action="store_true", help="skip starting the real servers")
    args = parser.parse_args(argv)
    policy = PoisoningPolicy(injection_rules=not args.no_injection_rules)
    if corpus_missing(args.corpus):
        return 0
    rows = load(args.corpus)
    flagged(policy, [{"name": "warm_up", "description": "Warm up the rules."}])

    results: dict[str, list[tuple[int, int]]] = defaultdict(list)
    by_group: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    by_rule: dict[str, int] = defaultdict(int)
    errors: list[str] = []
    elapsed = 0.0
    total_bytes = 0
    for r in rows:
        tool = tool_of(r)
        size = len(json.dumps(tool).encode())
        start = time.process_time()
        findings = flagged(policy, [tool])
        elapsed += time.process_time() - start
        total_bytes += size
        predicted = int(bool(findings))
        label = int(r["label"])
        split = split_of(str(r["id"]))
        category = str(r.get("category", "?"))
        results[split].append((label, predicted))
        by_group[(split, "cat:" + category)].append((label, predicted))
        if label == 0 and category in HARD_NEGATIVE_CATEGORIES:
            by_group[(split, "hard negatives (real/vulnerable servers)")].append((label, predicted))
        if split == "test" and predicted:
            for kind in {f.kind for f in findings}:
                by_rule[kind] += 1
        if split == "tune" and label != predicted:
            shown = ""
            if args.show:
                kinds = sorted({f"{f.kind}@{f.excerpt}" for f in findings})
                shown = f"\n    fired: {kinds}\n    {r['text'][:700]!r}"
            errors.append(f"{r['id']} {category} label={label} tool={r.get('tool_name')}{shown}")

    print(f"corpus: {args.corpus.name}, {len(rows)} rows; prompt-injection rules: "
          f"{'off' if args.no_injection_rules else 'on (default)'}")
    print(TABLE.header)
    for split in SPLITS:
        print(TABLE.row(split_name(split), metrics(results[split])))
    print("\nhard negatives (label 0, real MCP servers and DVMCP ordinary tools):")
    for split in SPLITS:
        pairs = by_group.get((split, "hard negatives (real/vulnerable servers)"), [])
        print(TABLE.row(f"{split}: real/vulnerable-server tools", metrics(pairs)))
    for split in SPLITS:
        print(f"\nper category ({split} split):")
        for (s, group), pairs in sorted(by_group.items()):
            if s == split and group.startswith("cat:"):
                print(TABLE.row(group[4:][:46], metrics(pairs)))
    print("\nrules behind test-split flags: " + ", ".join(f"{k}={v}" for k, v in sorted(by_rule.items())))

    cases = json.loads(CASES.read_text(encoding="utf-8"))
    print("\nproject hard negatives (tests/data/poisoning_cases.json, whole listings, must be clean):")
    fp_lists = 0
    for listing in cases["benign_listings"]:
        findings = flagged(policy, listing["tools"])
        fp_lists += bool(findings)
        if findings:
            print(f"  FLAGGED {listing['server']}: " + ", ".join(sorted({f'{f.kind}@{f.excerpt}' for f in findings})))
    total = len(cases["benign_listings"])
    tools = sum(len(listing["tools"]) for listing in cases["benign_listings"])
    print(f"  {total - fp_lists}/{total} listings clean ({tools} tools)")

    heldout_eval(policy)
    context_eval(rows, policy)

    if not args.no_servers:
        print("\nreal servers over stdio (tools, prompts, resources, templates, instructions):")
        for label, count, found in real_servers(policy):
            print(f"  {label}: {count} definitions, {len(found)} findings" + (f": {found}" if found else ""))

    if args.misses:
        print("\ntune-split errors:")
        for line in errors:
            print(line)
    print(f"\nmean time: {elapsed * 1000 / (total_bytes / 1024):.3f} ms per KB of tool definition "
          f"({total_bytes / 1024:.0f} KB, {elapsed * 1000:.0f} ms CPU, one listing per row, uncached)")
    return 0


HELDOUT: tuple[tuple[str, str, str], ...] = (
    ("A", "poisoning_heldout.jsonl", "first measured untuned: recall 10/26, FP 0/26; then tuned on"),
    ("B", "poisoning_heldout_b.jsonl", "first measured untuned: recall 10/25, FP 0/25; then tuned on"),
    ("C", "poisoning_heldout_c.jsonl", "first measured untuned: recall 2/20, FP 0/20; then tuned on"),
    ("D", "poisoning_heldout_d.jsonl", "untuned: written after the rules were frozen"),
)
"""The project's held-out sets, each written after a revision of the rules was frozen, in phrasings
the corpus templates do not use (and, from C on, avoiding the words the rules key on: the worst
case, an attacker who has read this code). Each was measured once untuned; A-C were then used to
revise the rules, so only D's current figure is untuned."""


def heldout_eval(policy: PoisoningPolicy) -> None:
    print("\nproject held-out sets (bench/data/poisoning_heldout*.jsonl, one tool per listing):")
    for name, file, note in HELDOUT:
        path = REPO / "bench" / "data" / file
        records = load(path)[1:]  # the first line says where the set comes from
        pairs = [(int(r["label"]), int(bool(flagged(policy, [r["tool"]])))) for r in records]
        print(TABLE.row(f"set {name} now", metrics(pairs)) + f"   ({note})")


def context_eval(rows: list[dict[str, Any]], policy: PoisoningPolicy) -> None:
    """Added malicious tools served after another upstream listed the benchmark's real tools."""
    real_names = sorted({str(r["tool_name"]) for r in rows
                         if r.get("attack_stage") == "tool_description_modification" and r.get("tool_name")})
    pairs: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for r in rows:
        added = r.get("attack_stage") == "added_malicious_tool"
        if not added and r["label"] == 1:
            continue
        registry = ToolRegistry()
        flagged(policy, [{"name": n, "description": "", "inputSchema": {"type": "object"}} for n in real_names],
                registry, upstream="benchmark-server")
        predicted = int(bool(flagged(policy, [tool_of(r)], registry, upstream="eval")))
        split = split_of(str(r["id"]))
        group = str(r["category"]) if added else "benign (all categories)"
        pairs[f"{split}: {group}"].append((int(r["label"]), predicted))
    print(f"\nin context (another upstream lists the benchmark's {len(real_names)} real tool names first):")
    for name in sorted(pairs):
        if name.startswith("test"):
            print(TABLE.row(name[:46], metrics(pairs[name])))


if __name__ == "__main__":
    raise SystemExit(main())
