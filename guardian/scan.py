"""`guardian scan [--json] [--baseline FILE] (-- CMD ARGS... | URL)`: audit a server's definitions.

Connects to a server the way the gateway does (`open_upstream`: a command over stdio, a URL
over streamable HTTP or SSE), performs the `initialize` handshake, lists its tools, prompts,
resources and resource templates (following `nextCursor` to the end) and reads its
`instructions`, then runs on them the detectors a gateway runs on definitions, with the options
of `--profile` (default `standard`): tool poisoning (its own rules, the precise prompt-injection
rule families, shadowing against `--known-tool` names) and hidden characters. With
`--baseline`, every tool, prompt, resource template and the instructions are compared with a
pins baseline (`guardian pins export`).

The raw JSON-RPC results are inspected, not an SDK's parsed models, so nothing a client
would receive is dropped or normalised before the checks. Nothing is called: no tool is
run, no prompt or resource is read.

Exit status: 0 clean, 1 findings (any, warnings included: this is for CI), 2 the server
could not be started or reached, or a file could not be used (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TextIO

import anyio
from mcp.shared.message import ClientMessageMetadata, SessionMessage
from mcp_types import JSONRPCError, JSONRPCNotification, JSONRPCRequest, JSONRPCResponse
from mcp_types.version import LATEST_HANDSHAKE_VERSION

from guardian import __version__, errors
from guardian.config import UpstreamConfig, parse_upstream, resolve_inspectors
from guardian.content import Path, format_path
from guardian.decision import Finding
from guardian.errors import ConfigError, UpstreamStartError
from guardian.events import LISTING_KEYS, Direction, Event, SessionInfo
from guardian.inspectors.hidden_characters import HiddenCharactersInspector
from guardian.inspectors.poisoning import ENTRY_KINDS, PoisoningPolicy, ToolPoisoningInspector, ToolRegistry
from guardian.relay import ReadStream, WriteStream
from guardian.transports.http_client import VERSION_HEADER
from guardian.transports.upstream import open_upstream

DEFAULT_TIMEOUT: Final = 30.0
MAX_PAGES: Final = 1000
MAX_MESSAGE_BYTES: Final = 32 * 1024 * 1024

# What is listed, in the order it is checked: tools first, so the other checks know the tool names.
LISTS: Final[tuple[tuple[str, str, str], ...]] = (
    ("tools/list", "tools", "tools"),
    ("prompts/list", "prompts", "prompts"),
    ("resources/list", "resources", "resources"),
    ("resources/templates/list", "resourceTemplates", "resources"),
)


class ScanError(Exception):
    """The server could not be scanned (not started, not reachable, broke the protocol)."""


@dataclass(frozen=True, slots=True)
class ScanTarget:
    """A command to run (stdio) or a URL (streamable HTTP, or SSE for a `/sse` path)."""

    command: tuple[str, ...] = ()
    url: str | None = None
    transport: str | None = None
    """Force a URL's transport: `streamable-http` or `sse`."""

    def config(self, timeout: float) -> UpstreamConfig:
        spec: dict[str, Any] = {"url": self.url} if self.url is not None else {"command": list(self.command)}
        spec.update(connect_timeout=min(timeout, 10.0), read_timeout=timeout)
        return parse_upstream(spec, self.transport)

    @property
    def label(self) -> str:
        return self.url if self.url is not None else shlex.join(self.command)


@dataclass(frozen=True, slots=True)
class ScanFinding:
    detector: str
    kind: str
    action: str
    definition: str
    """What it is about: `tool "add"`, `server instructions`, ..."""
    location: str
    """The JSON path in the listing result, e.g. `$.tools[0].inputSchema.properties.a.description`."""
    message: str
    excerpt: str | None = None

    def to_dict(self) -> dict[str, Any]:
        record = {"detector": self.detector, "kind": self.kind, "action": self.action,
                  "definition": self.definition, "location": self.location, "message": self.message}
        if self.excerpt is not None:
            record["excerpt"] = self.excerpt
        return record


@dataclass(slots=True)
class ScanReport:
    target: str
    server: dict[str, Any] = field(default_factory=dict)
    listings: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    instructions: str | None = None
    findings: list[ScanFinding] = field(default_factory=list)
    baseline: str | None = None

    @property
    def definitions(self) -> int:
        return sum(len(items) for items in self.listings.values()) + (self.instructions is not None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "server": self.server,
            "counts": {key: len(items) for key, items in self.listings.items()}
            | {"instructions": int(self.instructions is not None)},
            "findings": [f.to_dict() for f in self.findings],
            "baseline": self.baseline,
            "definitions": {**self.listings, "instructions": self.instructions},
        }


