"""Decisions end to end: block, redact and drop, in each direction and for each kind of message.

The gateway runs in-process (the embedding path): an SDK `ClientSession` talks over memory
streams to `Guardian.run_session`, which spawns the real demo server over stdio. Inspectors
are ordinary objects defined here, as a user would write them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import ClientSession, MCPError
from mcp.shared.message import SessionMessage

from guardian import Action, Event, Finding, Guardian
from tests.support.gateway import demo_server_stdio_argv
from tests.support.peers import SAMPLING_REPLY, ClientRecorder, text_of

pytestmark = pytest.mark.anyio

BLOCKED = -32010


@asynccontextmanager
async def session_through(guardian: Guardian, recorder: ClientRecorder) -> AsyncIterator[ClientSession]:
    """An initialized `ClientSession` whose traffic goes through `guardian` to the demo server."""
    to_gateway_send, to_gateway_recv = anyio.create_memory_object_stream[SessionMessage | Exception](16)
    to_client_send, to_client_recv = anyio.create_memory_object_stream[SessionMessage](16)
    async with anyio.create_task_group() as tg:
        tg.start_soon(guardian.run_session, (to_gateway_recv, to_client_send), "memory")
        async with ClientSession(
            to_client_recv,  # type: ignore[arg-type]
            to_gateway_send,
            sampling_callback=recorder.sampling_callback,
            elicitation_callback=recorder.elicitation_callback,
            list_roots_callback=recorder.list_roots_callback,
            logging_callback=recorder.logging_callback,
            message_handler=recorder.message_handler,
        ) as session:
            await session.initialize()
            yield session
        await to_gateway_send.aclose()


def make_guardian(tmp_path: Path, **security: Any) -> Guardian:
    return Guardian(
        {
            "upstream_mcp_server": {"command": demo_server_stdio_argv()},
            "security": security,
            "monitoring": {"audit_log": str(tmp_path / "audit.jsonl")},
        }
    )


def audit_records(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def sample_outcome(session: ClientSession) -> str:
    """What the `sample` tool produced: its text, or the error the server answered with."""
    try:
        result = await session.call_tool("sample", {"prompt": "hello"})
    except MCPError as exc:
        return f"error {exc.error.code}: {exc.error.message}"
    return ("error: " if result.is_error else "") + text_of(result)


class Rule:
    """A test inspector: returns `findings` for events matching `when`, on the named hook."""

    def __init__(self, name: str, hook: str, when: Callable[[Event], bool], finding: Finding) -> None:
        self.name = name
        self._when = when
        self._finding = finding
        setattr(self, hook, self._check)

    def _check(self, event: Event) -> list[Finding]:
        return [self._finding] if self._when(event) else []


async def test_denied_tool_is_hidden_and_its_call_blocked_with_a_non_leaking_reason(tmp_path: Path) -> None:
    guardian = make_guardian(tmp_path, tools={"deny": ["crash", "sec*"]})
    async with session_through(guardian, ClientRecorder()) as session:
        names = {tool.name for tool in (await session.list_tools()).tools}
        assert "echo" in names and "crash" not in names and "secret_note" not in names
        with pytest.raises(MCPError) as raised:
            await session.call_tool("crash", {"payload": "sensitive-argument-value"})
        error = raised.value.error
        assert error.code == BLOCKED
        verdict = error.data["guardian"]
        assert verdict["decision"] == "block"
        assert any(reason.startswith("tool_access:") for reason in verdict["reasons"])
        assert "sensitive-argument-value" not in json.dumps(error.model_dump())
        assert text_of(await session.call_tool("echo", {"text": "still here"})) == "still here"
    records = audit_records(tmp_path)
    blocked = [r for r in records if r["decision"] == "block"]
    assert [r["event_id"] for r in blocked] == [verdict["request_id"]]
    assert blocked[0]["method"] == "tools/call" and blocked[0]["target"] == "crash"
    assert "sensitive-argument-value" not in json.dumps(records)
    assert any(r["decision"] == "redact" and r["method"] == "tools/list" for r in records)


async def test_blocked_response_is_replaced_by_an_error_and_the_session_goes_on(tmp_path: Path) -> None:
    only_ours = {"secrets": {"enabled": False}, "pii": {"enabled": False}}  # only our rule speaks
    guardian = make_guardian(tmp_path, inspectors=only_ours)
    guardian.add_inspector(
        Rule("no-notes", "response", lambda e: e.target == "secret_note", Finding("no-notes", "leak", "no notes"))
    )
    async with session_through(guardian, ClientRecorder()) as session:
        with pytest.raises(MCPError) as raised:
            await session.call_tool("secret_note", {})
        assert raised.value.error.code == BLOCKED
        assert raised.value.error.data["guardian"]["reasons"] == ["no-notes: no notes"]
        assert text_of(await session.call_tool("echo", {"text": "after"})) == "after"


async def test_redaction_patches_only_the_flagged_span(tmp_path: Path) -> None:
    secret = "hunter2"

    class Redactor:
        name = "redactor"

        def response(self, event: Event) -> list[Finding]:
            return [
                Finding(self.name, "password", "password redacted", action=Action.REDACT, path=item.path,
                        span=(start, start + len(secret)), replacement="[REDACTED]")
                for item in event.texts()
                if (start := item.text.find(secret)) >= 0
            ]

    guardian = make_guardian(tmp_path)
    guardian.add_inspector(Redactor())
    async with session_through(guardian, ClientRecorder()) as session:
        result = await session.call_tool("echo", {"text": f"the password is {secret}, keep it"})
        assert text_of(result) == "the password is [REDACTED], keep it"
        untouched = await session.call_tool("echo", {"text": "nothing to see"})
        assert text_of(untouched) == "nothing to see"


async def test_blocked_notification_is_dropped_and_recorded(tmp_path: Path) -> None:
    guardian = make_guardian(tmp_path)
    guardian.add_inspector(
        Rule("quiet", "notification", lambda e: e.method == "notifications/message",
             Finding("quiet", "log", "logs are not forwarded"))
    )
    recorder = ClientRecorder()
    async with session_through(guardian, recorder) as session:
        result = await session.call_tool("progress", {"steps": 2}, progress_callback=recorder.progress_callback)
        assert text_of(result) == "completed 2 steps"
        await recorder.wait_for_count(lambda item: type(item).__name__ == "ProgressUpdate", 2)
    assert recorder.logs == [] and recorder.notifications_named("notifications/message") == []
    dropped = [r for r in audit_records(tmp_path) if r["method"] == "notifications/message"]
    assert len(dropped) == 2 and all(r["decision"] == "block" for r in dropped)


async def test_blocked_server_request_never_reaches_the_client(tmp_path: Path) -> None:
    guardian = make_guardian(tmp_path)
    guardian.add_inspector(
        Rule("no-sampling", "request", lambda e: e.method == "sampling/createMessage",
             Finding("no-sampling", "sampling", "sampling is disabled"))
    )
    recorder = ClientRecorder()
    async with session_through(guardian, recorder) as session:
        outcome = await sample_outcome(session)
        assert outcome.startswith("error") and SAMPLING_REPLY not in outcome
        assert recorder.server_requests == []


async def test_blocked_client_response_to_a_server_request_becomes_an_error_upstream(tmp_path: Path) -> None:
    guardian = make_guardian(tmp_path)
    guardian.add_inspector(
        Rule("no-completions", "response", lambda e: e.method == "sampling/createMessage",
             Finding("no-completions", "sampling", "completion withheld"))
    )
    recorder = ClientRecorder()
    async with session_through(guardian, recorder) as session:
        outcome = await sample_outcome(session)
        # The client answered, the gateway withheld the answer, the server saw an error instead.
        assert [r.method for r in recorder.server_requests] == ["sampling/createMessage"]
        assert outcome.startswith("error") and SAMPLING_REPLY not in outcome


class Hangs:
    """An async inspector that never finishes: only its timeout can end it."""

    name = "hangs"

    async def request(self, event: Event) -> list[Finding]:
        if event.method == "tools/call":
            await anyio.Event().wait()
        return []


@pytest.mark.parametrize(("fail_closed", "blocked"), [(True, True), (False, False)])
async def test_a_hung_detector_fails_closed_or_open_as_configured(
    tmp_path: Path, fail_closed: bool, blocked: bool
) -> None:
    guardian = make_guardian(
        tmp_path, inspectors={"hangs": {"timeout": 0.2, "fail_closed": fail_closed}}
    )
    guardian.add_inspector(Hangs())
    async with session_through(guardian, ClientRecorder()) as session:
        if blocked:
            with pytest.raises(MCPError) as raised:
                await session.call_tool("echo", {"text": "x"})
            assert raised.value.error.code == BLOCKED
            assert raised.value.error.data["guardian"]["reasons"] == ["hangs: inspector timed out after 0.2s"]
        else:
            assert text_of(await session.call_tool("echo", {"text": "x"})) == "x"
    kinds = [f["kind"] for r in audit_records(tmp_path) for f in r["findings"]]
    assert kinds == ["detector_error"]


async def test_monitor_mode_records_but_does_not_enforce(tmp_path: Path) -> None:
    guardian = make_guardian(tmp_path, tools={"deny": ["echo"]}, inspectors={"tool_access": {"monitor": True}})
    async with session_through(guardian, ClientRecorder()) as session:
        assert "echo" in {tool.name for tool in (await session.list_tools()).tools}
        assert text_of(await session.call_tool("echo", {"text": "allowed"})) == "allowed"
    records = audit_records(tmp_path)
    assert records and all(r["decision"] == "warn" for r in records)
    assert all(f["monitor"] for r in records for f in r["findings"])


async def test_an_oversize_upstream_answer_is_refused_at_once_and_the_session_goes_on(tmp_path: Path) -> None:
    guardian = make_guardian(tmp_path, limits={"max_message_bytes": 100_000})
    async with session_through(guardian, ClientRecorder()) as session:
        with pytest.raises(MCPError) as raised:
            await session.call_tool("big", {"n": 200_000})
        # Refused by size as it streamed in (not left to the request timeout, -32013).
        assert raised.value.error.code == -32011
        assert text_of(await session.call_tool("echo", {"text": "next"})) == "next"
