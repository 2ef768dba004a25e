"""The inspection pipeline and the built-in inspectors, with real inspector objects.

Concurrency and timeouts are proven with anyio Events, never with sleeps or clocks: two
async hooks that each wait for the other to start can only both finish if they overlap,
and a hook awaiting an Event nobody sets can only end by the pipeline's timeout.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Sequence
from typing import Any

import anyio
import pytest
from mcp_types import JSONRPCMessage, JSONRPCRequest, jsonrpc_message_adapter

from guardian.content import JSON, extract
from guardian.decision import ALLOW, Action, Decision, Finding
from guardian.events import Direction, Event, Kind, SessionInfo
from guardian.inspectors import Limits, LimitsInspector, ToolAccessInspector
from guardian.pipeline import InspectorSettings, Pipeline

pytestmark = pytest.mark.anyio

SESSION = SessionInfo(session_id="test-session", transport="test", upstream="test-upstream")
GUARD = 10.0
"""Upper bound on any one test's waiting, so a regression fails instead of hanging."""


# --- messages and events ------------------------------------------------------------------------


def parse(envelope: dict[str, Any]) -> JSONRPCMessage:
    return jsonrpc_message_adapter.validate_json(json.dumps(envelope), by_name=False)


def call_tool(name: str = "echo", arguments: dict[str, Any] | None = None, id: int = 1) -> JSONRPCMessage:
    return parse(
        {"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": arguments or {}}}
    )


def tool_result(text: str, id: int = 1) -> JSONRPCMessage:
    return parse({"jsonrpc": "2.0", "id": id, "result": {"content": [{"type": "text", "text": text}]}})


def event(
    message: JSONRPCMessage,
    direction: Direction = Direction.CLIENT_TO_SERVER,
    request: JSONRPCMessage | None = None,
    size: int | None = None,
) -> Event:
    assert request is None or isinstance(request, JSONRPCRequest)
    return Event(SESSION, direction, message, request=request, size=size)


def dump(message: JSONRPCMessage) -> dict[str, Any]:
    return message.model_dump(by_alias=True, exclude_unset=True)


# --- inspectors defined for the tests -----------------------------------------------------------


class Recorder:
    """Sync hooks on every kind; records which hook saw which event; returns preset findings."""

    def __init__(self, name: str, findings: Sequence[Finding] = ()) -> None:
        self.name = name
        self.findings = list(findings)
        self.seen: list[tuple[str, Event]] = []

    def request(self, event: Event) -> list[Finding]:
        self.seen.append(("request", event))
        return self.findings

    def response(self, event: Event) -> list[Finding]:
        self.seen.append(("response", event))
        return self.findings

    def notification(self, event: Event) -> list[Finding]:
        self.seen.append(("notification", event))
        return self.findings


class NotificationsOnly:
    name = "notifications-only"

    def __init__(self) -> None:
        self.calls = 0

    def notification(self, event: Event) -> None:
        self.calls += 1


class AsyncFinder:
    """An async request hook that returns preset findings and notes that it ran."""

    def __init__(self, name: str, findings: Sequence[Finding] = ()) -> None:
        self.name = name
        self.findings = list(findings)
        self.ran = False

    async def request(self, event: Event) -> list[Finding]:
        self.ran = True
        await anyio.lowlevel.checkpoint()
        return self.findings


class Rendezvous:
    """Async hook that finishes only once its partner has started: proves they overlap."""

    def __init__(self, name: str, mine: anyio.Event, partners: anyio.Event) -> None:
        self.name = name
        self.mine = mine
        self.partners = partners
        self.met = False

    async def request(self, event: Event) -> list[Finding]:
        self.mine.set()
        await self.partners.wait()
        self.met = True
        return []


class Hangs:
    """Async hook that waits on an Event nobody sets: only the pipeline's timeout ends it."""

    def __init__(self, name: str = "hangs") -> None:
        self.name = name
        self.never = anyio.Event()
        self.started = False

    async def request(self, event: Event) -> list[Finding]:
        self.started = True
        await self.never.wait()
        return []