# ---------------------------------------------------------------------------------------------
# Talking to the server


class _Session:
    """A minimal MCP client over the gateway's upstream streams: requests one at a time, with
    the server's own requests (ping, roots) answered while waiting."""

    def __init__(self, read: ReadStream, write: WriteStream, timeout: float, http: bool) -> None:
        self._read = read
        self._write = write
        self._timeout = timeout
        self._http = http
        self._next_id = 0
        self.protocol_version: str | None = None

    def _metadata(self) -> ClientMessageMetadata | None:
        if self._http and self.protocol_version is not None:
            return ClientMessageMetadata(headers={VERSION_HEADER: self.protocol_version})
        return None

    async def notify(self, method: str) -> None:
        await self._write.send(SessionMessage(JSONRPCNotification(jsonrpc="2.0", method=method),
                                              metadata=self._metadata()))

    async def request(self, method: str, params: Mapping[str, Any]) -> dict[str, Any]:
        self._next_id += 1
        request_id = self._next_id
        message = JSONRPCRequest(jsonrpc="2.0", id=request_id, method=method, params=dict(params))
        try:
            await self._write.send(SessionMessage(message, metadata=self._metadata()))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise ScanError(f"the server went away before {method}") from exc
        with anyio.move_on_after(self._timeout):
            while True:
                try:
                    item = await self._read.receive()
                except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError) as exc:
                    raise ScanError(f"the server closed the connection during {method}") from exc
                if isinstance(item, Exception):
                    continue  # a line that is not JSON-RPC (a server logging to stdout): not an answer
                answer = item.message
                if isinstance(answer, JSONRPCRequest):
                    await self._answer(answer)
                elif isinstance(answer, JSONRPCResponse) and answer.id == request_id:
                    return answer.result
                elif isinstance(answer, JSONRPCError) and answer.id == request_id:
                    if answer.error.code in (errors.UPSTREAM_UNAVAILABLE, errors.UPSTREAM_TIMEOUT):
                        raise ScanError(answer.error.message)  # our HTTP client's word for "unreachable"
                    raise _RequestFailed(method, answer.error.code, answer.error.message)
        raise ScanError(f"no answer to {method} within {self._timeout:g}s")

    async def _answer(self, request: JSONRPCRequest) -> None:
        reply: JSONRPCResponse | JSONRPCError
        if request.method == "ping":
            reply = JSONRPCResponse(jsonrpc="2.0", id=request.id, result={})
        elif request.method == "roots/list":
            reply = JSONRPCResponse(jsonrpc="2.0", id=request.id, result={"roots": []})
        else:
            reply = errors.error_response(request.id, errors.METHOD_NOT_FOUND, "guardian scan does not answer this")
        await self._write.send(SessionMessage(reply, metadata=self._metadata()))


class _RequestFailed(ScanError):
    def __init__(self, method: str, code: int, message: str) -> None:
        super().__init__(f"the server answered {method} with error {code}: {message}")
        self.code = code


async def fetch_definitions(target: ScanTarget, timeout: float = DEFAULT_TIMEOUT) -> ScanReport:
    """Connect, initialize and list everything; `ScanError` if the server cannot be scanned."""
    try:
        config = target.config(timeout)
    except ConfigError as exc:
        raise ScanError("; ".join(exc.problems)) from None
    report = ScanReport(target.label)
    try:
        async with open_upstream(config, MAX_MESSAGE_BYTES) as (read, write):
            session = _Session(read, write, timeout, config.transport == "streamable-http")
            await _list_all(session, report)
    except BaseException as exc:  # the HTTP client's task group wraps what went wrong in a group
        cause = _cause(exc)
        if isinstance(cause, ScanError):
            raise cause from None
        if isinstance(cause, UpstreamStartError):
            raise ScanError(str(cause)) from None
        if isinstance(cause, OSError):
            raise ScanError(f"cannot reach {target.label}: {cause.strerror or cause}") from None
        raise
    return report


