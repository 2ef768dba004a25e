"""What an inspector is shown: one JSON-RPC message in flight, with its context.

An `Event` is built by the relay for every message, in either direction. A response
carries the request it answers (from the relay's in-flight table), so an inspector
looking at a `tools/call` result knows which tool produced it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mcp_types import JSONRPCError, JSONRPCMessage, JSONRPCNotification, JSONRPCRequest, JSONRPCResponse

from guardian.auth.identity import Identity
from guardian.content import TextItem, extract
from guardian.normalize import normalize


class Direction(StrEnum):
    CLIENT_TO_SERVER = "client_to_server"
    SERVER_TO_CLIENT = "server_to_client"


class Surface(StrEnum):
    """Where in MCP traffic a text sits; detectors and profiles choose per surface.

    Injection matters most where untrusted content reaches the model (tool results,
    resources, prompts, sampling, descriptions); argument checks matter in tool calls.
    """

    TOOL_ARGUMENTS = "tool_arguments"
    TOOL_RESULT = "tool_result"
    RESOURCE = "resource"
    PROMPT = "prompt"
    PROMPT_ARGUMENTS = "prompt_arguments"
    SAMPLING = "sampling"
    ELICITATION = "elicitation"
    DESCRIPTIONS = "descriptions"
    COMPLETION = "completion"
    OTHER = "other"


# Method -> surface of its request (params) and of its result.
_SURFACES: dict[str, tuple[Surface, Surface]] = {
    "tools/call": (Surface.TOOL_ARGUMENTS, Surface.TOOL_RESULT),
    "resources/read": (Surface.OTHER, Surface.RESOURCE),
    "prompts/get": (Surface.PROMPT_ARGUMENTS, Surface.PROMPT),
    "sampling/createMessage": (Surface.SAMPLING, Surface.SAMPLING),
    "elicitation/create": (Surface.ELICITATION, Surface.ELICITATION),
    "tools/list": (Surface.OTHER, Surface.DESCRIPTIONS),
    "prompts/list": (Surface.OTHER, Surface.DESCRIPTIONS),
    "resources/list": (Surface.OTHER, Surface.DESCRIPTIONS),
    "resources/templates/list": (Surface.OTHER, Surface.DESCRIPTIONS),
    "initialize": (Surface.OTHER, Surface.DESCRIPTIONS),
    "completion/complete": (Surface.COMPLETION, Surface.COMPLETION),
}


LISTING_KEYS: dict[str, str] = {
    "tools/list": "tools",
    "prompts/list": "prompts",
    "resources/list": "resources",
    "resources/templates/list": "resourceTemplates",
}
"""List method -> the result key that holds its entries."""


class Kind(StrEnum):
    REQUEST = "request"
    RESPONSE = "response"
    ERROR = "error"
    NOTIFICATION = "notification"


def kind_of(message: JSONRPCMessage) -> Kind:
    if isinstance(message, JSONRPCRequest):
        return Kind.REQUEST
    if isinstance(message, JSONRPCNotification):
        return Kind.NOTIFICATION
    if isinstance(message, JSONRPCResponse):
        return Kind.RESPONSE
    return Kind.ERROR


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """Who is talking through which pipes. Identity and tenant are filled in by auth."""

    session_id: str
    transport: str
    upstream: str
    identity: str | None = None
    tenant: str | None = None
    principal: Identity | None = None
    """The authenticated caller in full (scopes, roles, claims); `identity`/`tenant` are its strings."""


# Methods whose `params.name` / `params.uri` names the target, for audit and policy.
_TARGET_PARAM = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}


@dataclass(slots=True)
class Event:
    """One message in flight. Inspectors read it; they never forward or mutate it."""

    session: SessionInfo
    direction: Direction
    message: JSONRPCMessage
    request: JSONRPCRequest | None = None
    """For a response or error: the request it answers, when the relay saw it."""
    size: int | None = None
    """Wire size in bytes, when the transport knows it."""
    protocol_version: str | None = None
    """The protocol version the session negotiated, when the relay knows it."""
    _texts: list[TextItem] | None = field(default=None, repr=False)
    _normalized: list[TextItem] | None = field(default=None, repr=False)

    @property
    def kind(self) -> Kind:
        return kind_of(self.message)

    @property
    def method(self) -> str | None:
        """The method of a request/notification, or of the request a response answers."""
        if isinstance(self.message, JSONRPCRequest | JSONRPCNotification):
            return self.message.method
        return self.request.method if self.request is not None else None

    @property
    def surface(self) -> Surface:
        """Which part of MCP this message's texts belong to (see `Surface`)."""
        method = self.method
        pair = _SURFACES.get(method) if method else None
        if pair is None:
            return Surface.OTHER
        return pair[0] if isinstance(self.message, JSONRPCRequest | JSONRPCNotification) else pair[1]

    @property
    def id(self) -> Any:
        return getattr(self.message, "id", None)

    @property
    def params(self) -> dict[str, Any]:
        """The params of a request/notification, or of the request a response answers."""
        source = self.message if isinstance(self.message, JSONRPCRequest | JSONRPCNotification) else self.request
        return (source.params or {}) if source is not None else {}

    @property
    def target(self) -> str | None:
        """Tool or prompt name, or resource URI, that the (answered) request names."""
        method = self.method
        key = _TARGET_PARAM.get(method) if method else None
        value = self.params.get(key) if key else None
        return value if isinstance(value, str) else None

    @property
    def result(self) -> dict[str, Any] | None:
        return self.message.result if isinstance(self.message, JSONRPCResponse) else None

    def listed(self) -> tuple[str, list[Any]] | None:
        """For a `*/list` result: (the result key, its entries); None for anything else."""
        key = LISTING_KEYS.get(self.method or "")
        result = self.result
        entries = result.get(key) if key is not None and result is not None else None
        return (key, entries) if key is not None and isinstance(entries, list) else None

    @property
    def error(self) -> JSONRPCError | None:
        return self.message if isinstance(self.message, JSONRPCError) else None

    def texts(self) -> list[TextItem]:
        """Readable strings in the message, extracted once and shared by all inspectors."""
        if self._texts is None:
            self._texts = extract(self.message)
        return self._texts

    def normalized_texts(self) -> list[TextItem]:
        """`texts()` as a reader understands them (see `guardian.normalize`), computed once.

        Content detectors match on these so zero-width splits, tag smuggling and
        look-alike letters do not hide a pattern; paths stay those of the originals.
        """
        if self._normalized is None:
            self._normalized = [TextItem(item.path, normalize(item.text)) for item in self.texts()]
        return self._normalized
