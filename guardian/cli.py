"""`guardian wrap | serve | connect | scan | check-config | audit verify | keys | pins | policy`.

Everything the CLI does is also reachable through `guardian.Guardian`; this module
only turns flags into config overrides, sets up logging, and runs the right loop.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from typing import Any

import anyio

from guardian import __version__
from guardian import scan as scan_cli
from guardian.auth import keys_cli
from guardian.config import Config, validate
from guardian.documents import read_file
from guardian.errors import ConfigError
from guardian.gateway import Guardian, check_inspectors
from guardian.observability.audit import AuditLogError, verify
from guardian.pins import cli as pins_cli

logger = logging.getLogger("guardian")

EPILOG_WRAP = """example (Claude Desktop / IDE `mcpServers` entry):
  "everything": {"command": "guardian",
                 "args": ["wrap", "--", "npx", "-y", "@modelcontextprotocol/server-everything", "stdio"]}"""


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", metavar="FILE", help="JSON or YAML config (default: $MCP_GUARDIAN_CONFIG)")
    parser.add_argument(
        "--profile", metavar="NAME|FILE", help="security profile: basic, standard (default), enterprise, or a YAML file"
    )
    parser.add_argument("--log-level", metavar="LEVEL", help="DEBUG, INFO, WARNING, ERROR (default INFO)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="guardian", description="MCP Guardian: a security gateway for the Model Context Protocol."
    )
    parser.add_argument("--version", action="version", version=f"guardian {__version__}")
    commands = parser.add_subparsers(dest="action", metavar="COMMAND", required=True)

    wrap = commands.add_parser(
        "wrap",
        help="stdio in, stdio out: wrap a stdio MCP server command",
        description="Run CMD as a stdio MCP server and relay a stdio client to it through the gateway.",
        epilog=EPILOG_WRAP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(wrap)
    wrap.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD ARGS", help="the server to run")

    serve = commands.add_parser(
        "serve",
        help="serve an MCP server over streamable HTTP (/mcp) and SSE (/sse)",
        description="Serve an upstream (a URL, or a stdio command after --) over HTTP through the gateway.",
    )
    _common(serve)
    serve.add_argument("--host", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="bind port (default 8080)")
    serve.add_argument("--upstream", metavar="URL", help="upstream MCP server URL")
    serve.add_argument(
        "--upstream-transport", choices=["streamable-http", "sse"], help="force the upstream URL's transport"
    )
    serve.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this certificate (chain)")
    serve.add_argument("--tls-key", metavar="PEM", help="the certificate's private key (if not in --tls-cert)")
    serve.add_argument("--client-ca", metavar="PEM", help="mTLS: client certificates must chain to this CA")
    serve.add_argument("--client-cert", choices=["required", "optional"],
                       help="with --client-ca: must every client present a certificate (default: required)")
    serve.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD ARGS", help="a stdio server to run")

    connect = commands.add_parser(
        "connect",
        help="stdio in, remote HTTP/SSE server out",
        description="Let a stdio-only client reach a remote MCP server through the gateway.",
    )
    _common(connect)
    connect.add_argument(
        "--upstream-transport", choices=["streamable-http", "sse"], help="force the URL's transport"
    )
    connect.add_argument("url", help="the remote server's URL (…/mcp, or …/sse for SSE)")

    check = commands.add_parser(
        "check-config", help="validate a config file", description="Validate a config file; exit 0 if valid."
    )
    check.add_argument("file")

    audit = commands.add_parser(
        "audit", help="work with audit logs", description="Work with hash-chained audit logs."
    )
    audit_commands = audit.add_subparsers(dest="audit_action", metavar="SUBCOMMAND", required=True)
    audit_verify = audit_commands.add_parser(
        "verify",
        help="check an audit log's hash chain",
        description="Check an audit log's hash chain: exit 0 if intact, 1 naming the first bad line, "
        "2 if the file cannot be read.",
    )
    audit_verify.add_argument("file")
    keys_cli.add_parser(commands)
    pins_cli.add_parser(commands)
    scan_cli.add_parser(commands)
    policy = commands.add_parser(
        "policy", help="check and test access policies",
        description="Work with access policies (see policies/access/README.md).",
    )
    policy_commands = policy.add_subparsers(dest="policy_action", metavar="SUBCOMMAND", required=True)
    policy_check = policy_commands.add_parser(
        "check", help="validate a policy file", description="Exit 0 if the policy loads, 1 naming each problem."
    )
    policy_check.add_argument("policy")
    policy_test = policy_commands.add_parser(
        "test", help="run table-driven cases against a policy",
        description="Exit 0 if all cases pass, 1 if one fails, 2 if either file is invalid.",
    )
    policy_test.add_argument("policy")
    policy_test.add_argument("cases")
    policy_test.add_argument("--verbose", "-v", action="store_true", help="list passing cases too")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.action == "check-config":
        return check_config(args.file)
    if args.action == "audit":
        return audit_verify(args.file)
    if args.action == "keys":
        return keys_cli.run(args)
    if args.action == "pins":
        return pins_cli.run(args)
    if args.action == "scan":
        return scan_cli.run(args)
    if args.action == "policy":
        return policy_command(args)
    try:
        config = Config.load(args.config, overrides=_overrides(args))
        if config.upstream is None and not (args.action == "serve" and config.upstreams):
            raise ConfigError([f"{args.action}: no upstream server: give one on the command line or in the config"])
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"guardian: {problem}", file=sys.stderr)
        return 2
    _setup_logging(config.monitoring.log_level)
    try:
        guardian = Guardian(config)
    except AuditLogError as exc:
        print(f"guardian: {exc}", file=sys.stderr)
        return 2
    try:
        if args.action == "serve":
            return _serve(guardian)
        failure = anyio.run(_run_stdio, guardian, backend_options=_backend_options())
    except KeyboardInterrupt:
        return 130
    if failure is not None:
        print(f"guardian: {failure}", file=sys.stderr)
        return 1
    return 0


def _backend_options() -> dict[str, Any]:
    """uvloop where installed: it halves the event loop's share of every relayed message."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return {}
    return {"use_uvloop": True}


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if args.profile:
        overrides["security_profile"] = args.profile
    if args.log_level:
        overrides["monitoring"] = {"log_level": args.log_level}
    command = [c for c in getattr(args, "command", None) or []]
    if command and command[0] == "--":
        command = command[1:]
    transport = getattr(args, "upstream_transport", None)
    url = getattr(args, "url", None) or getattr(args, "upstream", None)
    if url and command:
        raise ConfigError([f"{args.action}: give either --upstream URL or -- CMD, not both"])
    if command:
        overrides["upstream_mcp_server"] = {"command": command}
    elif url:
        overrides["upstream_mcp_server"] = {"url": url, **({"transport": transport} if transport else {})}
    server: dict[str, Any] = {}
    if getattr(args, "host", None):
        server["bind_host"] = args.host
    if getattr(args, "port", None) is not None:
        server["bind_port"] = args.port
    tls_flags = {"cert": "tls_cert", "key": "tls_key", "client_ca": "client_ca", "client_cert": "client_cert"}
    tls = {key: getattr(args, flag) for key, flag in tls_flags.items() if getattr(args, flag, None)}
    if tls:
        server["tls"] = tls
    if server:
        overrides["server"] = server
    return overrides


