"""MCP Guardian's bundled example upstream: a small MCP server that exercises every feature.

A security gateway sits between a client and servers like this one, so its tests need an
upstream that does everything a real server can do to a relay: plain tool results,
structured results, large results, long-running (cancellable) calls, a crash mid-call,
server-to-client requests (sampling, elicitation, roots), progress and log notifications,
a tool list that changes at runtime, resources, a resource template and a prompt.

Run it::

    python examples/demo_server.py                                  # stdio (default)
    python examples/demo_server.py streamable-http --port 8765      # http://127.0.0.1:8765/mcp
    python examples/demo_server.py sse --port 8766                  # http://127.0.0.1:8766/sse

HTTP transports bind 127.0.0.1 unless ``--host`` says otherwise.

Built with the ``mcp`` 2.x SDK (``MCPServer``), so one process serves both protocol eras:
the handshake era (``initialize``, 2024-11-05 .. 2025-11-25) and the modern era
(``server/discover``, 2026-07-28). Where the eras differ the tools adapt:

* ``sample``, ``ask`` and ``roots`` use the SDK's ``Resolve(...)`` parameters. In the
  handshake era the SDK sends ``sampling/createMessage`` / ``elicitation/create`` /
  ``roots/list`` to the client mid-call (tied to the ``tools/call`` request id); in the
  modern era, which has no server-to-client requests, it answers the call with an
  ``InputRequiredResult`` and the client retries with the answers.
* ``add_tool`` sends ``notifications/tools/list_changed`` in the handshake era and
  publishes the change to ``subscriptions/listen`` streams in the modern era.
* ``progress`` log messages reach a modern-era client only if its request opted in
  (``Client(log_level=...)``); handshake-era clients get every level.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import warnings
from functools import partial
from typing import Annotated, Literal

import anyio
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import NotificationOptions
from mcp.server.mcpserver import (
    AcceptedElicitation,
    Context,
    Elicit,
    ElicitationResult,
    ListRoots,
    MCPServer,
    Resolve,
    Sample,
)
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.types import (
    CreateMessageResult,
    EmptyResult,
    ListRootsResult,
    SamplingMessage,
    SetLevelRequestParams,
    TextContent,
    ToolListChangedNotification,
)
from mcp.types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel, Field

# Logging, sampling and roots are deprecated *in the 2026-07-28 spec*, but they are exactly
# the handshake-era features a gateway has to relay, so the demo uses them on purpose.
warnings.filterwarnings("ignore", category=MCPDeprecationWarning)

Transport = Literal["stdio", "streamable-http", "sse"]

INSTRUCTIONS = (
    "MCP Guardian demo server. Tools: echo, add, slow, slow_stats, crash, sample, ask, "
    "progress, roots, add_tool, big, secret_note. Resources: demo://readme and "
    "demo://items/{item_id}. Prompt: greet."
)

README_TEXT = (
    "# MCP Guardian demo server\n\n"
    "This resource is static text. Read demo://items/<id> for a templated resource.\n"
)

BIG_PATTERN = "0123456789abcdef"
"""`big(n)` repeats this pattern, so a relay that drops or reorders bytes is easy to spot."""

BIG_LIMIT = 64 * 1024 * 1024
"""Upper bound for `big(n)`: large enough for body-limit tests, small enough not to OOM."""


def secret_note_text() -> str:
    """The fixed text `secret_note()` returns: a note carrying credential-shaped strings.

    It exists so gateway tests can check that secret redaction runs on tool results.
    The values are fake and are assembled at runtime so that repository secret scanners
    do not flag this source file.
    """
    aws_key_id = "AKIA" + "QYLPMN5HX" + "2RTKZ4J"
    aws_secret = "r7Zf1kQ9" + "vX2bL0pW4n" + "Hs8TqE3uYc" + "6GdJmA5oRi" + "Ke9l"
    return (
        "Ops note for the staging deploy.\n"
        f"aws_access_key_id = {aws_key_id}\n"
        f"aws_secret_access_key = {aws_secret}\n"
        "Contact: jane.doe@example.com\n"
    )


class Answer(BaseModel):
    """The form `ask` shows the user: a single free-text answer."""

    answer: str = Field(description="Your answer")


class SlowStats(BaseModel):
    """Counters for `slow`, so a test can prove a cancellation reached this upstream."""

    started: int = 0
    completed: int = 0
    cancelled: int = 0


mcp: MCPServer = MCPServer(
    name="guardian-demo",
    version="1.0.0",
    instructions=INSTRUCTIONS,
    log_level="WARNING",  # keep uvicorn quiet on stderr during tests
)

_slow_stats = SlowStats()
_dynamic_tool_count = 0


def _advertise_list_changed_and_logging() -> None:
    """Make the handshake-era capabilities tell the truth about what this server sends.

    `MCPServer` builds its `InitializeResult` from `create_initialization_options()` with
    default `NotificationOptions` (``tools.listChanged: false``) and only advertises
    ``logging`` when a ``logging/setLevel`` handler exists. This server does send
    ``notifications/tools/list_changed`` and log messages, so it declares both; every
    transport (stdio, SSE, streamable HTTP) calls the same instance method.
    """
    lowlevel = mcp._lowlevel_server  # pyright: ignore[reportPrivateUsage]
    lowlevel.create_initialization_options = partial(  # type: ignore[method-assign]
        lowlevel.create_initialization_options, NotificationOptions(tools_changed=True)
    )

    async def set_level(ctx: ServerRequestContext[object], params: SetLevelRequestParams) -> EmptyResult:
        """Accept `logging/setLevel`; the demo keeps sending every level regardless."""
        return EmptyResult()

    lowlevel.add_request_handler("logging/setLevel", SetLevelRequestParams, set_level)


_advertise_list_changed_and_logging()


# --- tools -------------------------------------------------------------------------------


@mcp.tool(structured_output=False)
def echo(text: str) -> str:
    """Return `text` unchanged: the simplest round trip through a relay."""
    return text


@mcp.tool()
def add(a: float, b: float) -> float:
    """Add two numbers. Returns structured content (with an output schema) as well as text."""
    return a + b


@mcp.tool(structured_output=False)
async def slow(seconds: float) -> str:
    """Sleep for `seconds`, then return. Cancelling the request interrupts the sleep.

    `notifications/cancelled` cancels this coroutine's scope inside the SDK; the counters in
    `slow_stats` record that so a test can see the cancellation arrived here.
    """
    _slow_stats.started += 1
    try:
        await anyio.sleep(seconds)
    except anyio.get_cancelled_exc_class():
        _slow_stats.cancelled += 1
        raise
    _slow_stats.completed += 1
    return f"slept {seconds:g} seconds"


@mcp.tool()
def slow_stats() -> SlowStats:
    """How many `slow` calls started, completed and were cancelled in this process."""
    return _slow_stats


@mcp.tool(structured_output=False)
def crash() -> str:
    """Exit the whole server process immediately (status 3), mid-call, to simulate a crash."""
    os._exit(3)


def _ask_model(prompt: str) -> Sample:
    """Resolver for `sample`: ask the client's LLM to complete `prompt`."""
    message = SamplingMessage(role="user", content=TextContent(type="text", text=prompt))
    return Sample([message], max_tokens=256)