class Raises:
    def __init__(self, name: str = "raises", *, is_async: bool) -> None:
        self.name = name
        if is_async:
            self.request = self._async_request
        else:
            self.request = self._sync_request

    def _sync_request(self, event: Event) -> list[Finding]:
        raise RuntimeError("detector exploded with secret sk-live-123")

    async def _async_request(self, event: Event) -> list[Finding]:
        raise RuntimeError("detector exploded with secret sk-live-123")


class RedactSecrets:
    """Redacts every `SECRET…` word it finds in the message's texts, by span."""

    name = "redact-secrets"

    def response(self, event: Event) -> list[Finding]:
        findings = []
        for item in event.texts():
            start = item.text.find("SECRET")
            while start != -1:
                end = start
                while end < len(item.text) and not item.text[end].isspace():
                    end += 1
                findings.append(
                    Finding(
                        self.name,
                        "secret",
                        "secret in result",
                        action=Action.REDACT,
                        path=item.path,
                        span=(start, end),
                        replacement="[REDACTED]",
                    )
                )
                start = item.text.find("SECRET", end)
        return findings


def finding(detector: str, action: Action, kind: str = "test") -> Finding:
    return Finding(detector, kind, f"{detector} says {action}", action=action)


# --- hook dispatch -------------------------------------------------------------------------------


async def test_no_inspectors_allows() -> None:
    decision = await Pipeline().run(event(call_tool()))
    assert decision.action is Action.ALLOW
    assert decision.findings == []
    assert decision.reasons == []


async def test_sync_hooks_run_on_the_hook_for_the_message_kind() -> None:
    recorder = Recorder("recorder", [finding("recorder", Action.WARN)])
    quiet = NotificationsOnly()
    pipeline = Pipeline()
    pipeline.add(recorder)
    pipeline.add(quiet)
    assert pipeline.inspectors == [recorder, quiet]

    request_event = event(call_tool())
    decision = await pipeline.run(request_event)
    assert recorder.seen == [("request", request_event)]
    assert quiet.calls == 0
    assert decision.action is Action.WARN
    assert [f.detector for f in decision.findings] == ["recorder"]
    assert decision.reasons == []  # a WARN is recorded, not a reason to refuse
    assert decision.event_id

    answered = call_tool()
    await pipeline.run(event(tool_result("ok"), Direction.SERVER_TO_CLIENT, request=answered))
    error = parse({"jsonrpc": "2.0", "id": 1, "error": {"code": -1, "message": "nope"}})
    error_event = event(error, Direction.SERVER_TO_CLIENT, request=answered)
    assert error_event.kind is Kind.ERROR
    await pipeline.run(error_event)
    await pipeline.run(event(parse({"jsonrpc": "2.0", "method": "notifications/initialized"})))
    assert [hook for hook, _ in recorder.seen] == ["request", "response", "response", "notification"]
    assert quiet.calls == 1


async def test_response_event_knows_the_request_it_answers() -> None:
    recorder = Recorder("recorder")
    pipeline = Pipeline()
    pipeline.add(recorder)
    answered = call_tool("lookup", {"q": "x"}, id=9)
    await pipeline.run(event(tool_result("found", id=9), Direction.SERVER_TO_CLIENT, request=answered))
    (_, seen) = recorder.seen[0]
    assert seen.method == "tools/call"
    assert seen.target == "lookup"
    assert seen.params["arguments"] == {"q": "x"}
    assert seen.result == {"content": [{"type": "text", "text": "found"}]}


async def test_async_hooks_run_concurrently() -> None:
    a_started, b_started = anyio.Event(), anyio.Event()
    first = Rendezvous("first", a_started, b_started)
    second = Rendezvous("second", b_started, a_started)
    pipeline = Pipeline()
    # A generous per-hook timeout: run one after the other, each would wait for the other
    # forever and end as a detector_error instead of meeting.
    pipeline.add(first, InspectorSettings(timeout=GUARD))
    pipeline.add(second, InspectorSettings(timeout=GUARD))
    with anyio.fail_after(GUARD * 2):
        decision = await pipeline.run(event(call_tool()))
    assert first.met and second.met
    assert decision.action is Action.ALLOW
    assert decision.findings == []


