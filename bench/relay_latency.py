"""Relay latency benchmark: what MCP Guardian adds to a `tools/call` round trip.

A benchmark, not a test: it prints tables and PASS/MISS against the latency targets, and
always exits 0. Run it with ``make bench`` or::

    .venv/bin/python bench/relay_latency.py [--calls N] [--sessions N] [--quick]

Part 1 (sequential): for each row a direct client and a gateway client are connected at the
same time and take turns in blocks of calls (ABBA order), after a warm-up, so drift in machine
load hits both sides alike. Part 2 (concurrent): many sessions at once through `guardian serve`,
total calls/s and per-call p50/p95. See bench/README.md for what each row compares.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import io
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))  # `python bench/relay_latency.py` puts bench/ first, not the root

import anyio  # noqa: E402
from mcp import Client, StdioServerParameters  # noqa: E402
from mcp.client.stdio import stdio_client  # noqa: E402

from tests.support.gateway import GUARDIAN, config_file, demo_server_stdio_argv  # noqa: E402
from tests.support.peers import (  # noqa: E402
    ServerProcess,
    demo_server_http_argv,
    free_port,
    http_server_process,
)

EVERYTHING_JS = REPO_ROOT / "tests/node/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
PAYLOAD = "guardian relay benchmark payload 0123456789"

# Targets for the pass-through path with the default inspectors on (ms).
TARGET_STDIO_MEDIAN = 0.3
TARGET_HTTP_MEDIAN = 1.0

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


# --- statistics ---------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of an already sorted sequence."""
    if not sorted_values:
        return math.nan
    pos = (len(sorted_values) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (pos - low)


@dataclass
class Stats:
    n: int
    median: float
    p95: float
    p99: float
    mean: float

    @classmethod
    def of(cls, samples_ns: Sequence[int]) -> Stats:
        ms = sorted(s / 1e6 for s in samples_ns)
        mean = sum(ms) / len(ms) if ms else math.nan
        return cls(len(ms), percentile(ms, 50), percentile(ms, 95), percentile(ms, 99), mean)


# --- processes and clients ----------------------------------------------------------------------


@dataclass
class Bench:
    """Run-wide state: options, and a file per child for its stderr (read back at the end)."""

    args: argparse.Namespace
    logdir: Path
    logs: list[tuple[str, Path]] = field(default_factory=list)

    def _log(self, label: str) -> Path:
        path = self.logdir / f"{len(self.logs):02d}.log"
        self.logs.append((label, path))
        return path

    def stdio_client(self, label: str, argv: Sequence[str], stack: contextlib.ExitStack) -> Client:
        """An SDK client over stdio to `argv`, with the child's stderr kept for the report."""
        errlog = stack.enter_context(self._log(label).open("w", encoding="utf-8"))
        params = StdioServerParameters(command=argv[0], args=list(argv[1:]), cwd=REPO_ROOT)
        return Client(stdio_client(params, errlog=errlog), mode="legacy", cache=None, read_timeout_seconds=60)

    @contextlib.asynccontextmanager
    async def http_process(self, label: str, argv: Sequence[str], port: int) -> AsyncIterator[ServerProcess]:
        """`http_server_process`, with its output (shutdown included) sent to a file that outlives it.

        `exec` keeps the pid, so `.process.pid` is the server itself (for CPU accounting).
        """
        wrapped = ["/bin/sh", "-c", 'exec "$@" >"$0" 2>&1', str(self._log(label)), *argv]
        async with http_server_process(wrapped, port, "/mcp", start_timeout=60) as server:
            yield server


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (not its children), from /proc (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def child_pid(pattern: str, parent: int | None = None) -> int | None:
    """The pid of a child of `parent` (default: this process) whose command line contains `pattern`."""
    parent = os.getpid() if parent is None else parent
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                command = cmdline.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if ppid == parent and pattern in command:
            return int(entry)
    return None


def http_client(url: str) -> Client:
    return Client(url, mode="legacy", cache=None, read_timeout_seconds=60)


def wrap_argv(upstream: Sequence[str]) -> list[str]:
    return [*GUARDIAN, "wrap", "--", *upstream]


def serve_argv(
    port: int, *, upstream: Sequence[str] = (), url: str | None = None, config: str | None = None
) -> list[str]:
    argv = [*GUARDIAN, "serve", "--port", str(port)]
    if config is not None:
        argv += ["--config", config]
    if url is not None:
        argv += ["--upstream", url]
    if upstream:
        argv += ["--", *upstream]
    return argv


def everything_argv() -> list[str]:
    return [shutil.which("node") or "node", str(EVERYTHING_JS), "stdio"]


# --- part 1: interleaved sequential calls -------------------------------------------------------


@dataclass
class Side:
    label: str
    client: Client
    tool: str
    arguments: dict[str, Any]
    pid: int | None = None
    """A gateway process whose CPU time is charged to this side's measured blocks."""
    samples: list[int] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None
    cpu: float = 0.0

    @property
    def cpu_ms_per_call(self) -> float | None:
        return self.cpu / len(self.samples) * 1000 if self.pid is not None and self.samples else None

    async def call(self) -> int | None:
        start = time.perf_counter_ns()
        try:
            result = await self.client.call_tool(self.tool, self.arguments)
        except Exception as exc:
            self._error(f"{type(exc).__name__}: {exc}")
            return None
        elapsed = time.perf_counter_ns() - start
        text = "".join(getattr(block, "text", "") for block in result.content)
        if result.is_error or PAYLOAD not in text:
            self._error(f"unexpected result: is_error={result.is_error} text={text[:120]!r}")
            return None
        return elapsed

    def _error(self, message: str) -> None:
        self.errors += 1
        self.first_error = self.first_error or message


async def interleave(sides: Sequence[Side], calls: int, block: int, warmup: int) -> None:
    """Warm every side up, then alternate blocks of `block` calls, ABBA, until each has `calls`."""
    for side in sides:
        for _ in range(warmup):
            await side.call()
        side.errors, side.first_error = 0, None
    rounds = math.ceil(calls / block)
    for round_index in range(rounds):
        order = sides if round_index % 2 == 0 else list(reversed(sides))
        for side in order:
            cpu_before = _cpu_or_zero(side.pid)
            for _ in range(min(block, calls - len(side.samples) - side.errors)):
                elapsed = await side.call()
                if elapsed is not None:
                    side.samples.append(elapsed)
            side.cpu += _cpu_or_zero(side.pid) - cpu_before


def _cpu_or_zero(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        return cpu_seconds(pid)
    except OSError:
        return 0.0


@dataclass
class Row:
    name: str
    direct: Side
    gateway: Side
    target_median: float
    note: str = ""
    context: bool = False

    @property
    def added_median(self) -> float:
        return Stats.of(self.gateway.samples).median - Stats.of(self.direct.samples).median

    @property
    def added_p95(self) -> float:
        return Stats.of(self.gateway.samples).p95 - Stats.of(self.direct.samples).p95

    @property
    def verdict(self) -> str:
        ok = self.added_median <= self.target_median and self.added_p95 <= 2 * self.target_median
        return "PASS" if ok else "MISS"


def echo_side(label: str, client: Client, pid: int | None = None) -> Side:
    return Side(label, client, "echo", {"text": PAYLOAD}, pid=pid)


async def row_stdio_stdio(bench: Bench) -> list[Row]:
    with contextlib.ExitStack() as stack:
        direct = bench.stdio_client("demo server (stdio, direct)", demo_server_stdio_argv(), stack)
        gateway = bench.stdio_client("guardian wrap -- demo", wrap_argv(demo_server_stdio_argv()), stack)
        async with direct, gateway:
            sides = [echo_side("direct", direct), echo_side("gateway", gateway, child_pid("guardian wrap"))]
            await interleave(sides, bench.args.calls, bench.args.block, bench.args.warmup)
    return [Row("stdio→stdio (demo)", sides[0], sides[1], TARGET_STDIO_MEDIAN)]


async def row_http_http(bench: Bench) -> list[Row]:
    demo_port, gw_port = free_port(), free_port()
    demo_argv = demo_server_http_argv("streamable-http", demo_port)
    async with bench.http_process("demo server (streamable-http)", demo_argv, demo_port) as demo:
        argv = serve_argv(gw_port, url=demo.url)
        async with (
            bench.http_process("guardian serve --upstream <demo http>", argv, gw_port) as gw,
            http_client(demo.url) as direct,
            http_client(gw.url) as gateway,
        ):
            sides = [echo_side("direct", direct), echo_side("gateway", gateway, gw.process.pid)]
            await interleave(sides, bench.args.calls, bench.args.block, bench.args.warmup)
    return [Row("HTTP→HTTP (demo)", sides[0], sides[1], TARGET_HTTP_MEDIAN)]


async def row_http_stdio(bench: Bench) -> list[Row]:
    demo_port, gw_port = free_port(), free_port()
    with contextlib.ExitStack() as stack:
        stdio_direct = bench.stdio_client("demo server (stdio, HTTP→stdio row)", demo_server_stdio_argv(), stack)
        async with (
            bench.http_process(
                "demo server (streamable-http, HTTP→stdio context)",
                demo_server_http_argv("streamable-http", demo_port),
                demo_port,
            ) as demo,
            bench.http_process(
                "guardian serve -- demo (stdio)", serve_argv(gw_port, upstream=demo_server_stdio_argv()), gw_port
            ) as gw,
            stdio_direct,
            http_client(demo.url) as http_direct,
            http_client(gw.url) as gateway,
        ):
            sides = [
                echo_side("direct stdio", stdio_direct),
                echo_side("gateway", gateway, gw.process.pid),
                echo_side("direct http", http_direct),
            ]
            await interleave(sides, bench.args.calls, bench.args.block, bench.args.warmup)
    return [
        Row("HTTP→stdio (demo)", sides[0], sides[1], TARGET_HTTP_MEDIAN, note="baseline: direct stdio"),
        Row(
            "  context: vs HTTP direct",
            sides[2],
            sides[1],
            TARGET_HTTP_MEDIAN,
            note="baseline: demo over streamable HTTP",
            context=True,
        ),
    ]


async def row_everything(bench: Bench) -> list[Row]:
    with contextlib.ExitStack() as stack:
        direct = bench.stdio_client("server-everything (stdio, direct)", everything_argv(), stack)
        gateway = bench.stdio_client("guardian wrap -- server-everything", wrap_argv(everything_argv()), stack)
        async with direct, gateway:
            sides = [
                Side("direct", direct, "echo", {"message": PAYLOAD}),
                Side("gateway", gateway, "echo", {"message": PAYLOAD}, pid=child_pid("guardian wrap")),
            ]
            await interleave(sides, bench.args.calls, bench.args.block, bench.args.warmup)
    return [Row("stdio→stdio (server-everything)", sides[0], sides[1], TARGET_STDIO_MEDIAN)]


def print_rows(rows: Sequence[Row]) -> None:
    head = (
        f"{'row':<32} {'direct med/p95/p99':>20} {'gateway med/p95/p99':>20} "
        f"{'+med':>6} {'+p95':>6} {'ratio':>5} {'gw CPU':>6}  {'target +med/+p95':>16}  verdict"
    )
    print(head)
    print("-" * len(head))
    for row in rows:
        d, g = Stats.of(row.direct.samples), Stats.of(row.gateway.samples)
        target = f"≤{row.target_median:g}/≤{2 * row.target_median:g}"
        verdict = row.verdict + (" (context)" if row.context else "")
        cpu = row.gateway.cpu_ms_per_call
        cpu_text = f"{cpu:.2f}" if cpu is not None else "-"
        print(
            f"{row.name:<32} {_triple(d):>20} {_triple(g):>20} "
            f"{g.median - d.median:>6.2f} {g.p95 - d.p95:>6.2f} {g.median / d.median:>5.2f} {cpu_text:>6}  "
            f"{target:>16}  {verdict}"
        )
    print("  gw CPU = CPU time (user+sys) the gateway process itself spent per measured call, ms")
    for row in rows:
        if row.note:
            print(f"  {row.name.strip()}: {row.note}")
        for side in (row.direct, row.gateway):
            if side.errors:
                print(f"  {row.name.strip()} [{side.label}]: {side.errors} failed calls, first: {side.first_error}")


def _triple(s: Stats) -> str:
    return f"{s.median:.2f}/{s.p95:.2f}/{s.p99:.2f}"


# --- part 2: concurrent sessions ----------------------------------------------------------------


@dataclass
class ConcurrentResult:
    name: str
    sessions: int
    opened: int
    open_seconds: float
    run_seconds: float
    samples: list[int]
    errors: list[str]
    rss_mb: float | None
    processes: int | None
    cpu_ms_per_call: float | None

    @property
    def calls_per_second(self) -> float:
        return len(self.samples) / self.run_seconds if self.run_seconds > 0 else math.nan


async def concurrent_sessions(name: str, url: str, server_pid: int | None, bench: Bench) -> ConcurrentResult:
    """Open `--sessions` sessions (at most `--open-batch` opening at once), then all call at once."""
    sessions, calls, batch = bench.args.sessions, bench.args.session_calls, bench.args.open_batch
    limiter = anyio.CapacityLimiter(batch)
    settled = 0
    opened = 0
    finished = 0
    all_settled, go, all_finished = anyio.Event(), anyio.Event(), anyio.Event()
    samples: list[int] = []
    errors: list[str] = []
    ends: list[int] = []

    def settle(ok: bool) -> None:
        nonlocal settled, opened
        settled += 1
        opened += ok
        if settled == sessions:
            all_settled.set()

    def finish() -> None:
        nonlocal finished
        finished += 1
        if finished == sessions:
            all_finished.set()

    async def session() -> None:
        await limiter.acquire()
        held = True
        try:
            async with http_client(url) as client:
                await client.call_tool("echo", {"text": PAYLOAD})  # warm-up, part of opening
                limiter.release()
                held = False
                settle(True)
                await go.wait()
                for _ in range(calls):
                    start = time.perf_counter_ns()
                    try:
                        result = await client.call_tool("echo", {"text": PAYLOAD})
                    except Exception as exc:
                        errors.append(f"{type(exc).__name__}: {exc}")
                        continue
                    end = time.perf_counter_ns()
                    if result.is_error:
                        errors.append(f"error result: {result.content!r}"[:200])
                        continue
                    samples.append(end - start)
                    ends.append(end)
                finish()
        except Exception as exc:
            errors.append(f"session: {type(exc).__name__}: {exc}"[:300])
            if not go.is_set():
                settle(False)
                finish()
        finally:
            if held:
                limiter.release()

    rss: float | None = None
    processes: int | None = None
    cpu: float | None = None
    open_start = time.perf_counter()
    open_seconds = math.nan
    run_start = time.perf_counter_ns()
    with anyio.move_on_after(bench.args.concurrent_timeout) as bound:
        async with anyio.create_task_group() as tg:
            for _ in range(sessions):
                tg.start_soon(session)
            await all_settled.wait()
            open_seconds = time.perf_counter() - open_start
            if server_pid is not None:
                rss, processes = tree_rss_mb(server_pid)
            cpu_before = _cpu_or_zero(server_pid)
            run_start = time.perf_counter_ns()
            go.set()
            await all_finished.wait()
            if server_pid is not None:
                cpu = _cpu_or_zero(server_pid) - cpu_before
    if bound.cancelled_caught:
        errors.append(f"run: stopped after --concurrent-timeout {bench.args.concurrent_timeout:g}s")
    run_seconds = ((max(ends) if ends else run_start) - run_start) / 1e9
    cpu_per_call = cpu / len(samples) * 1000 if cpu is not None and samples else None
    return ConcurrentResult(
        name, sessions, opened, open_seconds, run_seconds, samples, errors, rss, processes, cpu_per_call
    )


def tree_rss_mb(pid: int) -> tuple[float | None, int | None]:
    """Resident memory (MB) of `pid` and all its descendants, and how many processes that is (Linux)."""
    try:
        parents: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError), open(f"/proc/{entry}/stat") as stat:
                    parents[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
        tree, frontier = {pid}, [pid]
        while frontier:
            parent = frontier.pop()
            children = [p for p, pp in parents.items() if pp == parent and p not in tree]
            tree.update(children)
            frontier.extend(children)
        total_kb = 0
        for member in tree:
            with contextlib.suppress(OSError), open(f"/proc/{member}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total_kb += int(line.split()[1])
        return total_kb / 1024, len(tree)
    except OSError:
        return None, None


async def concurrent_part(bench: Bench) -> list[ConcurrentResult]:
    results: list[ConcurrentResult] = []
    # Each HTTP session gets its own upstream connection; raise the session cap above --sessions.
    config = {"server": {"max_sessions": max(100, bench.args.sessions + 10)}}
    with config_file(config) as path:
        gw_port = free_port()
        argv = serve_argv(gw_port, upstream=demo_server_stdio_argv(), config=path)
        async with bench.http_process("guardian serve -- demo (stdio), concurrent", argv, gw_port) as gw:
            results.append(
                await concurrent_sessions(
                    "gateway HTTP→stdio (a demo process per session)", gw.url, gw.process.pid, bench
                )
            )
        demo_port, gw_port = free_port(), free_port()
        demo_argv = demo_server_http_argv("streamable-http", demo_port)
        async with bench.http_process("demo server (streamable-http), concurrent", demo_argv, demo_port) as demo:
            argv = serve_argv(gw_port, url=demo.url, config=path)
            async with bench.http_process("guardian serve --upstream <demo http>, concurrent", argv, gw_port) as gw:
                results.append(
                    await concurrent_sessions(
                        "gateway HTTP→HTTP (one shared demo server)", gw.url, gw.process.pid, bench
                    )
                )
            results.append(
                await concurrent_sessions("direct HTTP (no gateway, context)", demo.url, demo.process.pid, bench)
            )
    return results


def print_concurrent(results: Sequence[ConcurrentResult], bench: Bench) -> None:
    args = bench.args
    print(
        f"{args.sessions} sessions x {args.session_calls} sequential echo calls each, all sessions calling at once; "
        f"sessions opened at most {args.open_batch} at a time (open time excluded from calls/s)."
    )
    head = (
        f"{'path':<48} {'open':>7} {'calls/s':>8} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'errors':>6} "
        f"{'CPU':>5}  memory"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        s = Stats.of(r.samples)
        memory = f"{r.rss_mb:.0f} MB in {r.processes} processes" if r.rss_mb is not None else "-"
        opened = f"{r.open_seconds:.1f}s" + ("" if r.opened == r.sessions else f" ({r.opened}/{r.sessions} ok)")
        cpu = f"{r.cpu_ms_per_call:.2f}" if r.cpu_ms_per_call is not None else "-"
        print(
            f"{r.name:<48} {opened:>7} {r.calls_per_second:>8.0f} {s.median:>7.2f} {s.p95:>7.2f} {s.p99:>7.2f} "
            f"{len(r.errors):>6} {cpu:>5}  {memory}"
        )
    print(
        "  CPU = ms of CPU per call in the process behind the URL (gateway, or the demo server for direct), "
        "children excluded;\n  memory = RSS of that process and its children with all sessions open"
    )
    for r in results:
        for error in sorted(set(r.errors))[:3]:
            print(f"  {r.name}: {error}")


# --- report -------------------------------------------------------------------------------------


def print_environment(args: argparse.Namespace) -> None:
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count() or 0
    versions = []
    for dist in ("mcp", "mcp-guardian", "anyio", "uvicorn"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions.append(f"{dist} {importlib.metadata.version(dist)}")
    node = "-"
    if EVERYTHING_JS.exists() and shutil.which("node"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            node = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    print("MCP Guardian relay latency benchmark")
    print(f"  python {platform.python_version()} ({platform.python_implementation()}), {platform.platform()}")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"  cpus: {os.cpu_count()} (usable {affinity}); load average at the start {load}")
    print(f"  {', '.join(versions)}; node {node}")
    print(
        f"  sequential: {args.calls} calls per side per row, blocks of {args.block}, {args.warmup} warm-up calls; "
        f"concurrent: {args.sessions} sessions x {args.session_calls} calls"
    )
    print("  Client(mode='legacy', cache=None); tool echo; times are client-side perf_counter_ns per call, in ms")
    print()


ALARMING = ("WARNING", "ERROR", "CRITICAL", "Traceback", "Error:")


def print_stderr_notes(bench: Bench) -> None:
    """Line counts of every child's output, with any warnings, errors and tracebacks quoted."""
    print("output of the servers and gateways (stderr; stdout too for HTTP servers), non-empty lines:")
    for label, path in bench.logs:
        try:
            lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
        except OSError:
            continue
        bad = [line for line in lines if any(k in line for k in ALARMING)]
        print(f"  {label}: {len(lines)} lines, {len(bad)} warnings/errors")
        for line in list(dict.fromkeys(bad))[:4]:
            print(f"    {line[:200]}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="MCP Guardian relay latency benchmark (always exits 0).")
    parser.add_argument("--calls", type=int, help="sequential calls per side per row (default 1000, --quick 200)")
    parser.add_argument("--sessions", type=int, help="concurrent sessions (default 100, --quick 30)")
    parser.add_argument("--session-calls", type=int, help="calls per concurrent session (default 20, --quick 10)")
    parser.add_argument("--quick", action="store_true", help="fewer calls and sessions (about a minute)")
    parser.add_argument("--block", type=int, default=50, help="calls per interleaving block (default 50)")
    parser.add_argument("--warmup", type=int, default=50, help="warm-up calls per side, not counted (default 50)")
    parser.add_argument("--open-batch", type=int, default=10, help="sessions opening at once (default 10)")
    parser.add_argument(
        "--concurrent-timeout", type=float, help="bound per concurrent scenario, seconds (default 120, --quick 45)"
    )
    parser.add_argument("--no-concurrent", action="store_true", help="skip part 2")
    args = parser.parse_args(argv)
    args.calls = args.calls or (200 if args.quick else 1000)
    args.sessions = args.sessions or (30 if args.quick else 100)
    args.session_calls = args.session_calls or (10 if args.quick else 20)
    args.concurrent_timeout = args.concurrent_timeout or (45.0 if args.quick else 120.0)
    return args


async def run(bench: Bench) -> None:
    rows: list[Row] = []
    producers = [row_stdio_stdio, row_http_http, row_http_stdio]
    if EVERYTHING_JS.exists() and shutil.which("node"):
        producers.append(row_everything)
    else:
        print(f"(server-everything row skipped: {EVERYTHING_JS.relative_to(REPO_ROOT)} or node not found)\n")
    for producer in producers:
        started = time.perf_counter()
        try:
            rows.extend(await producer(bench))
        except Exception as exc:
            print(f"{producer.__name__}: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        print(f"  ({producer.__name__} took {time.perf_counter() - started:.1f}s)", file=sys.stderr, flush=True)
    print("Part 1: sequential tools/call echo, direct vs gateway interleaved (ms; +med/+p95 = gateway minus direct)")
    print_rows(rows)
    print()
    if not bench.args.no_concurrent:
        started = time.perf_counter()
        results: list[ConcurrentResult] = []
        try:
            results = await concurrent_part(bench)
        except Exception as exc:
            print(f"concurrent part failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        print(f"  (concurrent part took {time.perf_counter() - started:.1f}s)", file=sys.stderr, flush=True)
        print("Part 2: concurrent sessions through `guardian serve` over streamable HTTP")
        print_concurrent(results, bench)
        print()
    print_stderr_notes(bench)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # keep the report and the stderr progress lines in order
    print_environment(args)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="guardian-bench-") as logdir:
        anyio.run(run, Bench(args, Path(logdir)))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\ntotal {time.perf_counter() - started:.0f}s; load average at the end {load}")
    return 0  # a benchmark: MISS is reported, never a failure


if __name__ == "__main__":
    sys.exit(main())
