"""Schema validation: messages, tool arguments and structured results checked against their schemas.

Malformed traffic is how parsers are attacked and how confused deputies are made: a
`tools/call` with no `name`, arguments a tool never declared, a result whose `content`
is not a list. Each MCP revision publishes a JSON Schema of every message; tools publish
an `inputSchema` (and may publish an `outputSchema`) in `tools/list`. The gateway checks
traffic against both before passing it on, so a server only ever sees calls its own
declaration allows and a client only ever sees results of the shape it was promised.

- **Protocol messages** are validated against the schema of the session's protocol
  version (the official files in `schemas/mcp/<version>/schema.json`, shipped, never
  fetched). The version is the one a modern-era (2026-07-28) message names in
  `params._meta`, else the one the session negotiated in `initialize`, else the newest
  handshake-era version (a message without the modern `_meta` is handshake era).
  Requests are validated against their method's definition (`tools/call` ->
  `CallToolRequest`), results against the answered request's (`CallToolResult`; a
  task-augmented call's `CreateTaskResult`, a 2026 `InputRequiredResult`), notifications
  against theirs. Mode `full` validates every message whose method the schema defines;
  `inspected` only the methods other detectors read (tools/call, resources/read,
  prompts/get, sampling/createMessage, and tools/list results). Error responses are not
  validated: the JSON-RPC codec already enforces their shape.
- **Tool arguments** are validated against the called tool's `inputSchema` as last
  listed (`ToolCatalog`), **structured content** against its `outputSchema` (a
  successful result of a tool with an output schema must carry `structuredContent`).
  A tool never listed is passed (there is nothing to validate against; logged once).
  A schema that is itself invalid (or cannot be evaluated: an unresolvable `$ref`) is
  logged once and skipped, never a crash.

An invalid request is answered -32602 (invalid params) or -32600 (invalid request)
with the JSON path of the first violation; an invalid response is blocked and the
requester gets the gateway's block error naming the path. Messages name paths and
the schema's expectation (`expected number, got string`), never the offending value.

Validators are built once per (version, definition) and once per distinct tool schema
(keyed by a hash of its canonical JSON, in a bounded LRU); `$ref`s resolve inside their
own document only (no remote retrieval).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from bisect import bisect_right
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Any, Final, Literal

from jsonschema import Draft7Validator, Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError, best_match, relevance
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from mcp_types import PROTOCOL_VERSION_META_KEY
from referencing import Registry, Resource

from guardian import errors
from guardian.catalog import ToolCatalog
from guardian.content import Path
from guardian.decision import Action, Finding
from guardian.events import Direction, Event, Kind
from guardian.inspectors.fast_schema import Check, Unsupported, compile_check
from guardian.inspectors.options import Options

logger = logging.getLogger("guardian.inspectors.schema_validation")

SCHEMA_DIR: Final = FilePath(__file__).resolve().parents[2] / "schemas" / "mcp"
HANDSHAKE_VERSIONS: Final = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
MODERN_VERSIONS: Final = ("2026-07-28",)
VERSIONS: Final = HANDSHAKE_VERSIONS + MODERN_VERSIONS
VERSION_META_KEY: Final = PROTOCOL_VERSION_META_KEY
"""Where a modern-era request names its protocol version (`params._meta`)."""

Mode = Literal["off", "inspected", "full"]
MODES: Final[dict[str, Mode]] = {"off": "off", "inspected": "inspected", "full": "full"}

INSPECTED_REQUESTS: Final = frozenset({"tools/call", "resources/read", "prompts/get", "sampling/createMessage"})
INSPECTED_RESULTS: Final = INSPECTED_REQUESTS | {"tools/list"}
"""`inspected` mode: the methods whose content other detectors read."""

# Definitions that match a method but are unions or bases, not the method's own definition.
_NOT_METHOD_DEFINITIONS: Final = ("Client", "Server", "JSONRPC")


# --- violations: where and what, never the value ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Violation:
    """The first problem with an instance: its JSON path in the message and a value-free description."""

    path: Path
    keyword: str
    description: str

    @property
    def where(self) -> str:
        return client_path(self.path)


_SAFE_KEY = re.compile(r"[A-Za-z_$@][\w$@.\-/:]{0,63}")
_IDENTIFIER = re.compile(r"[A-Za-z_$][\w$]*")


def client_path(path: Path) -> str:
    """`$.params.arguments.items[2].sku`: a path safe to show a client. Keys that do not look
    like names (long, spaced, odd characters: possibly content) are shown as `[…]`."""
    parts = ["$"]
    for element in path:
        if isinstance(element, int):
            parts.append(f"[{element}]")
        elif isinstance(element, str) and _IDENTIFIER.fullmatch(element) and len(element) <= 64:
            parts.append(f".{element}")
        elif isinstance(element, str) and _SAFE_KEY.fullmatch(element):
            parts.append(f'["{element}"]')
        else:
            parts.append("[…]")
    return "".join(parts)


_JSON_TYPES: Final = (
    (bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"),
    (list, "array"), (dict, "object"), (type(None), "null"),
)


def _json_type(value: Any) -> str:
    for python_type, name in _JSON_TYPES:
        if isinstance(value, python_type):
            return name
    return type(value).__name__


def _number(value: Any) -> str | None:
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def describe(error: ValidationError) -> str:
    """What `error` says is wrong, from the schema's side only (no instance values)."""
    keyword, expected = str(error.validator), error.validator_value
    bound = _number(expected)
    if error.validator is None:
        return "no value is allowed here"  # a `false` schema
    if keyword == "required":
        return "missing required property"
    if keyword == "type":
        wanted = " or ".join(expected) if isinstance(expected, list) else str(expected)
        return f"expected {wanted}, got {_json_type(error.instance)}"
    if keyword in ("enum", "const"):
        return "not one of the allowed values" if keyword == "enum" else "not the required constant value"
    if keyword in ("additionalProperties", "unevaluatedProperties"):
        return "unexpected property"
    limits = {
        "minimum": "less than the minimum", "exclusiveMinimum": "not above the minimum",
        "maximum": "greater than the maximum", "exclusiveMaximum": "not below the maximum",
        "minLength": "shorter than the minimum length", "maxLength": "longer than the maximum length",
        "minItems": "fewer items than the minimum", "maxItems": "more items than the maximum",
        "minProperties": "fewer properties than the minimum", "maxProperties": "more properties than the maximum",
        "multipleOf": "not a multiple of",
    }
    if keyword in limits:
        return f"{limits[keyword]} ({bound})" if bound is not None else limits[keyword]
    others = {
        "pattern": "does not match the required pattern",
        "format": f"not a valid {expected}" if isinstance(expected, str) else "not in the required format",
        "uniqueItems": "items are not unique",
        "anyOf": "matches none of the allowed shapes",
        "oneOf": "does not match exactly one of the allowed shapes",
        "not": "matches a shape that is not allowed",
        "contains": "no item matches the required shape",
        "propertyNames": "a property name is not allowed",
        "dependentRequired": "missing a property that another property requires",
        "dependencies": "missing a property that another property requires",
    }
    return others.get(keyword, f"fails the schema's {keyword!r} rule")


