"""What the security profiles cost: `tools/call` round trips on realistic payloads, direct
vs `guardian wrap --profile standard` vs `--profile enterprise`, interleaved in one run.

    .venv/bin/python bench/profile_latency.py [--calls N] [--quick]

Payloads: a 200-byte call (echo: the same text comes back), a 4 KB and a 64 KB text result
of ordinary prose (the demo server's `report` tool, a new sentence order on every call so no
detector cache helps). Every gateway answer is checked to be
byte-for-byte the direct answer: benign traffic must pass unchanged, so a detector that
redacts or blocks it shows up here as failed calls, not as a fast row. Target (issue 3):
the standard profile adds <= 5 ms p95 on the 4 KB result. Always exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import anyio  # noqa: E402

from bench.relay_latency import Bench, Side, Stats, child_pid, interleave, print_stderr_notes  # noqa: E402
from examples.demo_server import report  # noqa: E402
from tests.support.gateway import GUARDIAN, demo_server_stdio_argv  # noqa: E402

PROFILES = ("standard", "enterprise")
TARGET_STANDARD_4K_P95 = 5.0
ECHO_TEXT = ("Summarise the open pull requests for the payments service and list the ones that touch "
             "the refund flow, with their authors and review status, newest first please.")[:200].ljust(200, ".")


@dataclass
class Payload:
    name: str
    tool: str
    arguments: dict[str, Any]


PAYLOADS = (
    Payload("200 B call (echo)", "echo", {"text": ECHO_TEXT}),
    Payload("4 KB result", "report", {"n": 4096}),
    Payload("64 KB result", "report", {"n": 65536}),
)


class ExactSide(Side):
    """A side whose answer must be exactly the demo server's (benign traffic passes unchanged).

    Every `report` call asks for a different sentence order (`seed`), so detector caches keyed
    by content never see the same text twice: the figures are the cost of new content.
    """

    calls: int = 0

    async def call(self) -> int | None:
        arguments = dict(self.arguments)
        if self.tool == "report":
            self.calls += 1
            arguments["seed"] = self.calls
            expected = report(arguments["n"], self.calls)
        else:
            expected = arguments["text"]
        start = time.perf_counter_ns()
        try:
            result = await self.client.call_tool(self.tool, arguments)
        except Exception as exc:
            self._error(f"{type(exc).__name__}: {exc}")
            return None
        elapsed = time.perf_counter_ns() - start
        text = "".join(getattr(block, "text", "") for block in result.content)
        if result.is_error or text != expected:
            self._error(f"answer differs from the direct one: is_error={result.is_error}, {len(text)} chars")
            return None
        return elapsed


def wrap_profile_argv(profile: str) -> list[str]:
    return [*GUARDIAN, "wrap", "--profile", profile, "--", *demo_server_stdio_argv()]


async def measure(bench: Bench, payload: Payload) -> list[ExactSide]:
    with contextlib.ExitStack() as stack:
        clients = [bench.stdio_client("demo (direct)", demo_server_stdio_argv(), stack)]
        clients += [bench.stdio_client(f"guardian wrap --profile {p}", wrap_profile_argv(p), stack) for p in PROFILES]
        async with contextlib.AsyncExitStack() as entered:
            for client in clients:
                await entered.enter_async_context(client)
            pids = [None] + [child_pid(f"--profile {p}") for p in PROFILES]
            labels = ["direct", *PROFILES]
            sides = [
                ExactSide(label, client, payload.tool, payload.arguments, pid=pid)
                for label, client, pid in zip(labels, clients, pids, strict=True)
            ]
            await interleave(sides, bench.args.calls, bench.args.block, bench.args.warmup)
    return sides


def print_table(results: list[tuple[Payload, list[ExactSide]]]) -> None:
    head = (f"{'payload':<20} {'profile':<11} {'direct med/p95':>15} {'gateway med/p95':>16} "
            f"{'+med':>6} {'+p95':>6} {'gw CPU':>6}  note")
    print(head)
    print("-" * len(head))
    for payload, sides in results:
        direct = Stats.of(sides[0].samples)
        for side in sides[1:]:
            gw = Stats.of(side.samples)
            cpu = side.cpu_ms_per_call
            note = ""
            if payload.name.startswith("4 KB") and side.label == "standard":
                added = gw.p95 - direct.p95
                verdict = "PASS" if added <= TARGET_STANDARD_4K_P95 else "MISS"
                note = f"target +p95 <= {TARGET_STANDARD_4K_P95:g}: {verdict}"
            print(
                f"{payload.name:<20} {side.label:<11} {direct.median:>7.2f}/{direct.p95:<7.2f} "
                f"{gw.median:>8.2f}/{gw.p95:<7.2f} {gw.median - direct.median:>6.2f} {gw.p95 - direct.p95:>6.2f} "
                f"{(f'{cpu:.2f}' if cpu is not None else '-'):>6}  {note}"
            )
        for side in sides:
            if side.errors:
                print(f"  {payload.name} [{side.label}]: {side.errors} failed calls, first: {side.first_error}")
    print("  ms per call, client side; gw CPU = gateway process CPU per measured call, ms")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Cost of the security profiles (always exits 0).")
    parser.add_argument("--calls", type=int, help="calls per side per payload (default 400, --quick 100)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--block", type=int, default=25)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args(argv)
    args.calls = args.calls or (100 if args.quick else 400)
    return args


async def run(bench: Bench) -> None:
    results = []
    for payload in PAYLOADS:
        started = time.perf_counter()
        try:
            results.append((payload, await measure(bench, payload)))
        except Exception as exc:
            print(f"{payload.name}: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        print(f"  ({payload.name} took {time.perf_counter() - started:.1f}s)", file=sys.stderr, flush=True)
    calls = bench.args.calls
    print(f"Security profiles: tools/call over stdio, direct vs gateway, {calls} calls per side, interleaved")
    print_table(results)
    print()
    print_stderr_notes(bench)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)
    with tempfile.TemporaryDirectory(prefix="guardian-bench-") as logdir:
        anyio.run(run, Bench(args, Path(logdir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