def _cause(exc: BaseException) -> BaseException:
    """The first scan-relevant error inside (possibly nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup):
        inner = [e for e in exc.exceptions if isinstance(e, ScanError | UpstreamStartError | OSError)]
        exc = inner[0] if inner else exc.exceptions[0]
    return exc


async def _list_all(session: _Session, report: ScanReport) -> None:
    init = await session.request("initialize", {
        "protocolVersion": LATEST_HANDSHAKE_VERSION,
        # Every client capability, so that tools a server offers only to capable clients are listed too;
        # nothing is called, so none is exercised (a server request is answered "method not found").
        "capabilities": {"roots": {"listChanged": False}, "sampling": {}, "elicitation": {}},
        "clientInfo": {"name": "guardian-scan", "version": __version__},
    })
    if not isinstance(init, dict):
        raise ScanError("the server's initialize result is not an object")
    version = init.get("protocolVersion")
    session.protocol_version = version if isinstance(version, str) else LATEST_HANDSHAKE_VERSION
    await session.notify("notifications/initialized")
    info = _mapping(init.get("serverInfo"))
    report.server = {"name": info.get("name"), "version": info.get("version"),
                     "protocolVersion": session.protocol_version}
    instructions = init.get("instructions")
    report.instructions = instructions if isinstance(instructions, str) else None
    capabilities = _mapping(init.get("capabilities"))
    for method, key, capability in LISTS:
        if capability not in capabilities:
            continue
        try:
            report.listings[key] = await _paginate(session, method, key)
        except _RequestFailed as exc:
            if exc.code != errors.METHOD_NOT_FOUND:
                raise


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


async def _paginate(session: _Session, method: str, key: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    seen: set[str] = set()
    for _ in range(MAX_PAGES):
        result = await session.request(method, {"cursor": cursor} if cursor is not None else {})
        page = result.get(key) if isinstance(result, dict) else None
        if not isinstance(page, list):
            raise ScanError(f"the server's {method} result has no `{key}` list")
        items.extend(item for item in page if isinstance(item, dict))
        following = result.get("nextCursor")
        if not isinstance(following, str) or not following or following in seen:
            return items
        seen.add(following)
        cursor = following
    raise ScanError(f"{method} did not end after {MAX_PAGES} pages")


# ---------------------------------------------------------------------------------------------
# Checking what was listed


def check_definitions(report: ScanReport, policy: PoisoningPolicy | None = None,
                      hidden: HiddenCharactersInspector | None = None) -> list[ScanFinding]:
    """The definition detectors over the listings, as the gateway runs them on these results:
    tool poisoning (with shadowing against `known_tools`, and the precise prompt-injection rule
    families unless the policy turns them off) and hidden characters (default options unless
    `hidden` is given)."""
    session = SessionInfo(session_id="scan", transport="scan", upstream=report.target)
    detectors: list[Any] = [ToolPoisoningInspector(policy, ToolRegistry()), hidden or HiddenCharactersInspector()]
    results: list[tuple[str, dict[str, Any]]] = [
        (method, {key: report.listings[key]}) for method, key, _ in LISTS if key in report.listings
    ]
    if report.instructions is not None:
        results.append(("initialize", {"instructions": report.instructions}))
    findings: list[ScanFinding] = []
    for index, (method, result) in enumerate(results):
        request = JSONRPCRequest(jsonrpc="2.0", id=index, method=method, params={})
        event = Event(session, Direction.SERVER_TO_CLIENT, JSONRPCResponse(jsonrpc="2.0", id=index, result=result),
                      request=request)
        for detector in detectors:
            for finding in detector.response(event):
                findings.append(_scan_finding(finding, result))
    return _unique(findings)


def _scan_finding(finding: Finding, result: Mapping[str, Any]) -> ScanFinding:
    path: Path = finding.path[1:] if finding.path and finding.path[0] == "result" else (finding.path or ())
    action = "remove" if finding.remove else str(finding.action)
    excerpt = finding.excerpt
    if excerpt is not None and excerpt.startswith("$.result."):
        excerpt = "$." + excerpt[len("$.result."):]  # paths are given within the listing result
    return ScanFinding(finding.detector, finding.kind, action, _definition_of(path, result),
                       format_path(path) if path else "$", finding.message, excerpt)


def _definition_of(path: Path, result: Mapping[str, Any]) -> str:
    if not path:
        return "listing"
    key = path[0]
    if key == "instructions":
        return "server instructions"
    noun = ENTRY_KINDS.get(str(key))
    items = result.get(str(key))
    if noun is None or len(path) < 2 or not isinstance(path[1], int) or not isinstance(items, list):
        return str(key)
    entry = items[path[1]] if path[1] < len(items) else {}
    name = entry.get("name") or entry.get("uri") or entry.get("uriTemplate") if isinstance(entry, dict) else None
    return f"{noun} {json.dumps(name, ensure_ascii=True)}" if isinstance(name, str) else f"{noun} #{path[1]}"


def _unique(findings: list[ScanFinding]) -> list[ScanFinding]:
    seen: set[tuple[str, str, str, str]] = set()
    out = []
    for finding in findings:
        key = (finding.detector, finding.kind, finding.definition, finding.location)
        if key not in seen:
            seen.add(key)
            out.append(finding)
    return out


# ---------------------------------------------------------------------------------------------
# Baselines


def compare_baseline(report: ScanReport, path: str, upstream: str | None = None) -> list[ScanFinding]:
    """Differences from a pins baseline (`guardian pins export`): definitions changed, new, or gone.

    The baseline's pins for `upstream` (default: the scanned target's label, or the baseline's
    only upstream) are compared by the pins fingerprint, which ignores re-wrapped whitespace and
    key order but nothing the model reads.
    """
    from guardian.pins import baseline as baselines
    from guardian.pins.fingerprint import LISTINGS as PIN_LISTINGS
    from guardian.pins.fingerprint import fingerprint, instructions_fingerprint

    try:
        loaded = baselines.load(path, baselines.signing_key())
    except baselines.BaselineError as exc:
        raise ScanError(str(exc)) from None
    upstreams = sorted({pin.upstream for pin in loaded.pins.values()})
    chosen = upstream or (report.target if report.target in upstreams else None)
    if chosen is None:
        if len(upstreams) != 1:
            raise ScanError(f"{path}: pins for {len(upstreams)} upstreams ({', '.join(upstreams) or 'none'}); "
                            "choose one with --baseline-upstream")
        chosen = upstreams[0]
    pins: dict[tuple[str, str], Any] = {
        (pin.kind, pin.name): pin for pin in loaded.pins.values() if pin.upstream == chosen
    }
    current: dict[tuple[str, str], tuple[str, str]] = {}
    for method, kind in PIN_LISTINGS.items():
        key = LISTING_KEYS[method]
        for index, item in enumerate(report.listings.get(key, [])):
            found = fingerprint(kind, item)
            if found is not None:
                current[(kind, found.name)] = (found.hash, f"$.{key}[{index}]")
    if report.instructions is not None:
        found = instructions_fingerprint(report.instructions)
        current[("instructions", found.name)] = (found.hash, "$.instructions")
    findings = []
    for (kind_name, name), (digest, location) in sorted(current.items()):
        noun = _pin_noun(kind_name, name)
        pin = pins.get((kind_name, name))
        if pin is None:
            findings.append(ScanFinding("pins", "pin_new", "block", noun, location, f"{noun} is not in the baseline"))
        elif pin.hash != digest:
            findings.append(ScanFinding("pins", "pin_changed", "block", noun, location,
                                        f"{noun} differs from the baseline",
                                        f"baseline {pin.hash[:12]}, now {digest[:12]}"))
    for kind_name, name in sorted(set(pins) - set(current)):
        noun = _pin_noun(kind_name, name)
        findings.append(ScanFinding("pins", "pin_missing", "warn", noun, "$",
                                    f"{noun} is in the baseline but not listed"))
    return findings


def _pin_noun(kind: str, name: str) -> str:
    return "server instructions" if kind == "instructions" else f"{kind.replace('_', ' ')} {json.dumps(name)}"


# ---------------------------------------------------------------------------------------------
# Running a scan and printing it


async def scan_server(target: ScanTarget, policy: PoisoningPolicy | None = None,
                      timeout: float = DEFAULT_TIMEOUT, hidden: HiddenCharactersInspector | None = None) -> ScanReport:
    """Fetch and check a server's definitions (no baseline); `ScanError` if it cannot be reached."""
    report = await fetch_definitions(target, timeout)
    report.findings = check_definitions(report, policy, hidden)
    return report


