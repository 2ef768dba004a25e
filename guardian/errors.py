"""JSON-RPC error codes the gateway answers with, and builders for those answers.

The codes are part of the public contract: clients and dashboards match on them,
so they never change meaning. Standard JSON-RPC codes are used where one fits;
gateway decisions use the implementation-defined band (-32000..-32019) that the
MCP spec leaves to implementations, away from the SDK's own -32000/-32001.
"""

from __future__ import annotations

from typing import Any

from mcp_types import ErrorData, JSONRPCError, RequestId

PARSE_ERROR = -32700
"""The bytes were not valid JSON (or not UTF-8)."""

INVALID_REQUEST = -32600
"""Valid JSON, but not a JSON-RPC 2.0 message."""

METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

BLOCKED = -32010
"""A gateway decision blocked the message (`error.data.guardian` says why)."""

MESSAGE_TOO_LARGE = -32011
"""The message exceeded the configured size, nesting depth or string length limit."""

UPSTREAM_UNAVAILABLE = -32012
"""The upstream server could not be started or reached, or it went away mid-request."""

UPSTREAM_TIMEOUT = -32013
"""The upstream server did not answer within the configured request timeout."""

GATEWAY_OVERLOADED = -32014
"""Too many requests in flight for this session."""

RATE_LIMITED = -32015
"""A rate limit or quota refused the request; `error.data.guardian.retry_after` says when to retry (seconds)."""

ACCESS_REFUSED = -32016
"""The caller's tenant is not served by this gateway, or names an upstream it may not reach
(an upstream of another tenant reads exactly as one that does not exist)."""

ERROR_CODES: dict[int, str] = {
    PARSE_ERROR: "parse error",
    INVALID_REQUEST: "invalid request",
    BLOCKED: "blocked by gateway policy",
    MESSAGE_TOO_LARGE: "message exceeds a gateway limit",
    UPSTREAM_UNAVAILABLE: "upstream unavailable",
    UPSTREAM_TIMEOUT: "upstream timeout",
    GATEWAY_OVERLOADED: "too many requests in flight",
    RATE_LIMITED: "rate limit exceeded",
    ACCESS_REFUSED: "access refused",
}


def error_response(
    request_id: RequestId | None, code: int, message: str, data: Any = None
) -> JSONRPCError:
    """A JSON-RPC error envelope; `data` is omitted from the wire when None."""
    error = ErrorData(code=code, message=message, data=data) if data is not None else ErrorData(
        code=code, message=message
    )
    return JSONRPCError(jsonrpc="2.0", id=request_id, error=error)


def describe(exc: BaseException) -> str:
    """One line naming what went wrong, unwrapping single-exception groups from task groups."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class ConfigError(Exception):
    """A configuration problem; `problems` holds one line per issue, each naming its JSON path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class InvalidMessage(Exception):
    """Bytes from a peer that are not a usable JSON-RPC message.

    Transports put these on their read stream in place of a message, so the relay can
    answer the sender with `code` (echoing `request_id` when one could be read) and
    go on with the next message.
    """

    def __init__(self, code: int, message: str, request_id: RequestId | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.request_id = request_id


class UpstreamStartError(Exception):
    """The upstream could not be started or reached; the message says why, in one line."""