async def test_async_findings_are_collected_from_every_hook() -> None:
    pipeline = Pipeline()
    pipeline.add(AsyncFinder("one", [finding("one", Action.WARN)]))
    pipeline.add(AsyncFinder("two", [finding("two", Action.WARN, "other")]))
    pipeline.add(Recorder("sync", [finding("sync", Action.WARN)]))
    decision = await pipeline.run(event(call_tool()))
    assert sorted(f.detector for f in decision.findings) == ["one", "sync", "two"]
    assert decision.action is Action.WARN


# --- timeouts and errors -------------------------------------------------------------------------


@pytest.mark.parametrize(("fail_closed", "expected"), [(True, Action.BLOCK), (False, Action.WARN)])
async def test_a_hook_that_times_out_is_a_detector_error(fail_closed: bool, expected: Action) -> None:
    hangs = Hangs()
    pipeline = Pipeline()
    pipeline.add(hangs, InspectorSettings(timeout=0.01, fail_closed=fail_closed))
    with anyio.fail_after(GUARD):
        decision = await pipeline.run(event(call_tool()))
    assert hangs.started
    assert decision.action is expected
    (error,) = decision.findings
    assert (error.detector, error.kind, error.action) == ("hangs", "detector_error", expected)
    assert "timed out" in error.message
    assert (decision.reasons != []) is fail_closed


async def test_a_timeout_in_one_hook_does_not_stop_the_others() -> None:
    pipeline = Pipeline()
    pipeline.add(Hangs(), InspectorSettings(timeout=0.01, fail_closed=False))
    fine = AsyncFinder("fine", [finding("fine", Action.WARN, "seen")])
    pipeline.add(fine)
    with anyio.fail_after(GUARD):
        decision = await pipeline.run(event(call_tool()))
    assert fine.ran
    assert {(f.detector, f.kind) for f in decision.findings} == {("hangs", "detector_error"), ("fine", "seen")}


@pytest.mark.parametrize("is_async", [True, False], ids=["async", "sync"])
@pytest.mark.parametrize(("fail_closed", "expected"), [(True, Action.BLOCK), (False, Action.WARN)])
async def test_a_hook_that_raises_is_a_detector_error(is_async: bool, fail_closed: bool, expected: Action) -> None:
    pipeline = Pipeline()
    pipeline.add(Raises(is_async=is_async), InspectorSettings(fail_closed=fail_closed))
    decision = await pipeline.run(event(call_tool()))
    assert decision.action is expected
    (error,) = decision.findings
    assert (error.detector, error.kind, error.action) == ("raises", "detector_error", expected)
    assert "RuntimeError" in error.message
    # the exception text (which may hold content) never reaches the client-facing reason
    assert all("sk-live" not in reason for reason in decision.reasons)
    assert "sk-live" not in error.message


class ReturnsBareFinding:
    """A common inspector mistake: returning one Finding instead of a list of them."""

    def __init__(self, *, is_async: bool) -> None:
        self.name = "bare-finding"
        self.request = self._async_request if is_async else self._sync_request

    def _sync_request(self, event: Event) -> Any:
        return Finding(self.name, "k", "m")

    async def _async_request(self, event: Event) -> Any:
        return Finding(self.name, "k", "m")


@pytest.mark.parametrize("is_async", [True, False], ids=["async", "sync"])
async def test_a_hook_returning_a_malformed_result_is_a_detector_error(is_async: bool) -> None:
    """An inspector bug must end as a `detector_error` finding, never as an exception out of
    `Pipeline.run` (which would take the relay's session down with it).

    (Known bug at the time of writing: `_settle()` runs `list(result)` outside the
    try/except in `_call_sync`/`_call_async`, so `TypeError: 'Finding' object is not
    iterable` escapes `run()`.)
    """
    pipeline = Pipeline()
    pipeline.add(ReturnsBareFinding(is_async=is_async))
    decision = await pipeline.run(event(call_tool()))
    assert decision.action is Action.BLOCK
    assert [(f.detector, f.kind) for f in decision.findings] == [("bare-finding", "detector_error")]