@mcp.tool(structured_output=False)
async def sample(prompt: str, completion: Annotated[CreateMessageResult, Resolve(_ask_model)]) -> str:
    """Ask the client for an LLM completion of `prompt` (sampling) and return its text."""
    content = completion.content
    if isinstance(content, TextContent):
        return content.text
    return f"[non-text completion: {content.type}]"


def _ask_user(question: str) -> Elicit[Answer]:
    """Resolver for `ask`: put `question` to the user as a one-field form."""
    return Elicit(question, Answer)


@mcp.tool(structured_output=False)
async def ask(question: str, reply: Annotated[ElicitationResult[Answer], Resolve(_ask_user)]) -> str:
    """Ask the user `question` (elicitation) and return the answer, or how they declined."""
    if isinstance(reply, AcceptedElicitation):
        return reply.data.answer
    return f"user {reply.action}"


def _client_roots() -> ListRoots:
    """Resolver for `roots`: fetch the client's roots."""
    return ListRoots()


@mcp.tool()
async def roots(listing: Annotated[ListRootsResult, Resolve(_client_roots)]) -> list[str]:
    """Return the URIs of the client's roots (roots/list)."""
    return [str(root.uri) for root in listing.roots]


@mcp.tool(structured_output=False)
async def progress(steps: int, ctx: Context) -> str:
    """Send `steps` progress notifications and one log message per step, then return.

    Progress is only sent when the request carries a progress token (the client passed a
    progress callback); that is the protocol's rule, not the demo's.
    """
    steps = max(0, min(steps, 1000))
    for step in range(1, steps + 1):
        await ctx.report_progress(step, steps, f"step {step}/{steps}")
        await ctx.info(f"progress step {step} of {steps}", logger_name="demo.progress")
    return f"completed {steps} steps"