_COMBINATORS: Final = ("anyOf", "oneOf")


def _branches(error: ValidationError) -> list[list[ValidationError]]:
    """An anyOf/oneOf error's sub-errors, grouped by the branch that raised them."""
    branches: dict[Any, list[ValidationError]] = defaultdict(list)
    for sub in error.context or ():
        branches[sub.relative_schema_path[0] if sub.relative_schema_path else None].append(sub)
    return list(branches.values())


def _select(errors: Iterable[ValidationError]) -> ValidationError | None:
    """The error to report. Where an anyOf/oneOf failed on an object, descend into the branch
    the object meant when a discriminator singles one out (the only object branch whose
    `const`/`enum` properties, such as `type: "text"`, matched); else jsonschema's heuristic decides."""
    error = max(errors, key=relevance, default=None)
    while error is not None and error.validator in _COMBINATORS and error.context:
        meant = [subs for subs in _branches(error) if isinstance(error.instance, dict) and not any(
            (s.validator in ("const", "enum") and len(s.relative_path) == 1)
            or (s.validator == "type" and not s.relative_path) for s in subs)]
        if len(meant) != 1:
            chosen: ValidationError | None = best_match([error], key=relevance)
            return chosen
        error = max(meant[0], key=relevance)
    return error


def _plain_alternatives(error: ValidationError) -> str | None:
    """How to describe an anyOf/oneOf whose branches each failed on the value's type alone
    (`Optional[str]`: "expected string or null") or on its value alone (a set of constants)."""
    if error.validator not in _COMBINATORS or not error.context:
        return None
    types: list[str] = []
    wrong_value = False
    for subs in _branches(error):
        if any(s.relative_path for s in subs):
            return None  # a branch failed inside the value: a shape problem, not a plain alternative
        mistyped = [s.validator_value for s in subs if s.validator == "type"]
        if mistyped:
            types.extend(t for value in mistyped for t in (value if isinstance(value, list) else [str(value)]))
        elif all(s.validator in ("const", "enum") for s in subs):
            wrong_value = True
        else:
            return None
    if wrong_value:
        return "not one of the allowed values"
    return f"expected {' or '.join(types)}, got {_json_type(error.instance)}"