async def test_fail_closed_is_the_default() -> None:
    assert InspectorSettings().fail_closed is True
    pipeline = Pipeline()
    pipeline.add(Raises(is_async=True))
    assert (await pipeline.run(event(call_tool()))).action is Action.BLOCK


# --- monitor mode, severity, redaction --------------------------------------------------------------


async def test_monitor_mode_downgrades_to_warn_and_is_not_a_reason() -> None:
    pipeline = Pipeline()
    pipeline.add(Recorder("strict", [finding("strict", Action.BLOCK)]), InspectorSettings(monitor=True))
    decision = await pipeline.run(event(call_tool()))
    assert decision.action is Action.WARN
    (only,) = decision.findings
    assert only.monitor is True
    assert only.action is Action.WARN
    assert only.to_dict()["monitor"] is True
    assert decision.reasons == []


async def test_monitor_mode_covers_detector_errors_too() -> None:
    pipeline = Pipeline()
    pipeline.add(Hangs(), InspectorSettings(timeout=0.01, fail_closed=True, monitor=True))
    with anyio.fail_after(GUARD):
        decision = await pipeline.run(event(call_tool()))
    assert decision.action is Action.WARN
    assert decision.findings[0].kind == "detector_error"
    assert decision.findings[0].monitor is True
    assert decision.reasons == []


async def test_a_monitored_sync_block_does_not_short_circuit_async_hooks() -> None:
    pipeline = Pipeline()
    pipeline.add(Recorder("gate", [finding("gate", Action.BLOCK)]), InspectorSettings(monitor=True))
    later = AsyncFinder("later")
    pipeline.add(later)
    decision = await pipeline.run(event(call_tool()))
    assert later.ran
    assert decision.action is Action.WARN


async def test_monitored_and_enforced_findings_mix() -> None:
    pipeline = Pipeline()
    pipeline.add(Recorder("watching", [finding("watching", Action.BLOCK)]), InspectorSettings(monitor=True))
    pipeline.add(Recorder("enforcing", [finding("enforcing", Action.BLOCK)]))
    decision = await pipeline.run(event(call_tool()))
    assert decision.action is Action.BLOCK
    assert decision.reasons == ["enforcing: enforcing says block"]


async def test_strictest_action_wins() -> None:
    pipeline = Pipeline()
    pipeline.add(Recorder("warns", [finding("warns", Action.WARN)]))
    pipeline.add(AsyncFinder("redacts", [Finding("redacts", "r", "would redact", action=Action.REDACT)]))
    pipeline.add(AsyncFinder("blocks", [finding("blocks", Action.BLOCK)]))
    pipeline.add(AsyncFinder("allows", [finding("allows", Action.ALLOW)]))
    decision = await pipeline.run(event(call_tool()))
    assert decision.action is Action.BLOCK
    assert len(decision.findings) == 4
    # reasons: the enforced REDACT/BLOCK findings, never WARN/ALLOW ones
    assert sorted(decision.reasons) == ["blocks: blocks says block", "redacts: would redact"]
    assert decision.patched is None  # a block forwards nothing


async def test_action_ordering() -> None:
    assert Action.ALLOW < Action.WARN < Action.REDACT < Action.BLOCK
    assert max([Action.WARN, Action.BLOCK, Action.REDACT]) is Action.BLOCK
    assert str(Action.REDACT) == "redact"


async def test_reasons_are_deduplicated_in_order() -> None:
    pipeline = Pipeline()
    pipeline.add(
        Recorder("dup", [finding("dup", Action.BLOCK), finding("dup", Action.BLOCK), finding("dup", Action.REDACT)])
    )
    decision = await pipeline.run(event(call_tool()))
    assert decision.reasons == ["dup: dup says block", "dup: dup says redact"]