def print_report(report: ScanReport, out: TextIO) -> None:
    server = report.server
    name = " ".join(str(server.get(k)) for k in ("name", "version") if server.get(k)) or "(unnamed server)"
    print(f"guardian scan: {report.target}", file=out)
    print(f"server: {_printable(name)} (protocol {server.get('protocolVersion')})", file=out)
    listed = [f"{len(items)} {key if key != 'resourceTemplates' else 'resource templates'}"
              for key, items in report.listings.items()]
    if report.instructions is not None:
        listed.append(f"instructions ({len(report.instructions)} characters)")
    print(f"listed: {', '.join(listed) or 'nothing'}", file=out)
    if report.baseline:
        print(f"baseline: {report.baseline}", file=out)
    if not report.findings:
        print(f"\nno findings in {report.definitions} definitions", file=out)
        return
    by_definition: dict[str, list[ScanFinding]] = {}
    for finding in report.findings:
        by_definition.setdefault(finding.definition, []).append(finding)
    print(f"\n{len(report.findings)} finding(s) in {len(by_definition)} definition(s):", file=out)
    for definition, findings in by_definition.items():
        print(f"\n  {_printable(definition)}", file=out)
        for finding in findings:
            print(f"    [{finding.action}] {finding.detector}/{finding.kind}: {finding.message}", file=out)
            detail = finding.excerpt or finding.location
            print(f"        {_printable(detail)}", file=out)