def first_violation(validator: Validator, instance: Any, prefix: Path = ()) -> Violation | None:
    """The most relevant violation of `instance` (None when valid); paths are prefixed
    with where the instance sits in the message."""
    error = _select(validator.iter_errors(instance))
    if error is None:
        return None
    path: Path = (*prefix, *error.absolute_path)
    required = error.validator_value
    if error.validator == "required" and isinstance(error.instance, dict) and isinstance(required, list):
        missing = [p for p in required if isinstance(p, str) and p not in error.instance]
        if missing:
            path = (*path, missing[0])  # a property name from the schema, not the message
    plain = _plain_alternatives(error)
    if plain is not None:
        return Violation(path, str(error.validator), plain)
    return Violation(path, str(error.validator or "false"), describe(error))


@dataclass(frozen=True, slots=True)
class CompiledSchema:
    """A jsonschema validator (the reference, which names violations) and, where the schema
    allows, a compiled check that accepts valid instances in a fraction of the time."""

    validator: Validator
    check: Check | None

    def violation(self, instance: Any, prefix: Path = ()) -> Violation | None:
        if self.check is not None and self.check(instance):
            return None
        return first_violation(self.validator, instance, prefix)


def _fast_check(validator_class: type[Validator], root: Any, pointer: str = "") -> Check | None:
    try:
        return compile_check(validator_class, root, pointer)
    except (Unsupported, RecursionError):
        return None


# --- the protocol schemas ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Spec:
    """One protocol version's schema document, ready for `$ref`s into it."""

    version: str
    document: Mapping[str, Any]
    definitions: Mapping[str, Any]
    pointer: str
    """`definitions` (draft-07 files) or `$defs` (2020-12 files)."""
    uri: str
    validator_class: type[Validator]
    registry: Registry[Any]
    methods: Mapping[str, str]
    """Method -> its request or notification definition."""