async def test_redact_produces_a_patched_copy_and_leaves_the_original() -> None:
    answered = call_tool("read_config")
    text = json.dumps({"db": "postgres://u:SECRETpw@h/db", "note": "rotate SECRETkey soon"})
    message = parse(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "result": {
                "content": [
                    {"type": "text", "text": "found SECRET123 and SECRET456 here"},
                    {"type": "text", "text": text},
                ]
            },
        }
    )
    before = copy.deepcopy(dump(message))
    pipeline = Pipeline()
    pipeline.add(RedactSecrets())
    the_event = event(message, Direction.SERVER_TO_CLIENT, request=answered)
    decision = await pipeline.run(the_event)

    assert decision.action is Action.REDACT
    assert len(decision.findings) == 4
    assert decision.reasons == ["redact-secrets: secret in result"]
    assert decision.patched is not None
    patched = dump(decision.patched)
    assert patched["result"]["content"][0]["text"] == "found [REDACTED] and [REDACTED] here"
    assert json.loads(patched["result"]["content"][1]["text"]) == {
        "db": "postgres://u:[REDACTED]",
        "note": "rotate [REDACTED] soon",
    }
    assert dump(message) == before
    assert the_event.message is message
    assert any(JSON in item.path for item in extract(message))


async def test_redact_finding_without_path_produces_no_patch() -> None:
    assert Finding("x", "k", "m", action=Action.REDACT).patch() is None
    assert Finding("x", "k", "m", action=Action.BLOCK, path=("params",)).patch() is None


async def test_a_sync_block_short_circuits_async_hooks() -> None:
    pipeline = Pipeline()
    gate = Recorder("gate", [finding("gate", Action.BLOCK)])
    expensive = AsyncFinder("expensive")
    hangs = Hangs()
    pipeline.add(gate)
    pipeline.add(expensive)
    pipeline.add(hangs, InspectorSettings(timeout=GUARD))
    with anyio.fail_after(GUARD):
        decision = await pipeline.run(event(call_tool()))
    assert decision.action is Action.BLOCK
    assert not expensive.ran
    assert not hangs.started
    assert [f.detector for f in decision.findings] == ["gate"]


async def test_a_sync_warn_does_not_short_circuit() -> None:
    pipeline = Pipeline()
    pipeline.add(Recorder("gate", [finding("gate", Action.WARN)]))
    expensive = AsyncFinder("expensive", [finding("expensive", Action.BLOCK)])
    pipeline.add(expensive)
    decision = await pipeline.run(event(call_tool()))
    assert expensive.ran
    assert decision.action is Action.BLOCK


# --- registration --------------------------------------------------------------------------------


async def test_duplicate_inspector_names_are_rejected() -> None:
    pipeline = Pipeline()
    pipeline.add(Recorder("same"))
    with pytest.raises(ValueError, match="same"):
        pipeline.add(AsyncFinder("same"))
    assert len(pipeline.inspectors) == 1


async def test_an_inspector_needs_a_string_name() -> None:
    class Nameless:
        def request(self, event: Event) -> None:
            return None

    with pytest.raises(TypeError):
        Pipeline().add(Nameless())  # type: ignore[arg-type]


# --- LimitsInspector -----------------------------------------------------------------------------


def limits_kinds(findings: list[Finding]) -> set[str]:
    assert all(f.detector == "limits" and f.action is Action.BLOCK for f in findings)
    return {f.kind for f in findings}


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": "x"}
    for _ in range(depth - 1):
        value = {"n": value}
    return value


def test_limits_within_bounds_has_no_findings() -> None:
    inspector = LimitsInspector(Limits(max_message_bytes=10_000, max_depth=8, max_string_length=100))
    assert inspector.request(event(call_tool("echo", {"text": "hello"}))) == []


def test_limits_wire_size() -> None:
    inspector = LimitsInspector(Limits(max_message_bytes=100))
    small = call_tool("echo", {"text": "hi"})
    assert inspector.request(event(small, size=100)) == []
    assert limits_kinds(inspector.request(event(small, size=101))) == {"size"}


def test_limits_estimated_size_when_the_transport_does_not_know() -> None:
    inspector = LimitsInspector(Limits(max_message_bytes=1000, max_string_length=10_000))
    assert inspector.request(event(call_tool("echo", {"text": "a" * 500}))) == []
    assert limits_kinds(inspector.request(event(call_tool("echo", {"text": "a" * 2000})))) == {"size"}
    estimated = LimitsInspector(Limits(max_message_bytes=1000)).response(event(tool_result("b" * 2000)))
    assert limits_kinds(estimated) == {"size"}


