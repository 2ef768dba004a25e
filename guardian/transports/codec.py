"""One JSON-RPC message to and from the wire; decoding failures become answerable errors.

The fast path is the SDK's own validator; only a message that fails it is parsed a
second time, to tell a parse error (-32700) from a non-JSON-RPC object (-32600) and to
recover the request id for the answer.
"""

from __future__ import annotations

import json
from typing import Any

from mcp.shared.message import SessionMessage
from mcp_types import JSONRPCMessage, JSONRPCNotification, jsonrpc_message_adapter
from pydantic import ValidationError

from guardian import errors

DECODED_KEY = "guardian.decoded"
"""ASGI scope key where the body check leaves the decoded message, so handlers do not parse it again."""


def encode_message(message: JSONRPCMessage) -> bytes:
    """One message as compact JSON bytes (no newline)."""
    return message.model_dump_json(by_alias=True, exclude_unset=True).encode()


def sse_frame(message: JSONRPCMessage) -> bytes:
    """One message as a server-sent `message` event."""
    return b"event: message\r\ndata: " + encode_message(message) + b"\r\n\r\n"


def decode_message(data: bytes) -> SessionMessage | errors.InvalidMessage:
    """Wire bytes to a message, or to the `InvalidMessage` that answers them."""
    try:
        message = jsonrpc_message_adapter.validate_json(data, by_name=False)
    except ValidationError:
        pass
    else:
        # The SDK reads a request whose id is not a string or integer as a notification,
        # which would leave its sender waiting forever for an answer.
        if not (isinstance(message, JSONRPCNotification) and b'"id"' in data and _has_id(data)):
            return SessionMessage(message)
        return errors.InvalidMessage(errors.INVALID_REQUEST, "request id must be a string or an integer")
    try:
        raw: Any = json.loads(data)
    except RecursionError:
        return errors.InvalidMessage(errors.MESSAGE_TOO_LARGE, "JSON nesting too deep")
    except ValueError:
        return errors.InvalidMessage(errors.PARSE_ERROR, "parse error: not valid JSON")
    request_id = raw.get("id") if isinstance(raw, dict) else None
    if isinstance(request_id, bool) or not isinstance(request_id, int | str):
        request_id = None
    return errors.InvalidMessage(errors.INVALID_REQUEST, "not a JSON-RPC 2.0 message", request_id)


def _has_id(data: bytes) -> bool:
    try:
        raw = json.loads(data)
    except (ValueError, RecursionError):
        return False
    return isinstance(raw, dict) and "id" in raw