class ProtocolSchemas:
    """The shipped MCP schemas, loaded on first use; validators built once per (version, definition)."""

    def __init__(self, directory: FilePath = SCHEMA_DIR) -> None:
        self.directory = directory
        self._specs: dict[str, _Spec] = {}
        self._validators: dict[tuple[str, str], CompiledSchema] = {}
        self.compilations = 0
        """Validators built so far (each (version, definition) once)."""

    def spec(self, version: str) -> _Spec:
        spec = self._specs.get(version)
        if spec is None:
            spec = self._specs[version] = self._load(version)
        return spec

    def _load(self, version: str) -> _Spec:
        document = json.loads((self.directory / version / "schema.json").read_text(encoding="utf-8"))
        pointer = "$defs" if "$defs" in document else "definitions"
        definitions: Mapping[str, Any] = document[pointer]
        # A name the file lacks (it has no $id); https so relative `#/...` refs join onto it.
        uri = f"https://schemas.mcp-guardian.invalid/mcp/{version}/schema.json"
        registry: Registry[Any] = Registry().with_resource(uri, Resource.from_contents(document))
        methods: dict[str, str] = {}
        for name, definition in definitions.items():
            method = definition.get("properties", {}).get("method", {}).get("const") if isinstance(
                definition, dict) else None
            if isinstance(method, str) and not name.startswith(_NOT_METHOD_DEFINITIONS):
                methods[method] = name
        return _Spec(version, document, definitions, pointer, uri, validator_for(document), registry, methods)

    def validator(self, version: str, definition: str) -> CompiledSchema:
        key = (version, definition)
        compiled = self._validators.get(key)
        if compiled is None:
            spec = self.spec(version)
            ref = {"$ref": f"{spec.uri}#/{spec.pointer}/{definition}"}
            validator = spec.validator_class(ref, registry=spec.registry)
            check = _fast_check(spec.validator_class, spec.document, f"/{spec.pointer}/{definition}")
            compiled = self._validators[key] = CompiledSchema(validator, check)
            self.compilations += 1
        return compiled

    def message_definition(self, version: str, method: str) -> str | None:
        """The definition of a request or notification with `method`, if this version has one."""
        return self.spec(version).methods.get(method)

    def result_definition(
        self, version: str, method: str, request_params: Mapping[str, Any], result: Mapping[str, Any]
    ) -> str | None:
        """The definition a result of `method` must match (None: not a method this version defines)."""
        spec = self.spec(version)
        request = spec.methods.get(method)
        if request is None or not request.endswith("Request"):
            return None
        if "task" in request_params and "CreateTaskResult" in spec.definitions:
            return "CreateTaskResult"  # 2025-11-25: a task-augmented request is answered with its task
        if result.get("resultType") == "input_required" and "InputRequiredResult" in spec.definitions:
            return "InputRequiredResult"
        own = request.removesuffix("Request") + "Result"
        if own in spec.definitions:
            return own
        return "EmptyResult" if "EmptyResult" in spec.definitions else None

    def validate(self, version: str, definition: str, instance: Any, prefix: Path = ()) -> Violation | None:
        return self.validator(version, definition).violation(instance, prefix)


def resolve_version(declared: str | None, modern: bool) -> str:
    """The shipped version to validate a message of `declared` version with: that version if
    shipped, else the newest shipped one of its era not newer than it (versions are dates),
    else the oldest of the era. Undeclared: the newest handshake-era version."""
    era = MODERN_VERSIONS if modern else HANDSHAKE_VERSIONS
    if declared is None:
        return era[-1]
    if declared in era:
        return declared
    index = bisect_right(era, declared)
    return era[index - 1] if index else era[0]


# --- tool schemas ---------------------------------------------------------------------------------------


_NO_REMOTE: Final[Registry[Any]] = Registry()
"""An explicit registry: without one jsonschema would fetch remote `$ref`s over the network."""


def _checked_class(schema: Any) -> type[Validator]:
    """The draft a tool schema declares, having checked the schema against that draft's
    metaschema (`SchemaError` if it fails). Undeclared means 2020-12 (the MCP default), or
    draft-07 for a schema only draft-07 accepts (tuple-form `items`)."""
    if isinstance(schema, dict) and isinstance(schema.get("$schema"), str):
        declared = validator_for(schema, default=Draft202012Validator)
        declared.check_schema(schema)
        return declared
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError:
        Draft7Validator.check_schema(schema)  # raises when neither accepts it
        return Draft7Validator
    return Draft202012Validator


def schema_digest(schema: Any) -> str:
    """A schema's identity across listings: the hash of its canonical JSON."""
    canonical = json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