def test_limits_depth() -> None:
    inspector = LimitsInspector(Limits(max_depth=6))
    # params (1) + arguments nested 5 deep = 6 containers: at the limit; one more is over it
    assert inspector.request(event(call_tool("echo", nested(5)))) == []
    assert limits_kinds(inspector.request(event(call_tool("echo", nested(6))))) == {"depth"}
    deep_list: Any = ["x"]
    for _ in range(50):
        deep_list = [deep_list]
    assert limits_kinds(inspector.request(event(call_tool("echo", {"v": deep_list})))) == {"depth"}


def test_limits_string_length() -> None:
    inspector = LimitsInspector(Limits(max_string_length=64))
    assert inspector.request(event(call_tool("echo", {"text": "a" * 64}))) == []
    findings = inspector.request(event(call_tool("echo", {"text": "a" * 65})))
    assert limits_kinds(findings) == {"string_length"}
    assert "64" in findings[0].message
    # the offending content is never echoed in the finding
    assert "aaaa" not in findings[0].message


def test_limits_several_at_once_and_every_direction() -> None:
    inspector = LimitsInspector(Limits(max_message_bytes=64, max_depth=2, max_string_length=16))
    params = {"level": "info", "logger": "z" * 100, "data": {"a": {"b": {}}}}
    message = parse({"jsonrpc": "2.0", "method": "notifications/message", "params": params})
    assert limits_kinds(inspector.notification(event(message, Direction.SERVER_TO_CLIENT))) == {
        "size",
        "depth",
        "string_length",
    }
    # too deep: the walk stops at the cap (bounded work), and the depth alone blocks
    deeper = parse({"jsonrpc": "2.0", "method": "notifications/message", "params": {"data": nested(10)}})
    assert "depth" in limits_kinds(inspector.notification(event(deeper, Direction.SERVER_TO_CLIENT)))
    assert inspector.notification(event(parse({"jsonrpc": "2.0", "method": "notifications/initialized"}))) == []


async def test_limits_block_through_the_pipeline() -> None:
    pipeline = Pipeline()
    pipeline.add(LimitsInspector(Limits(max_string_length=16)))
    expensive = AsyncFinder("expensive")
    pipeline.add(expensive)
    decision = await pipeline.run(event(call_tool("echo", {"text": "x" * 17})))
    assert decision.action is Action.BLOCK
    assert decision.reasons == ["limits: a string exceeds 16 characters"]
    assert not expensive.ran


# --- ToolAccessInspector -------------------------------------------------------------------------


def tools_list_response(*names: str) -> JSONRPCMessage:
    tools = [{"name": n, "description": f"tool {n}", "inputSchema": {"type": "object"}} for n in names]
    return parse({"jsonrpc": "2.0", "id": 5, "result": {"tools": tools}})


TOOLS_LIST = parse({"jsonrpc": "2.0", "id": 5, "method": "tools/list"})


def denied(inspector: ToolAccessInspector, tool: str, direction: Direction = Direction.CLIENT_TO_SERVER) -> bool:
    findings = inspector.request(event(call_tool(tool), direction))
    assert all(f.kind == "tool_denied" and f.action is Action.BLOCK for f in findings)
    return bool(findings)


def test_tool_access_deny_globs() -> None:
    inspector = ToolAccessInspector(deny=["delete_*", "exec"])
    assert denied(inspector, "delete_repo")
    assert denied(inspector, "exec")
    assert not denied(inspector, "execute")  # globs match the whole name
    assert not denied(inspector, "echo")


def test_tool_access_allow_globs() -> None:
    inspector = ToolAccessInspector(allow=["read_*", "echo"])
    assert not denied(inspector, "read_file")
    assert not denied(inspector, "echo")
    assert denied(inspector, "write_file")
    assert denied(inspector, "echo2")


def test_tool_access_deny_wins_over_allow() -> None:
    inspector = ToolAccessInspector(allow=["read_*"], deny=["read_secrets"])
    assert not denied(inspector, "read_file")
    assert denied(inspector, "read_secrets")


