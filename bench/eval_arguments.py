"""Accuracy and speed of the argument-injection inspector on the labelled corpus.

    python bench/eval_arguments.py [--corpus ../shared/corpus/tool_args_injection.jsonl] [--misses tune]

Every row becomes a real `tools/call` request run through `ArgumentInjectionInspector.request`,
with the called tool's definition seeded into a `ToolCatalog` the way a `tools/list` answer
would. Payload rows (SQL injection, command injection, path traversal) carry no tool context,
so each is placed, by a hash of its id, into one of several realistic tools defined below:

- primary:   a *specific* argument of an unrelated tool (`city` of a weather tool, `name` of
             a CRM lookup, ...): where a server would splice it into a query, a shell or a path;
- free-form: a prose argument (`query` of a web search, `body` of an e-mail);
- no schema: the primary argument, but the tool was never listed (argument name only);
- expected:  the argument that is *meant* to hold that language (`sql` of a database tool,
             `command` of a shell tool, `path` of a file tool): SQL and commands are supposed
             to pass there, traversal out of the root and sensitive files are not.

Benign rows from BFCL carry `tool_name`/`param_name`: their call is built from those, with a
definition naming the tool and the parameter. The synthetic look-alikes (a real SQL query, a
shell line, a file path, prose) are "legitimate for SQL/shell/file tools": each is called on the
tool its shape belongs to, and reported separately as hard negatives.

Rows are split 80/20 by sha256(id); rules were tuned on the 80 % only and the 20 % is the
untuned figure. Argument text is never printed: only ids, categories and counts.

The corpus has no SSRF rows; its benign rows include BFCL calls of a generic `requests.get` tool
on RFC 1918 addresses (a Cisco controller at 192.168.x.x), which the default policy reports as
SSRF by design (`allow_private_hosts` is the switch). SSRF address forms are covered by
tests/test_arguments.py.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mcp_types import jsonrpc_message_adapter  # noqa: E402

from bench.corpus import SPLITS, Table, corpus_missing, id_hash, load, metrics, split_name, split_of  # noqa: E402
from guardian.catalog import ToolCatalog  # noqa: E402
from guardian.events import Direction, Event, SessionInfo  # noqa: E402
from guardian.inspectors.arguments import ArgumentInjectionInspector  # noqa: E402

DEFAULT_CORPUS = REPO.parent / "shared" / "corpus" / "tool_args_injection.jsonl"
SESSION = SessionInfo(session_id="eval", transport="eval", upstream="eval-upstream")
TABLE = Table(40)


def _tool(tool_name: str, description: str, **props: dict[str, Any]) -> dict[str, Any]:
    return {"name": tool_name, "description": description,
            "inputSchema": {"type": "object", "properties": props, "required": list(props)}}


def _s(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **extra}


# Tool definitions written for this evaluation, in the shape real MCP servers list them.
TOOLS: list[Mapping[str, Any]] = [
    _tool("get_weather", "Get the current weather for a city.", city=_s("City name, e.g. Paris"),
          units=_s("Units", enum=["metric", "imperial"])),
    _tool("lookup_customer", "Find a customer record in the CRM by name.", name=_s("Customer full name")),
    _tool("get_flight_status", "Status of a flight.", flight_id=_s("Flight number, e.g. BA117")),
    _tool("list_products", "List products in a shop category.", category=_s("Category slug")),
    _tool("get_order", "Fetch an order.", order_id=_s("Order identifier")),
    _tool("create_event", "Create a calendar event.", title=_s("Event title"), location=_s("Where it takes place")),
    _tool("web_search", "Search the web.", query=_s("Search terms")),
    _tool("send_email", "Send an e-mail.", to=_s("Recipient", format="email"), subject=_s("Subject line"),
          body=_s("Message body")),
    _tool("create_note", "Save a note.", text=_s("Note text")),
    _tool("run_sql", "Run a read-only SQL query against the analytics Postgres database.",
          sql=_s("The SQL query to execute")),
    _tool("query_database", "Query the SQLite database.", query=_s("SQL statement")),
    _tool("run_shell", "Execute a shell command on the build host and return its output.",
          command=_s("The command line to run")),
    _tool("read_file", "Read a file from the project workspace.", path=_s("Path of the file, relative to the root")),
    _tool("write_file", "Write a file in the workspace.", path=_s("Path of the file"), content=_s("File contents")),
    _tool("notes_search", "Search your notes.", text=_s("What to look for")),
]
PRIMARY = [("get_weather", "city"), ("lookup_customer", "name"), ("get_flight_status", "flight_id"),
           ("list_products", "category"), ("get_order", "order_id"), ("create_event", "location")]
FREEFORM = [("web_search", "query"), ("send_email", "body"), ("create_note", "text")]
EXPECTED = {"sql_injection": ("run_sql", "sql"), "command_injection": ("run_shell", "command"),
            "path_traversal": ("read_file", "path")}
PAYLOAD_CATEGORIES = ("sql_injection", "command_injection", "path_traversal")


def pick(row_id: str, options: list[tuple[str, str]]) -> tuple[str, str]:
    return options[id_hash("ctx:" + row_id) % len(options)]


_SQL_START = re.compile(r"(?i)^\s*(?:select|with|insert|update|delete)\b|\b(?:and|or)\b.*[<>=]")
_PATHY = re.compile(r"^(?:~|\.{1,2}[/\\]|/|[A-Za-z]:\\)|^[\w.-]+(?:[/\\][\w.-]+)+$")


def hard_negative_context(text: str) -> tuple[str, str]:
    """The tool a look-alike belongs to, by its shape (the corpus says: legit for SQL/shell/file tools)."""
    if _SQL_START.search(text) and not text.rstrip().endswith("?"):
        return "query_database", "query"
    if _PATHY.search(text.strip()):
        return "read_file", "path"
    first = text.split()[0] if text.split() else ""
    if re.fullmatch(r"[a-z][a-z0-9-]*", first) and len(text.split()) > 1 and not text.rstrip().endswith("?") \
            and not re.search(r"[A-Z]", text):
        return "run_shell", "command"
    return "create_note", "text"


def make_event(tool: str, argument: str, value: str) -> Event:
    message = jsonrpc_message_adapter.validate_python(
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": {argument: value}}},
        by_name=False,
    )
    return Event(SESSION, Direction.CLIENT_TO_SERVER, message)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--misses", choices=["tune"], help="list ids/categories of primary errors on the tune split")
    args = parser.parse_args(argv)
    if corpus_missing(args.corpus):
        return 0
    rows = load(args.corpus)

    listed = ToolCatalog()
    listed.remember(SESSION.upstream, TOOLS)
    with_schema = ArgumentInjectionInspector(catalog=listed)
    name_only = ArgumentInjectionInspector()
    # BFCL rows name their tool and parameter: a definition with just that, as an unannotated server lists it.
    bfcl_catalog = ToolCatalog()
    by_tool: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r.get("tool_name"):
            entry = by_tool.setdefault(r["tool_name"], {"name": r["tool_name"],
                                                        "inputSchema": {"type": "object", "properties": {}}})
            entry["inputSchema"]["properties"][r["param_name"]] = {"type": "string"}
    bfcl_definitions: list[Mapping[str, Any]] = list(by_tool.values())
    bfcl_catalog.remember(SESSION.upstream, bfcl_definitions)
    with_bfcl = ArgumentInjectionInspector(catalog=bfcl_catalog)

    timed_calls: list[tuple[ArgumentInjectionInspector, str, str, str]] = []

    def flagged(inspector: ArgumentInjectionInspector, tool: str, argument: str, value: str,
                timed: bool = False) -> tuple[int, list[str]]:
        if timed:
            timed_calls.append((inspector, tool, argument, value))
        findings = inspector.request(make_event(tool, argument, value))
        return int(bool(findings)), [f.kind for f in findings]

    flagged(with_schema, "get_weather", "city", "warm up ' or 1=1 --")
    primary: dict[str, list[tuple[int, int]]] = defaultdict(list)
    groups: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    kind_match: dict[str, list[int]] = defaultdict(list)
    false_kinds: dict[str, Counter[str]] = defaultdict(Counter)
    errors: list[tuple[str, str, int, str]] = []
    for r in rows:
        text, label, category, split = r["text"], int(r["label"]), r["category"], split_of(str(r["id"]))
        if category in PAYLOAD_CATEGORIES:
            tool, arg = pick(str(r["id"]), PRIMARY)
            predicted, kinds = flagged(with_schema, tool, arg, text, timed=True)
            primary[split].append((label, predicted))
            groups[(split, "cat:" + category)].append((label, predicted))
            if predicted:
                kind_match[split].append(int(category in kinds))
            ftool, farg = pick(str(r["id"]), FREEFORM)
            groups[(split, "free-form:" + category)].append((label, flagged(with_schema, ftool, farg, text)[0]))
            groups[(split, "no schema:" + category)].append((label, flagged(name_only, tool, arg, text)[0]))
            etool, earg = EXPECTED[category]
            groups[(split, "expected:" + category)].append((label, flagged(with_schema, etool, earg, text)[0]))
            if split == "tune" and not predicted:
                errors.append((str(r["id"]), category, label, f"{tool}.{arg}"))
        elif r.get("tool_name"):
            predicted, found = flagged(with_bfcl, r["tool_name"], r["param_name"], text, timed=True)
            false_kinds[split].update(found)
            primary[split].append((label, predicted))
            groups[(split, "benign (BFCL, listed)")].append((label, predicted))
            groups[(split, "benign (BFCL, name only)")].append((label, flagged(name_only, r["tool_name"],
                                                                               r["param_name"], text)[0]))
            if split == "tune" and predicted:
                errors.append((str(r["id"]), category, label, f"{r['tool_name']}.{r['param_name']}"))
        else:
            tool, arg = hard_negative_context(text)
            predicted, found = flagged(with_schema, tool, arg, text, timed=True)
            false_kinds[split].update(found)
            primary[split].append((label, predicted))
            groups[(split, "hard negatives (own tool)")].append((label, predicted))
            groups[(split, f"hard negatives -> {tool}.{arg}")].append((label, predicted))
            groups[(split, "hard negatives (free-form note)")].append(
                (label, flagged(with_schema, "create_note", "text", text)[0]))
            if split == "tune" and predicted:
                errors.append((str(r["id"]), category, label, f"{tool}.{arg}"))

    print(f"corpus: {args.corpus.name}, {len(rows)} rows")
    print("\nprimary: payloads in a specific argument of an unrelated listed tool; BFCL rows on their own tool;")
    print("hard negatives on the tool their shape belongs to")
    print(TABLE.header)
    for split in SPLITS:
        print(TABLE.row(split_name(split), metrics(primary[split])))
    for split in SPLITS:
        print(f"\n{split} split, by group:")
        for (s, group), pairs in sorted(groups.items()):
            if s == split:
                print(TABLE.row(group.replace("cat:", "primary: "), metrics(pairs)))
        matched = kind_match[split]
        if matched:
            print(f"  flagged payloads whose finding kind names the corpus category: {sum(matched)}/{len(matched)}")
        if false_kinds[split]:
            print(f"  findings on benign rows, by kind: {dict(false_kinds[split])}")
    if args.misses:
        print("\ntune-split primary errors (id, category, label, tool.argument):")
        for error in errors:
            print(*error)
    # Speed: the primary calls again, each on a fresh event (so argument extraction is counted),
    # best of five passes (the machine is shared; the minimum is the least disturbed).
    passes = []
    for _ in range(5):
        events = [(inspector, make_event(tool, arg, value)) for inspector, tool, arg, value in timed_calls]
        start = time.perf_counter()
        for inspector, event in events:
            inspector.request(event)
        passes.append(time.perf_counter() - start)
    ms = min(passes) * 1000
    kb = sum(len(value.encode()) for *_, value in timed_calls) / 1024
    print(f"\nspeed (primary calls, request hook incl. argument extraction, best of 5): "
          f"{ms / len(timed_calls) * 1000:.0f} us per call, {ms / kb:.2f} ms per KB "
          f"({len(timed_calls)} calls, {kb:.0f} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