class ToolSchemas:
    """Compiled tool schema validators, one per distinct schema (bounded LRU).

    The catalog hands out the same definition object until the tools are listed again, so
    a hit is found by object identity first; a fresh listing of an unchanged schema is
    found by its digest and not recompiled. Invalid schemas are cached as None.
    """

    def __init__(self, max_entries: int = 1024) -> None:
        self._max = max_entries
        self._compiled: OrderedDict[str, CompiledSchema | None] = OrderedDict()
        self._identity: OrderedDict[int, tuple[Any, str]] = OrderedDict()
        self.compilations = 0
        """Schemas compiled so far (cache misses), for tests and metrics."""

    def validator(self, schema: Any, label: str) -> CompiledSchema | None:
        """The validator for `schema` (None when the schema is unusable); `label` names it in logs."""
        seen = self._identity.get(id(schema))
        if seen is not None and seen[0] is schema:
            digest = seen[1]
        else:
            digest = schema_digest(schema)
            self._identity[id(schema)] = (schema, digest)  # holding `schema` keeps its id from being reused
            if len(self._identity) > self._max:
                self._identity.popitem(last=False)
        if digest in self._compiled:
            self._compiled.move_to_end(digest)
            return self._compiled[digest]
        compiled = self._compile(schema, label)
        self._store(digest, compiled)
        return compiled

    def _store(self, digest: str, compiled: CompiledSchema | None) -> None:
        self._compiled[digest] = compiled
        self._compiled.move_to_end(digest)
        if len(self._compiled) > self._max:
            self._compiled.popitem(last=False)

    def _compile(self, schema: Any, label: str) -> CompiledSchema | None:
        self.compilations += 1
        if not isinstance(schema, dict | bool):
            logger.warning("%s is not a JSON Schema (a %s); not validated", label, _json_type(schema))
            return None
        try:
            cls = _checked_class(schema)
            return CompiledSchema(cls(schema, registry=_NO_REMOTE), _fast_check(cls, schema))
        except SchemaError as exc:
            where = "/".join(map(str, exc.absolute_path)) or "top level"
            logger.warning("%s is not a valid JSON Schema (%s at %s); not validated", label, exc.validator, where)
            return None
        except Exception as exc:  # RecursionError on a pathological schema, and the like
            logger.warning("%s cannot be compiled (%s); not validated", label, errors.describe(exc))
            return None

    def broken(self, schema: Any, label: str, exc: BaseException) -> None:
        """A schema that failed while validating (unresolvable `$ref`, bad regex): skip it from now on."""
        logger.warning("%s cannot be evaluated (%s); not validated from now on", label, errors.describe(exc))
        self._store(schema_digest(schema), None)

    def validate(self, schema: Any, instance: Any, prefix: Path, label: str) -> Violation | None:
        compiled = self.validator(schema, label)
        if compiled is None:
            return None
        try:
            return compiled.violation(instance, prefix)
        except Exception as exc:  # accepted by the metaschema, yet cannot be evaluated (RecursionError too)
            self.broken(schema, label, exc)
            return None


# --- the inspector --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SchemaValidationPolicy:
    mode: Mode = "inspected"
    arguments: bool = True
    structured_content: bool = True
    action: Action = Action.BLOCK


