"""What the Prometheus metrics cost per message: microseconds per observed decision.

Measured paths:

- `allow`     `Metrics.observe` of an allowed message (one counter, one histogram)
- `block`     `Metrics.observe` of a blocked message with one finding (plus the finding counter)
- `unknown`   an allowed message whose method is not an MCP method (counted as `other`)
- `pipeline`  `Pipeline.run` on a tools/call with the limits inspector, with metrics minus without:
              what a gateway message really pays (the timing calls included)
- `scrape`    rendering `/metrics` (milliseconds, once per scrape)

Each figure is the best of several rounds (the least disturbed by other work on the machine).

    .venv/bin/python bench/bench_metrics.py [--iterations N]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))  # `python bench/bench_metrics.py` puts bench/ first, not the root

import anyio  # noqa: E402
from mcp_types import JSONRPCRequest  # noqa: E402

from guardian.decision import ALLOW, Action, Decision, Finding  # noqa: E402
from guardian.events import Direction, Event, SessionInfo  # noqa: E402
from guardian.inspectors.limits import LimitsInspector  # noqa: E402
from guardian.observability.metrics import Metrics  # noqa: E402
from guardian.pipeline import Pipeline  # noqa: E402

ROUNDS = 7
SESSION = SessionInfo(session_id="bench", transport="streamable-http", upstream="bench")
CALL = JSONRPCRequest(jsonrpc="2.0", id=1, method="tools/call", params={"name": "echo", "arguments": {"text": "hi"}})


def best_us(run: Callable[[int], None], iterations: int) -> float:
    """Microseconds per iteration, best of `ROUNDS` rounds."""
    run(iterations // 10)  # warm: label children resolved, caches filled
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        run(iterations)
        best = min(best, time.perf_counter() - started)
    return best / iterations * 1e6


def observe_loop(metrics: Metrics, method: str, decision: Decision) -> Callable[[int], None]:
    def run(n: int) -> None:
        observe = metrics.observe
        direction = Direction.CLIENT_TO_SERVER
        for _ in range(n):
            observe(direction, method, decision, 0.00012)

    return run


def pipeline_loop(pipeline: Pipeline) -> Callable[[int], None]:
    event = Event(SESSION, Direction.CLIENT_TO_SERVER, CALL)

    async def drive(n: int) -> None:
        run = pipeline.run
        for _ in range(n):
            await run(event)

    return lambda n: anyio.run(drive, n)


def build_pipeline(metrics: Metrics | None) -> Pipeline:
    pipeline = Pipeline(metrics=metrics)
    pipeline.add(LimitsInspector())
    return pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200_000)
    args = parser.parse_args()
    n = args.iterations
    metrics = Metrics()
    blocked = Decision(action=Action.BLOCK, findings=[Finding("tool_access", "tool_denied", "tool is not allowed")])
    allow = best_us(observe_loop(metrics, "tools/call", ALLOW), n)
    block = best_us(observe_loop(metrics, "tools/call", blocked), n)
    unknown = best_us(observe_loop(metrics, "vendor/something", ALLOW), n)
    without = best_us(pipeline_loop(build_pipeline(None)), n // 4)
    with_metrics = best_us(pipeline_loop(build_pipeline(Metrics())), n // 4)
    scrape_started = time.perf_counter()
    for _ in range(100):
        metrics.exposition()
    scrape_ms = (time.perf_counter() - scrape_started) / 100 * 1000

    print(f"Metrics cost, best of {ROUNDS} rounds ({n} observations per round)")
    print(f"  allow     {allow:6.2f} us per observed message")
    print(f"  block     {block:6.2f} us per observed message (1 finding)")
    print(f"  unknown   {unknown:6.2f} us per observed message (method counted as other)")
    print(f"  pipeline  {with_metrics - without:6.2f} us per message added to Pipeline.run "
          f"({without:.2f} -> {with_metrics:.2f} us, limits inspector only)")
    print(f"  scrape    {scrape_ms:6.3f} ms per /metrics rendering")


if __name__ == "__main__":
    main()
