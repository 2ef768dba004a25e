"""Schema validation speed: median and p95 microseconds the inspector adds to a tools/call.

Target: schema validation and pin checks together add at most 0.2 ms (median) to a
`tools/call` round trip (the request on the way in, its result on the way back).

Measured on in-memory events (no transport), each path warmed up first so validators are
compiled and cached, as they are after a session's first call:

- `args`            request hook, mode off: only the arguments against the tool's inputSchema
- `call/inspected`  request hook, standard profile: CallToolRequest + arguments
- `call/full`       request hook, enterprise profile
- `result/...`      response hook on a CallToolResult with structuredContent (+ outputSchema)
- `result 4KB`      the same with a 4 KB text block
- `list 50 tools`   a 50-tool tools/list result against ListToolsResult (per listing)
- `jsonschema only` call/inspected and result/inspected with the compiled pre-check turned
                    off: what jsonschema alone costs (why the pre-check exists)
- `pipeline +call`, `pipeline +result`: Pipeline.run with the inspector minus without it
                    (interleaved), the cost as the relay pays it
- `pins call`       the pin check on the same call (guardian.pins)
- `cold tool schema` compiling one tool schema, in ms: once per distinct schema, on its first
                    call (mostly jsonschema's metaschema check; the first in a process also
                    warms that); `cold version`: loading one protocol version's file, once

    .venv/bin/python bench/bench_schema.py [--iterations N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))  # `python bench/bench_schema.py` puts bench/ first, not the root

import anyio  # noqa: E402
from mcp_types import JSONRPCMessage, JSONRPCRequest, jsonrpc_message_adapter  # noqa: E402

from bench.relay_latency import Stats  # noqa: E402
from guardian.catalog import ToolCatalog  # noqa: E402
from guardian.events import Direction, Event, SessionInfo  # noqa: E402
from guardian.inspectors.schema_validation import (  # noqa: E402
    CompiledSchema,
    ProtocolSchemas,
    SchemaValidationInspector,
    ToolSchemas,
)
from guardian.pins import PinsInspector  # noqa: E402
from guardian.pipeline import Pipeline  # noqa: E402

TARGET_US = 200.0
SESSION = SessionInfo("bench", "bench", "demo")

ADD = {
    "name": "add", "description": "Add two numbers.",
    "inputSchema": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                    "required": ["a", "b"]},
    "outputSchema": {"type": "object", "properties": {"result": {"type": "number"}}, "required": ["result"]},
}
# The shape pydantic gives a typed tool: $defs, Optional as anyOf-null, enums, defaults.
CREATE_ISSUE = {
    "name": "create_issue", "description": "Open an issue in a repository.",
    "inputSchema": {
        "$defs": {"Label": {"type": "object", "properties": {"name": {"type": "string"},
                                                             "color": {"type": "string", "pattern": "^[0-9a-f]{6}$"}},
                            "required": ["name"]}},
        "type": "object",
        "properties": {
            "owner": {"type": "string", "minLength": 1}, "repo": {"type": "string", "minLength": 1},
            "title": {"type": "string", "maxLength": 256}, "body": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "labels": {"type": "array", "items": {"$ref": "#/$defs/Label"}, "maxItems": 10},
            "priority": {"type": "string", "enum": ["low", "normal", "high"], "default": "normal"},
            "assignees": {"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}]},
        },
        "required": ["owner", "repo", "title"],
    },
    "outputSchema": {"type": "object", "properties": {"number": {"type": "integer"}, "url": {"type": "string"}},
                     "required": ["number", "url"]},
}
ISSUE_ARGS = {"owner": "acme", "repo": "widgets", "title": "Crash when saving a draft",
              "body": "Steps: open the editor, type, press save.", "priority": "high",
              "labels": [{"name": "bug", "color": "d73a4a"}, {"name": "editor"}], "assignees": None}


def message(value: dict[str, Any]) -> JSONRPCMessage:
    return jsonrpc_message_adapter.validate_python(value, by_name=False)


def measure(fn: Callable[[], object], iterations: int) -> tuple[float, float]:
    for _ in range(min(200, iterations)):
        fn()
    samples: list[int] = []
    for _ in range(iterations):
        start = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - start)
    stats = Stats.of(samples)
    return stats.median * 1000, stats.p95 * 1000


def events(tool: dict[str, Any], arguments: dict[str, Any], structured: Any, text: str) -> tuple[Event, Event]:
    request = message({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": tool["name"], "arguments": arguments}})
    assert isinstance(request, JSONRPCRequest)
    result = message({"jsonrpc": "2.0", "id": 1, "result": {
        "content": [{"type": "text", "text": text}], "structuredContent": structured, "isError": False}})
    return (Event(SESSION, Direction.CLIENT_TO_SERVER, request),
            Event(SESSION, Direction.SERVER_TO_CLIENT, result, request=request))


def without_precheck(inspector: SchemaValidationInspector) -> None:
    """Strip the compiled checks from every validator built so far (jsonschema alone)."""
    schemas = inspector.schemas._validators
    for key, compiled in schemas.items():
        schemas[key] = replace(compiled, check=None)
    tools = inspector.tool_schemas._compiled
    for digest, tool_compiled in tools.items():
        if isinstance(tool_compiled, CompiledSchema):
            tools[digest] = replace(tool_compiled, check=None)


def pipeline_delta(inspector: SchemaValidationInspector, catalog: ToolCatalog, event: Event,
                   iterations: int) -> tuple[float, float]:
    """Median/p95 of Pipeline.run with the inspector minus without, measured in alternating blocks."""
    bare, full = Pipeline(), Pipeline()
    bare.add(catalog)
    full.add(catalog)
    full.add(inspector)

    async def run() -> tuple[list[int], list[int]]:
        samples: dict[int, list[int]] = {0: [], 1: []}
        for block in range(max(iterations // 100, 4)):
            for which in ((0, 1) if block % 2 == 0 else (1, 0)):
                pipeline = (bare, full)[which]
                for _ in range(100):
                    start = time.perf_counter_ns()
                    await pipeline.run(event)
                    samples[which].append(time.perf_counter_ns() - start)
        return samples[0], samples[1]

    without, with_ = (Stats.of(samples) for samples in anyio.run(run))
    return (with_.median - without.median) * 1000, (with_.p95 - without.p95) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20000)
    args = parser.parse_args()
    n = args.iterations
    catalog = ToolCatalog()
    catalog.remember(SESSION.upstream, [ADD, CREATE_ISSUE])
    rows: list[tuple[str, str, float, float]] = []
    add_call, add_result = events(ADD, {"a": 1, "b": 2.5}, {"result": 3.5}, "3.5")
    issue_call, issue_result = events(CREATE_ISSUE, ISSUE_ARGS, {"number": 42, "url": "https://x.example/42"},
                                      "Opened issue #42.")
    _, big_result = events(ADD, {"a": 1, "b": 2}, {"result": 3}, "x" * 4096)

    inspectors = {mode: SchemaValidationInspector.from_options({"mode": mode}, catalog) for mode in
                  ("off", "inspected", "full")}
    for tool, call, result in (("add", add_call, add_result), ("issue", issue_call, issue_result)):
        assert not inspectors["full"].request(call) and not inspectors["full"].response(result)
        rows.append((tool, "args", *measure(lambda c=call: inspectors["off"].request(c), n)))
        for mode in ("inspected", "full"):
            rows.append((tool, f"call/{mode}", *measure(lambda c=call, m=mode: inspectors[m].request(c), n)))
            rows.append((tool, f"result/{mode}", *measure(lambda r=result, m=mode: inspectors[m].response(r), n)))
    rows.append(("add", "result 4KB/inspected", *measure(lambda: inspectors["inspected"].response(big_result), n)))

    listing_request = message({"jsonrpc": "2.0", "id": 7, "method": "tools/list"})
    assert isinstance(listing_request, JSONRPCRequest)
    tools = [{**CREATE_ISSUE, "name": f"tool_{i}"} for i in range(50)]
    listing = Event(SESSION, Direction.SERVER_TO_CLIENT, message({"jsonrpc": "2.0", "id": 7,
                                                                  "result": {"tools": tools}}), request=listing_request)
    assert not inspectors["inspected"].response(listing)
    rows.append(("-", "list 50 tools", *measure(lambda: inspectors["inspected"].response(listing), max(n // 20, 200))))

    bare = SchemaValidationInspector.from_options({"mode": "inspected"}, catalog)
    bare.request(issue_call)
    bare.response(issue_result)
    without_precheck(bare)
    rows.append(("issue", "jsonschema only: call", *measure(lambda: bare.request(issue_call), max(n // 10, 200))))
    rows.append(("issue", "jsonschema only: result", *measure(lambda: bare.response(issue_result), max(n // 10, 200))))

    fresh = SchemaValidationInspector.from_options({"mode": "inspected"}, catalog)
    fresh.request(add_call)
    rows.append(("issue", "pipeline +call", *pipeline_delta(fresh, catalog, issue_call, n)))
    rows.append(("issue", "pipeline +result", *pipeline_delta(fresh, catalog, issue_result, n)))

    pins_median = pins_row(rows, issue_call, n)

    cold: list[float] = []
    for variant in range(2):  # the first also warms jsonschema's own metaschema validators
        schema = {**CREATE_ISSUE["inputSchema"], "title": f"variant {variant}"}
        start = time.perf_counter()
        ToolSchemas().validator(schema, "bench")
        cold.append((time.perf_counter() - start) * 1000)
    start = time.perf_counter()
    ProtocolSchemas().spec("2025-11-25")
    load_ms = (time.perf_counter() - start) * 1000

    print(f"{'tool':<6} {'path':<26} {'median µs':>10} {'p95 µs':>9}")
    for tool, path, median, p95 in rows:
        print(f"{tool:<6} {path:<26} {median:>10.1f} {p95:>9.1f}")
    print(f"{'issue':<6} {'cold tool schema 1st (ms)':<26} {cold[0]:>10.1f} {'(once)':>9}")
    print(f"{'issue':<6} {'cold tool schema (ms)':<26} {cold[1]:>10.1f} {'(once)':>9}")
    print(f"{'-':<6} {'cold version (ms)':<26} {load_ms:>10.1f} {'(once)':>9}")

    by = {(tool, path): median for tool, path, median, _ in rows}
    for tool in ("add", "issue"):
        added = by[(tool, "call/inspected")] + by[(tool, "result/inspected")] + pins_median
        label = f"{tool}: standard request + result + pins"
        verdict = "PASS" if added <= TARGET_US else "MISS"
        print(f"{label:<40} {added:>7.1f} µs  (target ≤ {TARGET_US:.0f} µs)  {verdict}")
    return 0


def pins_row(rows: list[tuple[str, str, float, float]], call: Event, n: int) -> float:
    """The pin check of the same call (pins and schema validation share the 0.2 ms target)."""
    with tempfile.TemporaryDirectory() as tmp:
        pins = PinsInspector(Path(tmp) / "pins.json")
        median, p95 = measure(lambda: pins.request(call), n)
    rows.append(("issue", "pins call", median, p95))
    return median


if __name__ == "__main__":
    raise SystemExit(main())