def test_tool_access_only_checks_client_tool_calls() -> None:
    inspector = ToolAccessInspector(deny=["*"])
    assert not denied(inspector, "anything", Direction.SERVER_TO_CLIENT)
    other = parse({"jsonrpc": "2.0", "id": 2, "method": "prompts/get", "params": {"name": "anything"}})
    assert inspector.request(event(other)) == []
    nameless = parse({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {}})
    assert [f.kind for f in inspector.request(event(nameless))] == ["tool_denied"]


def test_tool_access_listing_produces_removal_findings() -> None:
    inspector = ToolAccessInspector(deny=["delete_*"])
    listing = tools_list_response("echo", "delete_repo", "add", "delete_user")
    findings = inspector.response(event(listing, Direction.SERVER_TO_CLIENT, request=TOOLS_LIST))
    assert [(f.kind, f.action, f.path, f.remove) for f in findings] == [
        ("tool_hidden", Action.REDACT, ("result", "tools", 1), True),
        ("tool_hidden", Action.REDACT, ("result", "tools", 3), True),
    ]
    # without knowing the request, a result is not a listing
    assert inspector.response(event(listing, Direction.SERVER_TO_CLIENT)) == []


async def test_tool_access_listing_is_redacted_through_the_pipeline() -> None:
    pipeline = Pipeline()
    pipeline.add(ToolAccessInspector(allow=["echo", "add", "delete_*"], deny=["delete_*"]))
    listing = tools_list_response("echo", "delete_repo", "add", "shell", "delete_user")
    decision: Decision = await pipeline.run(event(listing, Direction.SERVER_TO_CLIENT, request=TOOLS_LIST))
    assert decision.action is Action.REDACT
    assert decision.patched is not None
    assert [tool["name"] for tool in dump(decision.patched)["result"]["tools"]] == ["echo", "add"]
    assert len(dump(listing)["result"]["tools"]) == 5

    blocked = await pipeline.run(event(call_tool("delete_repo")))
    assert blocked.action is Action.BLOCK
    assert blocked.reasons == ["tool_access: tool is not allowed by gateway policy"]
    assert await pipeline.run(event(call_tool("echo"))) is ALLOW


# --- offloading CPU-heavy synchronous detectors -----------------------------------------------------


class Heavy:
    """A synchronous detector that records which thread ran it and can be made to hang."""

    name = "heavy"
    offload_above = 100

    def __init__(self, hang: threading.Event | None = None) -> None:
        self.threads: list[int] = []
        self.hang = hang

    def response(self, event: Event) -> list[Finding]:
        self.threads.append(threading.get_ident())
        if self.hang is not None:
            self.hang.wait(5)
        return [Finding(self.name, "seen", "saw it", action=Action.WARN)]


async def test_small_messages_run_a_heavy_detector_inline_large_ones_in_a_thread() -> None:
    heavy = Heavy()
    pipeline = Pipeline()
    pipeline.add(heavy)
    small = await pipeline.run(event(tool_result("short"), Direction.SERVER_TO_CLIENT))
    large = await pipeline.run(event(tool_result("x" * 500), Direction.SERVER_TO_CLIENT))
    assert small.action is Action.WARN and large.action is Action.WARN
    assert heavy.threads[0] == threading.get_ident()
    assert heavy.threads[1] != threading.get_ident()


async def test_an_offloaded_detector_that_hangs_times_out_and_the_loop_stays_free() -> None:
    release = threading.Event()
    pipeline = Pipeline()
    pipeline.add(Heavy(hang=release), InspectorSettings(timeout=0.2, fail_closed=True))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while not release.is_set():
            ticks += 1
            await anyio.sleep(0.01)

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            decision = await pipeline.run(event(tool_result("y" * 500), Direction.SERVER_TO_CLIENT))
            release.set()
    finally:
        release.set()
    assert decision.action is Action.BLOCK
    assert [f.kind for f in decision.findings] == ["detector_error"]
    # The event loop ran other tasks while the detector hung: run inline, the ticker could not
    # start until the hook returned, and by then `release` is set (0 ticks). No rate is assumed.
    assert ticks >= 1
