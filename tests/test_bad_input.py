"""Hostile and broken input on the wire: the gateway answers each with the right JSON-RPC error
and the session goes on working.

Raw clients (tests/support/wire.py) send the bytes, because no SDK client would: malformed
JSON, non-JSON-RPC objects, oversize lines and bodies, pathological nesting. Everything runs
through the real CLI (`guardian wrap` / `guardian serve`) in front of the real demo server.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from guardian import errors
from tests.support.gateway import GUARDIAN, config_file, demo_server_stdio_argv, gateway_http
from tests.support.wire import JSON, http_session, open_sse_session, open_stdio_wire

pytestmark = pytest.mark.anyio

STDIO_MAX_BYTES = 256 * 1024
"""Above the 100 000-level nesting probe (so it reaches the JSON parser), below the oversize line."""

MAX_DEPTH = 10

HTTP_MAX_BYTES = 16 * 1024


def echo_call(request_id: Any, text: str, **extra_arguments: Any) -> JSON:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": text, **extra_arguments}},
    }


def nested(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = [value]
    return value


def line(message: JSON) -> bytes:
    return json.dumps(message).encode() + b"\n"


OVERSIZE_LINE = line(echo_call(901, "x" * (STDIO_MAX_BYTES + 50_000)))
DEEP_UNBALANCED = b"[" * 100_000 + b"\n"
DEEP_BALANCED = (
    b'{"jsonrpc":"2.0","id":902,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x","deep":'
    + b"[" * 50_000
    + b"]" * 50_000
    + b"}}}\n"
)

# (name, raw line, accepted error codes, the id the error must carry)
BAD_LINES: list[tuple[str, bytes, set[int], Any]] = [
    ("malformed JSON", b'{"jsonrpc": "2.0", "id": 3, "method": \n', {errors.PARSE_ERROR}, None),
    ("invalid UTF-8", b'\xff\xfe{"jsonrpc":"2.0"}\n', {errors.PARSE_ERROR}, None),
    ("JSON array (batch)", b'[{"jsonrpc":"2.0","id":4,"method":"ping"}]\n', {errors.INVALID_REQUEST}, None),
    ("bare JSON string", b'"hello"\n', {errors.INVALID_REQUEST}, None),
    ("object without jsonrpc", b'{"id":5,"method":"tools/list"}\n', {errors.INVALID_REQUEST}, 5),
    ("non-string method", b'{"jsonrpc":"2.0","id":7,"method":5}\n', {errors.INVALID_REQUEST}, 7),
    ("string id kept", b'{"jsonrpc":"2.0","id":"req-8","method":["x"]}\n', {errors.INVALID_REQUEST}, "req-8"),
    ("oversize line (its id read from its first bytes)", OVERSIZE_LINE, {errors.MESSAGE_TOO_LARGE}, 901),
    ("100000 unclosed [", DEEP_UNBALANCED, {errors.MESSAGE_TOO_LARGE, errors.PARSE_ERROR}, None),
    ("50000-deep valid JSON", DEEP_BALANCED, {errors.MESSAGE_TOO_LARGE, errors.PARSE_ERROR}, None),
]

STDIO_CONFIG = {"security": {"limits": {"max_message_bytes": STDIO_MAX_BYTES, "max_depth": MAX_DEPTH}}}


@pytest.fixture
async def wrapped() -> AsyncIterator[Any]:
    """A raw, initialized stdio session: test ─raw lines→ guardian wrap ─stdio→ demo server."""
    with config_file(STDIO_CONFIG) as path:
        argv = [*GUARDIAN, "wrap", "--config", path, "--", *demo_server_stdio_argv()]
        async with open_stdio_wire(argv) as wire:
            await wire.initialize()
            yield wire


def assert_error(answer: JSON, codes: set[int], request_id: Any, what: str) -> None:
    assert answer.get("jsonrpc") == "2.0", (what, answer)
    assert "error" in answer and "result" not in answer, (what, answer)
    assert answer["error"]["code"] in codes, (what, answer)
    assert isinstance(answer["error"].get("message"), str) and answer["error"]["message"], (what, answer)
    assert "id" in answer and answer["id"] == request_id, (what, answer)


async def test_stdio_each_bad_line_gets_its_error_and_the_session_survives(wrapped: Any) -> None:
    for n, (what, raw, codes, request_id) in enumerate(BAD_LINES):
        await wrapped.send_raw(raw)
        answer = await wrapped.receive_response()
        assert_error(answer, codes, request_id, what)
        # The very next exchange on the same session works, with its own answer.
        text = f"still alive after {what} #{n}"
        assert await wrapped.echo(100 + n, text) == text, what
    assert wrapped.process.returncode is None


async def test_stdio_request_with_an_invalid_id_type_is_answered_not_dropped(wrapped: Any) -> None:
    """A request whose id is not a string or integer is an invalid request (-32600, id null).

    It must not be silently re-read as a notification (dropping the id): the client would wait
    for an answer that never comes.
    """
    silent = []
    for n, bad_id in enumerate([True, {"n": 1}, [9], 1.5]):
        bad = {
            "jsonrpc": "2.0",
            "id": bad_id,
            "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "x"}},
        }
        await wrapped.send(bad)
        await wrapped.send(echo_call(60 + n, "next"))  # answered after any error for `bad`
        first = await wrapped.receive_response()
        if first.get("id") == 60 + n:
            silent.append(bad_id)
            continue
        assert_error(first, {errors.INVALID_REQUEST}, None, f"id {bad_id!r}")
        second = await wrapped.receive_response()
        assert second["id"] == 60 + n and second["result"]["content"][0]["text"] == "next", second
    assert not silent, f"requests with these ids got no answer at all: {silent!r}"


async def test_stdio_blank_lines_are_ignored(wrapped: Any) -> None:
    await wrapped.send_raw(b"\n   \n\t\n")
    await wrapped.send(echo_call(40, "after blanks"))
    answer = await wrapped.receive_response()  # nothing was answered for the blank lines
    assert answer["id"] == 40 and answer["result"]["content"][0]["text"] == "after blanks"


async def test_stdio_too_deep_within_byte_limit_is_blocked_with_reasons(wrapped: Any) -> None:
    deep = echo_call(50, "deep", deep=nested(MAX_DEPTH + 5))
    await wrapped.send(deep)
    answer = await wrapped.answer_for(50)
    assert_error(answer, {errors.BLOCKED}, 50, "too deep")
    guardian = answer["error"]["data"]["guardian"]
    assert guardian["decision"] == "block"
    assert any("depth" in reason for reason in guardian["reasons"]), guardian
    # Just under the limit passes (the limit is what blocked, not nesting as such).
    shallow = echo_call(51, "shallow", deep=nested(MAX_DEPTH - 6))
    await wrapped.send(shallow)
    ok = await wrapped.answer_for(51)
    assert ok["result"]["content"][0]["text"] == "shallow", ok
    assert await wrapped.echo(52, "after depth") == "after depth"


async def test_stdio_pipelined_bad_and_good_lines_are_all_answered_in_order(wrapped: Any) -> None:
    """One write holding good requests between bad lines: every line gets exactly its answer.

    The gateway's own errors come back in the order the bad lines were sent, and each good
    request gets its own echo (matched by id), so nothing is dropped, merged or reordered.
    """
    bad = [raw for _, raw, _, _ in BAD_LINES]
    expected_errors = [(codes, request_id) for _, _, codes, request_id in BAD_LINES]
    payload = b""
    good: dict[int, str] = {}
    for n, raw in enumerate(bad):
        good[200 + n] = f"pipelined {n}"
        payload += raw + line(echo_call(200 + n, f"pipelined {n}"))
    await wrapped.send_raw(payload)
    answers = [await wrapped.receive_response() for _ in range(len(bad) + len(good))]
    errors_seen = [a for a in answers if "error" in a]
    results = {a["id"]: a["result"]["content"][0]["text"] for a in answers if "result" in a}
    assert results == good
    assert len(errors_seen) == len(expected_errors)
    for answer, (codes, request_id) in zip(errors_seen, expected_errors, strict=True):
        assert answer["error"]["code"] in codes and answer["id"] == request_id, (answer, codes, request_id)
    assert await wrapped.echo(300, "after the pipeline") == "after the pipeline"


# --- streamable HTTP and SSE --------------------------------------------------------------------

HTTP_CONFIG = {"security": {"limits": {"max_message_bytes": HTTP_MAX_BYTES}}}


async def test_http_bad_bodies_get_http_errors_with_jsonrpc_bodies_and_the_session_survives() -> None:
    async with (
        gateway_http(upstream=demo_server_stdio_argv(), config=HTTP_CONFIG) as gateway,
        http_session(gateway.url) as session,
    ):
        cases: list[tuple[str, bytes, int, int, Any]] = [
            ("malformed JSON", b'{"jsonrpc":"2.0","id":1,', 400, errors.PARSE_ERROR, None),
            ("non-string method", b'{"jsonrpc":"2.0","id":7,"method":5}', 400, errors.INVALID_REQUEST, 7),
            (
                "oversize (Content-Length)",
                json.dumps(echo_call(8, "y" * (HTTP_MAX_BYTES * 2))).encode(),
                413,
                errors.MESSAGE_TOO_LARGE,
                None,
            ),
        ]
        for n, (what, body, status, code, request_id) in enumerate(cases):
            reply = await session.post_raw(body)
            assert reply.status == status, (what, reply.status, reply.messages)
            assert reply.headers.get("content-type", "").startswith("application/json"), what
            assert len(reply.messages) == 1, (what, reply.messages)
            assert_error(reply.messages[0], {code}, request_id, what)
            text = f"http alive after {what}"
            assert await session.echo(100 + n, text) == text

        async def chunked() -> AsyncIterator[bytes]:
            """No Content-Length: the limit must hold while the body streams in."""
            for _ in range(8):
                yield b" " * (HTTP_MAX_BYTES // 4)
            yield json.dumps(echo_call(9, "z")).encode()

        reply = await session.post_raw(chunked())
        assert reply.status == 413, (reply.status, reply.messages)
        assert_error(reply.answer, {errors.MESSAGE_TOO_LARGE}, None, "oversize (chunked)")
        assert await session.echo(110, "http alive after chunked") == "http alive after chunked"


async def test_sse_malformed_json_is_answered_on_the_event_stream() -> None:
    async with (
        gateway_http(upstream=demo_server_stdio_argv(), config=HTTP_CONFIG) as gateway,
        open_sse_session(gateway.base_url) as session,
    ):
        before = len(session.messages)
        response = await session.post_raw(b'{"jsonrpc":"2.0","id":3,"method":')
        assert 400 <= response.status_code < 500, (response.status_code, response.text)
        answer, _ = await session.next_message(before)
        assert_error(answer, {errors.PARSE_ERROR}, None, "SSE malformed JSON")
        assert await session.echo(11, "sse alive") == "sse alive"

        oversize = await session.post_raw(json.dumps(echo_call(12, "w" * (HTTP_MAX_BYTES * 2))).encode())
        assert oversize.status_code == 413, (oversize.status_code, oversize.text)
        assert oversize.json()["error"]["code"] == errors.MESSAGE_TOO_LARGE
        assert await session.echo(13, "sse alive again") == "sse alive again"