def check_config(path: str) -> int:
    try:
        data = read_file(path)
        problems = validate(data)
        if not problems:
            config = Config.from_dict(data, path)
            try:
                check_inspectors(config)
            except ConfigError as exc:
                raise ConfigError([f"{path}: {p}" for p in exc.problems]) from None
    except ConfigError as exc:
        problems = exc.problems
    else:
        problems = [f"{path}: {p}" for p in problems]
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1
    print(f"{path}: OK")
    return 0


def policy_command(args: argparse.Namespace) -> int:
    from guardian.policy.testing import check_policy, run_cases

    if args.policy_action == "check":
        return check_policy(args.policy)
    report = run_cases(args.policy, args.cases)
    print(report.text(args.verbose), file=sys.stderr if report.exit_code == 2 else sys.stdout)
    return report.exit_code


def audit_verify(path: str) -> int:
    try:
        result = verify(path)
    except OSError as exc:
        print(f"guardian: {path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if not result.ok:
        print(f"{path}: {result.problem}")
        return 1
    print(f"{path}: OK, {result.records} records")
    return 0


def _setup_logging(level: str) -> None:
    """Our loggers at `level`; other libraries' only from WARNING (httpx2 logs every request at INFO)."""
    numeric = getattr(logging, level.upper(), logging.INFO)
    logging.basicConfig(
        stream=sys.stderr,
        level=max(numeric, logging.WARNING),
        format="guardian %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("guardian").setLevel(numeric)


async def _run_stdio(guardian: Guardian) -> str | None:
    """One stdio session; SIGTERM/SIGINT end it, and the upstream goes down with it."""
    failure: str | None = None
    async with anyio.create_task_group() as tg:

        async def on_signal() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
                async for signum in signals:
                    logger.info("received %s, shutting down", signal.Signals(signum).name)
                    tg.cancel_scope.cancel()
                    return

        tg.start_soon(on_signal)
        failure = await guardian.run_stdio()
        tg.cancel_scope.cancel()
    return failure


def _serve(guardian: Guardian) -> int:
    import uvicorn

    from guardian.auth.mtls import uvicorn_options

    server = guardian.config.server
    base = f"{'https' if server.tls else 'http'}://{server.bind_host}:{server.bind_port}"
    config = guardian.config
    named = "".join(f"\n  {name}: {base}/mcp/{name}" for name in config.upstreams if name != config.main_upstream_name)
    front = config.upstream.label if config.upstream is not None else ", ".join(config.upstreams)
    print(
        f"MCP Guardian {__version__} in front of {front}\n"
        f"  streamable HTTP: {base}/mcp\n  SSE:             {base}/sse\n  health:          {base}/health\n"
        f"  metrics:         {base}/metrics{named}\n"
        f"  e.g. npx @modelcontextprotocol/inspector --cli {base}/mcp --method tools/list",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(
        guardian.asgi_app(),
        host=server.bind_host,
        port=server.bind_port,
        log_level=guardian.config.monitoring.log_level.lower(),
        access_log=guardian.config.monitoring.log_level.upper() == "DEBUG",
        lifespan="on",
        timeout_graceful_shutdown=5,
        **(uvicorn_options(server.tls) if server.tls else {}),
    )
    return 0