class SchemaValidationInspector:
    """Options (defaults are the `standard` profile's; `enterprise` sets `mode: full`):

    - `mode`: off | inspected | full (default inspected). Protocol-schema validation of
      messages: `inspected` covers tools/call, resources/read, prompts/get,
      sampling/createMessage (requests and results) and tools/list results; `full` every
      request, result and notification the session's schema defines; `off` none.
    - `arguments`: validate `tools/call` arguments against the tool's `inputSchema` (default true).
    - `structured_content`: validate `structuredContent` against the tool's `outputSchema` (default true).
    - `action`: block | warn (default block).

    `arguments` and `structured_content` apply whatever the mode (`off` included).
    """

    name = "schema_validation"

    def __init__(
        self,
        policy: SchemaValidationPolicy | None = None,
        catalog: ToolCatalog | None = None,
        schemas: ProtocolSchemas | None = None,
        tool_schemas: ToolSchemas | None = None,
        max_sessions: int = 4096,
    ) -> None:
        self.policy = policy or SchemaValidationPolicy()
        self.catalog = catalog
        self.schemas = schemas or ProtocolSchemas()
        self.tool_schemas = tool_schemas or ToolSchemas()
        self._negotiated: OrderedDict[str, str] = OrderedDict()
        self._max_sessions = max_sessions
        self._unlisted: OrderedDict[tuple[str, str], None] = OrderedDict()

    @classmethod
    def from_options(cls, options: Mapping[str, Any], catalog: ToolCatalog | None = None) -> SchemaValidationInspector:
        read = Options(cls.name, options)
        name = read.raw("mode", "inspected")
        mode = MODES.get(name) if isinstance(name, str) else None
        if mode is None:
            read.problem("mode", f"{name!r} is not one of {', '.join(MODES)}")
            mode = "inspected"
        arguments = read.boolean("arguments", True)
        structured = read.boolean("structured_content", True)
        action = read.action("action", Action.BLOCK)
        if action not in (Action.BLOCK, Action.WARN):
            read.problem("action", f"{action!s} is not supported: use block or warn")
        read.done()
        return cls(SchemaValidationPolicy(mode, arguments, structured, action), catalog)

    # --- hooks ---

    def request(self, event: Event) -> list[Finding]:
        method = event.method or ""
        version = self._version(event)
        findings: list[Finding] = []
        if self._covers(method, INSPECTED_REQUESTS):
            findings.extend(self._check_message(event, version, method))
        if (
            method == "tools/call" and self.policy.arguments and not findings
            and event.direction is Direction.CLIENT_TO_SERVER
        ):
            findings.extend(self._check_arguments(event))
        return findings

    def notification(self, event: Event) -> list[Finding]:
        method = event.method or ""
        if self.policy.mode != "full":
            return []
        return self._check_message(event, self._version(event), method)

    def response(self, event: Event) -> list[Finding]:
        method = event.method or ""
        result = event.result
        if result is None:
            return []  # an error response, or the answer to a request the relay did not see
        if method == "initialize" and isinstance(result.get("protocolVersion"), str):
            self._remember(event, result["protocolVersion"])
        version = self._version(event)
        findings: list[Finding] = []
        if self._covers(method, INSPECTED_RESULTS):
            definition = self.schemas.result_definition(version, method, event.params, result)
            if definition is not None:
                violation = self.schemas.validate(version, definition, result, ("result",))
                if violation is not None:
                    findings.append(self._finding(
                        "invalid_result", f"invalid {method} result", violation, f"{version} {definition}"))
        if method == "tools/call" and self.policy.structured_content and not findings:
            findings.extend(self._check_structured_content(event, result))
        return findings

    # --- protocol messages ---

    def _covers(self, method: str, inspected: frozenset[str]) -> bool:
        mode = self.policy.mode
        return mode == "full" or (mode == "inspected" and method in inspected)

    def _check_message(self, event: Event, version: str, method: str) -> list[Finding]:
        definition = self.schemas.message_definition(version, method)
        if definition is None:
            return []  # a method this version does not define (an extension): nothing to check against
        message = event.message
        instance: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if event.kind is Kind.REQUEST:
            instance["id"] = event.id
        params = getattr(message, "params", None)
        if params is not None:
            instance["params"] = params
        violation = self.schemas.validate(version, definition, instance)
        if violation is None:
            return []
        context = f"{version} {definition}"
        if event.kind is Kind.NOTIFICATION:
            return [self._finding("invalid_notification", f"invalid {method} notification", violation, context)]
        in_params = violation.path[:1] == ("params",)
        if in_params:
            return [self._finding("invalid_params", "invalid params", violation, context, errors.INVALID_PARAMS)]
        return [self._finding("invalid_request", "invalid request", violation, context, errors.INVALID_REQUEST)]

    def _version(self, event: Event) -> str:
        """The shipped schema version that applies to `event` (see the module docstring)."""
        params = event.params
        meta = params.get("_meta")
        declared = meta.get(VERSION_META_KEY) if isinstance(meta, dict) else None
        if isinstance(declared, str):
            version = resolve_version(declared, modern=True)
            if event.kind is Kind.REQUEST:
                self._remember(event, version)  # later notifications of this session carry no version
            return version
        if event.method == "initialize":
            # The request is checked against what the client asks for, the result against what was agreed.
            offered = event.result.get("protocolVersion") if event.result is not None else params.get(
                "protocolVersion")
            return resolve_version(offered if isinstance(offered, str) else None, modern=False)
        # The relay's negotiated version, where the gateway puts it on the event.
        negotiated = event.protocol_version or self._negotiated.get(event.session.session_id)
        if isinstance(negotiated, str):
            return resolve_version(negotiated, modern=negotiated in MODERN_VERSIONS)
        return resolve_version(None, modern=False)

    def _remember(self, event: Event, version: str) -> None:
        sessions = self._negotiated
        sessions[event.session.session_id] = version
        sessions.move_to_end(event.session.session_id)
        if len(sessions) > self._max_sessions:
            sessions.popitem(last=False)

    # --- tool schemas ---

    def _tool(self, event: Event) -> Mapping[str, Any] | None:
        if self.catalog is None:
            return None
        tool = self.catalog.tool(event)
        if tool is None and event.target is not None:
            key = (event.session.upstream, event.target)
            if key not in self._unlisted:
                self._unlisted[key] = None
                if len(self._unlisted) > 1024:
                    self._unlisted.popitem(last=False)
                logger.info("tools/call of a tool %s never listed: its arguments and results are not validated",
                            event.session.upstream)
        return tool

    def _check_arguments(self, event: Event) -> list[Finding]:
        tool = self._tool(event)
        if tool is None or "inputSchema" not in tool:
            return []
        arguments = event.params.get("arguments", {})
        label = f"inputSchema of tool {tool.get('name')!r} ({event.session.upstream})"
        violation = self.tool_schemas.validate(tool["inputSchema"], arguments, ("params", "arguments"), label)
        if violation is None:
            return []
        return [self._finding("invalid_arguments", "arguments do not match the tool's input schema",
                              violation, "inputSchema", errors.INVALID_PARAMS)]

    def _check_structured_content(self, event: Event, result: Mapping[str, Any]) -> list[Finding]:
        if result.get("isError") is True or result.get("resultType", "complete") != "complete" \
                or "task" in event.params:
            return []  # errors, input requests and task handles carry no promised structure
        tool = self._tool(event)
        schema = tool.get("outputSchema") if tool is not None else None
        if schema is None:
            return []
        what = "structured content does not match the tool's output schema"
        if "structuredContent" not in result:
            missing = Violation(("result", "structuredContent"), "required", "missing (the tool declares one)")
            return [self._finding("invalid_structured_content", what, missing, "outputSchema")]
        label = f"outputSchema of tool {tool.get('name')!r} ({event.session.upstream})" if tool else "outputSchema"
        prefix: Path = ("result", "structuredContent")
        violation = self.tool_schemas.validate(schema, result["structuredContent"], prefix, label)
        if violation is None:
            return []
        return [self._finding("invalid_structured_content", what, violation, "outputSchema")]

    def _finding(
        self, kind: str, what: str, violation: Violation, context: str, code: int | None = None
    ) -> Finding:
        where = violation.where
        return Finding(
            self.name,
            kind,
            f"{what}: {where}: {violation.description}",
            action=self.policy.action,
            path=violation.path,
            excerpt=f"{violation.keyword} ({context})",
            error_code=code,
            error_data={"path": where} if code is not None else None,
        )