@mcp.tool(structured_output=False)
async def add_tool(ctx: Context, standalone: bool = False) -> str:
    """Register a new tool `dynamic_<n>` at runtime and announce that the tool list changed.

    Handshake era: sends `notifications/tools/list_changed`. By default it rides this call's
    own response stream (deterministic on every transport); `standalone=True` sends it on the
    connection's standalone channel instead (the GET stream on streamable HTTP, which drops it
    if the client has not opened one). Modern era: publishes to `subscriptions/listen`.
    """
    global _dynamic_tool_count
    _dynamic_tool_count += 1
    name = f"dynamic_{_dynamic_tool_count}"

    def dynamic(text: str = "") -> str:
        return f"{name}: {text}"

    mcp.add_tool(
        dynamic, name=name, description=f"Added at runtime by add_tool ({name}).", structured_output=False
    )

    await ctx.notify_tools_changed()  # subscriptions/listen streams (modern era); no-op otherwise
    if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
        related = None if standalone else ctx.request_context.request_id
        await ctx.session.send_notification(ToolListChangedNotification(), related_request_id=related)
    return name


@mcp.tool(structured_output=False)
def big(n: int) -> str:
    """Return exactly `n` ASCII characters (= bytes) of a repeating pattern, for size limits."""
    if not 0 <= n <= BIG_LIMIT:
        raise ValueError(f"n must be between 0 and {BIG_LIMIT}")
    repeats = n // len(BIG_PATTERN) + 1
    return (BIG_PATTERN * repeats)[:n]


# Ordinary prose of the kind tools return (a status report), for benchmarks of the detectors
# on realistic text: sentences, numbers, a URL and a code span, nothing a detector should flag.
REPORT_SENTENCES = (
    "The nightly build finished in 14 minutes and 32 seconds, about 8% faster than last week.",
    "Three integration suites were skipped because the staging database was being migrated.",
    "Release 4.2.1 fixes the pagination bug reported by the billing team on Tuesday.",
    "Memory use of the indexer stayed under 1.5 GB while it processed 2,340,112 documents.",
    "Please review the updated runbook at https://docs.example.org/runbooks/indexer before Friday.",
    "The cache hit ratio rose from 71% to 86% after we raised the TTL to 900 seconds.",
    "Next sprint we will replace the cron job with a queue consumer written in Go.",
    "Latency at the 95th percentile is 212 ms for search and 48 ms for autocomplete.",
    "Run `make test` locally before pushing; CI now rejects branches with failing lint.",
    "Customer-facing error rates were flat at 0.02% across all regions this week.",
    "The design review for the new permissions model is scheduled for the 14th.",
    "We retired two legacy endpoints that had no traffic in the last ninety days.",
)


@mcp.tool(structured_output=False)
def report(n: int, seed: int = 0) -> str:
    """Return a status report of exactly `n` bytes of ordinary English prose; each `seed` orders
    the sentences differently, so repeated calls need not return the same text."""
    if not 0 <= n <= BIG_LIMIT:
        raise ValueError(f"n must be between 0 and {BIG_LIMIT}")
    order = random.Random(seed)
    paragraphs: list[str] = []
    size = 0
    while size < n:
        sentences = list(REPORT_SENTENCES)
        order.shuffle(sentences)
        paragraphs.append(" ".join(sentences))
        size += len(paragraphs[-1]) + 1
    return "\n".join(paragraphs)[:n]


@mcp.tool(structured_output=False)
def secret_note() -> str:
    """Return a plain-text note with credential-shaped strings (for redaction tests)."""
    return secret_note_text()


# --- resources and prompts ---------------------------------------------------------------


@mcp.resource("demo://readme", name="readme", description="Static demo text.", mime_type="text/markdown")
def readme() -> str:
    """A static resource."""
    return README_TEXT


@mcp.resource(
    "demo://items/{item_id}", name="item", description="One demo item.", mime_type="application/json"
)
def item(item_id: str) -> str:
    """A templated resource: every id exists and describes itself as JSON."""
    return json.dumps({"id": item_id, "name": f"Item {item_id}"})


@mcp.prompt()
def greet(name: str) -> str:
    """A one-message prompt (a plain string becomes a single user message)."""
    return f"Please greet {name} warmly."


# --- entry point -------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Parse the CLI and serve on the chosen transport until killed (or until stdin closes)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("transport", nargs="?", default="stdio", choices=["stdio", "streamable-http", "sse"])
    parser.add_argument("--host", default="127.0.0.1", help="bind address for HTTP transports")
    parser.add_argument("--port", type=int, default=8000, help="port for HTTP transports")
    parser.add_argument(
        "--json-response", action="store_true", help="streamable HTTP: answer POSTs with JSON"
    )
    parser.add_argument(
        "--stateless", action="store_true", help="streamable HTTP: no Mcp-Session-Id sessions"
    )
    args = parser.parse_args(argv)

    transport: Transport = args.transport
    if transport == "stdio":
        mcp.run("stdio")
    elif transport == "sse":
        mcp.run("sse", host=args.host, port=args.port)
    else:
        mcp.run(
            "streamable-http",
            host=args.host,
            port=args.port,
            json_response=args.json_response,
            stateless_http=args.stateless,
        )


if __name__ == "__main__":
    main()