def _printable(text: str) -> str:
    """Server text made safe for a terminal: control, format and non-ASCII characters escaped."""
    return text.encode("ascii", "backslashreplace").decode("ascii").replace("\x1b", "\\x1b")


# --- argparse wiring -------------------------------------------------------------------------------


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `scan` under the CLI's subcommands."""
    scan = commands.add_parser(
        "scan",
        help="list a server's tools, prompts and resources and report poisoned definitions",
        description="Connect to an MCP server (a command after --, or a URL), list its definitions and "
        "report poisoning, shadowing, hidden characters and prompt injection (and changes from a pins "
        "baseline). Exit 0 clean, 1 findings, 2 the server could not be scanned.",
    )
    configure_parser(scan)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--baseline", metavar="FILE", help="compare with a pins baseline (guardian pins export)")
    parser.add_argument("--baseline-upstream", metavar="NAME",
                        help="the baseline's upstream to compare with (default: this target, or its only one)")
    parser.add_argument("--upstream-transport", choices=["streamable-http", "sse"], help="force a URL's transport")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help=f"per request (default {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--known-tool", action="append", default=[], dest="known_tools", metavar="NAME",
                        help="a tool of another server the client uses: reusing or naming it is shadowing "
                        "(repeatable)")
    parser.add_argument("--profile", default="standard", metavar="NAME|FILE",
                        help="the security profile whose tool_poisoning and hidden_characters options apply "
                        "(default standard)")
    parser.add_argument("--no-injection", action="store_true",
                        help="leave out the prompt-injection rule families (option injection_rules: false)")
    parser.add_argument("--disable-rule", action="append", default=[], dest="rules_disabled", metavar="RULE",
                        help="a tool_poisoning rule id to skip (repeatable)")
    parser.add_argument("target", nargs=argparse.REMAINDER, metavar="-- CMD ARGS | URL",
                        help="the server: a command line after --, or its URL")


def target_of(words: Sequence[str], transport: str | None = None) -> ScanTarget:
    words = list(words)
    if words and words[0] == "--":
        words = words[1:]
    if not words:
        raise ScanError("no server given: pass a URL, or a command after --")
    if len(words) == 1 and words[0].startswith(("http://", "https://")):
        return ScanTarget(url=words[0], transport=transport)
    return ScanTarget(command=tuple(words))


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Carry out a parsed `scan` command: 0 clean, 1 findings, 2 could not scan."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        policy, hidden = _detectors(args)
        target = target_of(args.target, args.upstream_transport)
        report = anyio.run(scan_server, target, policy, args.timeout, hidden)
        if args.baseline:
            report.baseline = args.baseline
            report.findings.extend(compare_baseline(report, args.baseline, args.baseline_upstream))
    except ConfigError as exc:
        print(f"guardian scan: {'; '.join(exc.problems)}", file=err)
        return 2
    except ScanError as exc:
        print(f"guardian scan: {exc}", file=err)
        return 2
    if args.json:
        json.dump(report.to_dict(), out, indent=1, ensure_ascii=True)
        print(file=out)
    else:
        print_report(report, out)
    return 1 if report.findings else 0


def _detectors(args: argparse.Namespace) -> tuple[PoisoningPolicy, HiddenCharactersInspector | None]:
    """The profile's `tool_poisoning` and `hidden_characters` options, with the command's flags over them."""
    blocks = resolve_inspectors(args.profile, {})
    poisoning = dict(blocks[ToolPoisoningInspector.name].options) if ToolPoisoningInspector.name in blocks else {}
    poisoning["known_tools"] = [*poisoning.get("known_tools", ()), *args.known_tools]
    poisoning["rules_disabled"] = [*poisoning.get("rules_disabled", ()), *args.rules_disabled]
    if args.no_injection:
        poisoning["injection_rules"] = False
    poisoning.pop("shared_registry", None)  # a scan is one server: nothing to share
    hidden_block = blocks.get(HiddenCharactersInspector.name)
    hidden = None
    if hidden_block is None or hidden_block.enabled:
        hidden = HiddenCharactersInspector.from_options(hidden_block.options if hidden_block else {})
    return PoisoningPolicy.from_options(poisoning), hidden


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m guardian.scan ...`: the command on its own."""
    parser = argparse.ArgumentParser(prog="guardian scan", description=__doc__.splitlines()[0] if __doc__ else None)
    configure_parser(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
