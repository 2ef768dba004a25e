"""Access-policy evaluation speed: median and p95 microseconds per decision at 10, 100, 1,000 rules.

Policies are generated in the shape real ones take: a few hard stops that apply to every
call (anonymous callers, findings, path checks), then per-tool rules with role, scope,
argument-range and time conditions, glob rules over tool families, and resource rules.
Measured paths:

- `call`      a tools/call of a tool the policy names (index hit, candidate list cached)
- `miss`      a tools/call of a tool never seen before (candidates computed, then cached)
- `resource`  a resources/read with a URI in canonical form
- `event`     the inspector's whole review of a tools/call event (request, subject, verdict)
- `listing`   filtering a 50-tool tools/list result (per listing, not per entry)
- `load`      parsing, validating and compiling the YAML (milliseconds, once per reload)

    .venv/bin/python bench/bench_policy.py [--iterations N]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))  # `python bench/bench_policy.py` puts bench/ first, not the root

import yaml  # noqa: E402
from mcp_types import JSONRPCRequest, jsonrpc_message_adapter  # noqa: E402

from bench.relay_latency import Stats  # noqa: E402
from guardian.events import Direction, Event, SessionInfo  # noqa: E402
from guardian.policy import AccessPolicyInspector, CompiledPolicy, Request, Subject, parse_policy  # noqa: E402

NOW = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)


def generate(count: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    rules: list[dict[str, Any]] = [
        {"id": "anonymous", "effect": "deny", "reason": "sign in", "when": {"authenticated": False}},
        {
            "id": "leaks",
            "effect": "deny",
            "reason": "credential in request",
            "when": {"tool": ["http_*", "send_*"], "findings": [{"detector": "secrets", "action": "redact"}]},
        },
        {
            "id": "system-paths",
            "effect": "deny",
            "reason": "system paths",
            "when": {
                "tool": ["read_file", "write_file"],
                "args": [{"path": "$.path", "as_path": True, "glob": ["/etc/*", "*/.ssh/*"]}],
            },
        },
    ]
    kinds = ["role", "scope", "range", "time", "family", "resource", "subject"]
    while len(rules) < count:
        n = len(rules)
        kind = rng.choice(kinds)
        rule: dict[str, Any] = {"id": f"r{n}", "effect": rng.choice(["allow", "allow", "deny", "require-approval"])}
        if rule["effect"] != "allow":
            rule["reason"] = f"reason {n}"
        tool = f"tool_{n}"
        if kind == "role":
            rule["when"] = {"tool": tool, "roles": [rng.choice(["dev", "ops", "viewer"]), "admin"]}
        elif kind == "scope":
            rule["when"] = {"tool": tool, "scopes": {"all": ["api:read", f"api:{n}"]}}
        elif kind == "range":
            rule["when"] = {"tool": tool, "args": [{"path": "$.amount", "range": {"gt": rng.randint(1, 1000)}}]}
        elif kind == "time":
            rule["when"] = {"tool": tool, "time": {"days": ["mon-fri"], "hours": "09:00-17:00"}}
        elif kind == "family":
            rule["when"] = {"tool": f"svc{n}_*", "tenant": ["acme", "globex"]}
        elif kind == "resource":
            rule["when"] = {"resource": f"db://${{tenant}}/t{n}/*"}
        else:
            rule["when"] = {"subject": [f"user{n}", "svc-*"], "method": "tools/call"}
        rules.append(rule)
    return yaml.safe_dump({"version": 1, "default": "deny", "timezone": "Europe/Berlin", "rules": rules})


def measure(fn: Callable[[int], object], iterations: int) -> tuple[float, float]:
    samples: list[int] = []
    for i in range(min(200, iterations)):  # warm up caches and the interpreter
        fn(i)
    for i in range(iterations):
        start = time.perf_counter_ns()
        fn(i)
        samples.append(time.perf_counter_ns() - start)
    stats = Stats.of(samples)
    return stats.median * 1000, stats.p95 * 1000


def bench(count: int, iterations: int) -> dict[str, tuple[float, float]]:
    text = generate(count)
    load_start = time.perf_counter()
    policy = CompiledPolicy(parse_policy(text, f"generated-{count}.yaml"))
    load_ms = (time.perf_counter() - load_start) * 1000
    subject = Subject("alice", "acme", frozenset({"api:read"}), frozenset({"dev"}), {})
    named = [Request("tools/call", tool=f"tool_{n}", arguments={"amount": n}) for n in range(count)]
    resources = [Request("resources/read", resource=f"db://acme/t{n}/row") for n in range(count)]

    results: dict[str, tuple[float, float]] = {}
    results["call"] = measure(lambda i: policy.evaluate(subject, named[i % count], now=NOW), iterations)
    results["miss"] = measure(lambda i: policy.evaluate(subject, call(f"new_{i}_{count}"), now=NOW), iterations)
    results["resource"] = measure(lambda i: policy.evaluate(subject, resources[i % count], now=NOW), iterations)

    inspector = AccessPolicyInspector(policy, reload_interval=0, clock=lambda: NOW)
    session = SessionInfo("s", "bench", "up", identity="alice", tenant="acme")
    events = [
        Event(session, Direction.CLIENT_TO_SERVER, request(n, "tools/call", {"name": f"tool_{n}", "arguments": {}}))
        for n in range(min(count, 200))
    ]
    results["event"] = measure(lambda i: inspector.review(events[i % len(events)], ()), iterations)

    list_request = request(1, "tools/list", None)
    assert isinstance(list_request, JSONRPCRequest)
    tools = [{"name": f"tool_{n % count}", "inputSchema": {"type": "object"}} for n in range(50)]
    listing = jsonrpc_message_adapter.validate_python(
        {"jsonrpc": "2.0", "id": 1, "result": {"tools": tools}}, by_name=False
    )
    listed = Event(session, Direction.SERVER_TO_CLIENT, listing, request=list_request)
    results["listing"] = measure(lambda i: inspector.review(listed, ()), max(iterations // 20, 200))
    results["load"] = (load_ms, load_ms)
    return results


def call(tool: str) -> Request:
    return Request("tools/call", tool=tool, arguments={})


def request(request_id: int, method: str, params: dict[str, Any] | None) -> Any:
    envelope: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        envelope["params"] = params
    return jsonrpc_message_adapter.validate_python(envelope, by_name=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20000)
    args = parser.parse_args()
    print(f"{'rules':>6} {'path':<9} {'median µs':>10} {'p95 µs':>9}")
    for count in (10, 100, 1000):
        for path, (median, p95) in bench(count, args.iterations).items():
            unit = "ms" if path == "load" else "µs"
            print(f"{count:>6} {path:<9} {median:>10.2f} {p95:>9.2f}" + ("  (ms, once)" if unit == "ms" else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
