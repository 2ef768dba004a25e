"""Tool poisoning and shadowing: definitions that instruct the model instead of describing a tool.

An MCP server's tool descriptions, parameter descriptions, prompt and resource descriptions
and its `instructions` go straight into the model's context, and users rarely read them. A
malicious or compromised server uses them to steer the model: read `~/.ssh/id_rsa` and pass it
as `sidenote`, BCC an outside address on every `send_email` (a tool of *another* server:
shadowing), do not tell the user, run this command first, that tool is deprecated. This
inspector reads every such string in `tools/list`, `prompts/list`, `resources/list`,
`resources/templates/list` and the `initialize` / `server/discover` result, de-obfuscated
(`Event.normalized_texts()`), against the rules in `poisoning_rules.py`.

A poisoned definition is withheld: removed from its listing (`action: remove`, the
`standard` default: the rest of the server keeps working), or the whole listing refused
(`block`, `enterprise`), or only recorded (`warn`). Either way the gateway remembers it, per
upstream and tenant, and refuses `tools/call` (and `prompts/get`, `resources/read`) on it
afterwards: a client may have cached the name, and a model may be told it by another tool.
That memory is kept for the life of the process; a server that once served a poisoned
definition is not trusted to have fixed it by the next listing.

Shadowing needs more than one server. A `ToolRegistry` (per tenant) keeps each upstream's tool
names; each inspector has its own, unless `shared_registry` makes every inspector in the process
use one (several gateways or wrapped servers embedded in one process), or a library caller passes
the same registry to several. A tool whose name collides with another upstream's (compared ignoring case and
separators: `Google_Search` shadows `google_search`), or whose text names another
upstream's tool, is flagged `shadowing`; the first server to list a name owns it. When a
server lists a name that an earlier server's description already referred to, that earlier
tool is marked too (its listing has gone out, but calls to it are refused from then on).

Wrapped servers run in separate processes (one `guardian wrap` per server in a desktop
client's config) and share only the pin store (`guardian.pins`), which records every tool
each upstream key listed, per tenant. With `pin_store`, the tools the store holds under
*other* upstream keys of the same tenant (approved and still listed, or pending) count as
another upstream's too. Ownership there goes by when each was first recorded: a name this
upstream recorded earlier is its own; recorded in the same second, both servers are flagged
(which came first is unknown). Upstreams this process has listed itself are judged by the
in-process registry alone. Not across processes: the retroactive marking above, and a
server taken out of the config, or renamed (its upstream key changes), keeps its names in
the store until `guardian pins reset` forgets that upstream's pins: a server listing one of
them later is flagged.

Options (`security.inspectors.tool_poisoning.*`; defaults = the `standard` profile):

- `action`: remove | block | warn (default remove; `redact` means remove; enterprise: block).
- `rules_disabled`: rule ids to skip (default none); ids are the finding kinds:
  hidden_instructions, instruction_override, concealment, sensitive_file_access,
  sensitive_parameter, exfiltration, command_execution, destructive_action,
  cross_tool_instruction, tool_redirection, parameter_tampering, user_deception,
  fake_system_notice, preference_manipulation, model_directive, credential_phishing, shadowing,
  prompt_injection.
- `extra_sensitive_paths`: more file names or paths that no description should ask the
  model to read (default none), e.g. `["secrets.yaml", "~/.config/gh/hosts.yml"]`.
- `known_tools`: tool names of servers the client uses outside this gateway (default
  none): a listed tool with such a name, or a description naming one, is shadowing.
- `injection_rules`: also apply the precise families of the prompt-injection rules
  (`inspectors/injection.py`: instruction overrides in eight languages, jailbreak personas,
  role markers, system-prompt extraction) to definitions, as rule `prompt_injection`, so what
  they find is withheld and its calls refused too (default true).
- `shared_registry`: share tool names and poisoned definitions with every other inspector in
  the process that sets it (default false: this gateway's upstreams only).
- `pin_store`: also take other upstreams' tool names from a pin store file: `auto` (default:
  the pins inspector's default store, `$MCP_GUARDIAN_PINS_FILE` or the XDG state path, read
  when it exists), a path (set it to the pins inspector's `store` when that is not the
  default), or false (off; null, like any unset option, means the default). Read-only: one
  `stat` per listing, re-parsed only when the file changed.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Self

from guardian.content import Path, TextItem, format_path
from guardian.decision import Action, Finding
from guardian.errors import ConfigError
from guardian.events import Direction, Event
from guardian.inspectors import poisoning_rules as R
from guardian.inspectors.options import Options
from guardian.inspectors.poisoning_rules import DescriptionRules, TextScan, tool_key
from guardian.pins.store import PinStore, PinStoreError, default_store_path

logger = logging.getLogger("guardian.inspectors.poisoning")

PROMPT_INJECTION: Final = "prompt_injection"
INJECTION_KINDS: Final = frozenset(
    {"instruction_override", "jailbreak", "role_marker", "prompt_extraction", "exfiltration"}
)
"""The prompt-injection rule families applied to definitions: overrides (in eight languages), jailbreak
personas, chat-template role markers, system-prompt extraction, data in link/image URLs. Its other
families (text addressed to the model, calls to tools, concealment) fire on ordinary descriptions,
which address the model and name their sibling tools by design."""
RULE_IDS: Final = R.RULE_IDS | {PROMPT_INJECTION}
ACTIONS: Final = ("remove", "block", "warn")

ENTRY_KINDS: Final[dict[str, str]] = {
    "tools": "tool", "prompts": "prompt", "resources": "resource", "resourceTemplates": "resource template",
}
"""Listing result key (`Event.listed()`) -> what one entry is."""
SERVER_METHODS: Final = frozenset({"initialize", "server/discover"})
_CALLS: Final[dict[str, tuple[str, str]]] = {
    "tools/call": ("tool", "name"),
    "prompts/get": ("prompt", "name"),
    "resources/read": ("resource", "uri"),
}
_ENTRY_ID_KEYS: Final = {"tool": "name", "prompt": "name", "resource": "uri", "resource template": "uriTemplate"}
_IDENTITY_KEYS: Final = frozenset({"name", "uri", "uriTemplate", "mimeType"})
_SCHEMA_NON_PROSE: Final = frozenset({"required", "pattern"})
REPLACEMENT: Final = ""

WELL_KNOWN_TOOLS: Final = frozenset(
    tool_key(n)
    for n in (
        "send_email", "send_message", "send_mail", "gmail_send", "slack_post_message", "post_message", "read_file",
        "write_file", "read_text_file", "execute_command", "run_command", "exec_command", "shell", "bash",
        "run_terminal_cmd", "web_search", "brave_web_search", "fetch", "http_request", "create_issue",
        "create_pull_request", "push_files", "get_file_contents", "create_or_update_file", "transfer_funds",
        "make_payment", "send_payment", "whatsapp_send_message", "list_chats", "query", "execute_sql",
    )
)
"""Tools of popular servers; a directive naming one, where the listing is unknown, is about another server."""


@dataclass(frozen=True, slots=True)
class PoisoningPolicy:
    """The inspector's options (see the module docstring); the defaults are the `standard` profile."""

    action: str = "remove"
    rules_disabled: frozenset[str] = frozenset()
    extra_sensitive_paths: tuple[str, ...] = ()
    known_tools: tuple[str, ...] = ()
    injection_rules: bool = True
    shared_registry: bool = False
    pin_store: str | None = "auto"
    """`auto`, a path, or None (off); opened by `ToolPoisoningInspector.from_options`."""

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> PoisoningPolicy:
        # The generic keys are the gateway's business (a caller may pass a whole config block).
        read = Options(ToolPoisoningInspector.name, options)
        action = read.raw("action", "remove")
        if action == "redact":
            action = "remove"
        if action not in ACTIONS:
            read.problem("action", f"{action!r} is not one of {', '.join(ACTIONS)}")
            action = "remove"
        disabled = read.strings("rules_disabled", (), choices=RULE_IDS)
        paths = read.strings("extra_sensitive_paths", ())
        known = read.strings("known_tools", ())
        injection = read.boolean("injection_rules", True)
        shared = read.boolean("shared_registry", False)
        store = read.raw("pin_store", "auto")
        if store is False:
            store = None
        elif isinstance(store, os.PathLike):
            store = os.fspath(store)
        if store is not None and not (isinstance(store, str) and store):
            read.problem("pin_store", f"{store!r} is not auto, a path or false")
            store = "auto"
        read.done()
        return cls(action, frozenset(disabled), paths, known, injection, shared, store)


@dataclass(frozen=True, slots=True)
class DefinitionHit:
    """One rule on one definition: where (the string's path) and a masked excerpt."""

    rule: str
    path: Path
    excerpt: str


# ---------------------------------------------------------------------------------------------
# The registry: which upstream lists which tool names, and which definitions were poisoned.


@dataclass(frozen=True, slots=True)
class ToolMark:
    """What the registry keeps of one listed tool: its name and the names its texts mention."""

    name: str
    mentions: frozenset[str]
    """Tool keys of the distinctive identifiers in the tool's texts (`send_email`, `getMe`)."""
    marked: frozenset[str]
    """Tool keys of words marked as names (backticked, quoted, "x tool"): plain-word names count here."""


@dataclass(slots=True)
class _Tenant:
    tools: dict[str, dict[str, ToolMark]] = field(default_factory=dict)
    """upstream -> tool key -> mark."""
    owners: dict[str, str] = field(default_factory=dict)
    """tool key -> the upstream that listed it first."""


class ToolRegistry:
    """Tool names per upstream (per tenant) and poisoned definitions per (upstream, tenant).

    In-process and bounded: at most `max_tenants` tenants and `max_keys` poisoned-sets are
    kept (least recently used dropped), `max_tools` tools per upstream.
    """

    def __init__(self, max_tenants: int = 1024, max_keys: int = 4096, max_tools: int = 10000) -> None:
        self._tenants: OrderedDict[str | None, _Tenant] = OrderedDict()
        self._poisoned: OrderedDict[tuple[str, str | None], dict[tuple[str, str], str]] = OrderedDict()
        self._lock = threading.Lock()
        self._max_tenants = max_tenants
        self._max_keys = max_keys
        self._max_tools = max_tools

    def _tenant(self, tenant: str | None) -> _Tenant:
        state = self._tenants.get(tenant)
        if state is None:
            state = self._tenants[tenant] = _Tenant()
            while len(self._tenants) > self._max_tenants:
                self._tenants.popitem(last=False)
        self._tenants.move_to_end(tenant)
        return state

    def tools(self, upstream: str, tenant: str | None) -> dict[str, ToolMark] | None:
        """The upstream's tools as last listed, or None if it has not listed any."""
        with self._lock:
            state = self._tenants.get(tenant)
            listed = state.tools.get(upstream) if state is not None else None
            return dict(listed) if listed is not None else None

    def foreign(self, upstream: str, tenant: str | None) -> dict[str, tuple[str, str]]:
        """Tool key -> (owning upstream, name) for every tool another upstream listed first."""
        with self._lock:
            state = self._tenants.get(tenant)
            if state is None:
                return {}
            return {
                key: (owner, state.tools[owner][key].name)
                for key, owner in state.owners.items()
                if owner != upstream and owner in state.tools and key in state.tools[owner]
            }

    def record(self, upstream: str, tenant: str | None, marks: Mapping[str, ToolMark], fresh: bool) -> list[
            tuple[str, str]]:
        """Store an upstream's listing (a first page replaces, later pages add).

        Returns (upstream, tool name) of earlier tools of *other* upstreams whose texts name a
        tool in this listing: retroactive shadowing, for the caller to mark.
        """
        with self._lock:
            state = self._tenant(tenant)
            old = state.tools.get(upstream, {})
            table = dict(marks) if fresh else {**old, **marks}
            if len(table) > self._max_tools:
                table = dict(list(table.items())[: self._max_tools])
            state.tools[upstream] = table
            for key in [k for k, owner in state.owners.items() if owner == upstream and k not in table]:
                del state.owners[key]
            for key in table:
                state.owners.setdefault(key, upstream)
            new_keys = {k for k in table if k not in old}
            referring: list[tuple[str, str]] = []
            if new_keys:
                distinctive = {k for k in new_keys if _distinctive(table[k].name)}
                for other, tools in state.tools.items():
                    if other == upstream:
                        continue
                    for key, mark in tools.items():
                        if key in new_keys:
                            continue
                        if mark.mentions & distinctive or mark.marked & new_keys:
                            referring.append((other, mark.name))
            return referring

    def mark(self, upstream: str, tenant: str | None, kind: str, name: str, rule: str) -> None:
        with self._lock:
            key = (upstream, tenant)
            table = self._poisoned.get(key)
            if table is None:
                table = self._poisoned[key] = {}
                while len(self._poisoned) > self._max_keys:
                    self._poisoned.popitem(last=False)
            self._poisoned.move_to_end(key)
            if len(table) < self._max_tools:
                table.setdefault((kind, name), rule)

    def poisoned(self, upstream: str, tenant: str | None, kind: str, name: str) -> str | None:
        """The rule that flagged this definition, if one did."""
        with self._lock:
            table = self._poisoned.get((upstream, tenant))
            return table.get((kind, name)) if table is not None else None


_SHARED = ToolRegistry()


def shared_registry() -> ToolRegistry:
    """The process-wide registry of inspectors with `shared_registry: true`."""
    return _SHARED


_CAMEL = re.compile(r"[a-z][A-Z]")


def _distinctive(name: str) -> bool:
    """Whether a tool name is specific enough to be a reference wherever it appears
    (`send_email`, `get-sum`, `getMe`), unlike plain words (`search`, `echo`)."""
    return bool(re.search(r"[_.\-]", name.strip("_.-")) or _CAMEL.search(name))


# ---------------------------------------------------------------------------------------------
# Checking one definition


@dataclass(frozen=True, slots=True)
class Context:
    """What a definition is checked against."""

    own: str | None
    local: frozenset[str] | None
    """Tool keys of the same server's listing; None when unknown (instructions before the first
    `tools/list`): tool names in directives are then presumed to be the server's own."""
    foreign: Mapping[str, tuple[str, str]]
    """Tool key -> (where it comes from: "upstream X" or "known_tools", its name): shadowing if named
    or listed again."""


class DefinitionChecker:
    """Every rule, over the strings of one definition (a tool, prompt, resource or the server's
    instructions); shared by the inspector, `guardian scan` and the evaluation."""

    def __init__(self, policy: PoisoningPolicy | None = None) -> None:
        self.policy = policy or PoisoningPolicy()
        self.rules = DescriptionRules(self.policy.extra_sensitive_paths)
        self.known = {tool_key(n): ("known_tools", n) for n in self.policy.known_tools}
        self._injection: Any = None
        if self.policy.injection_rules and PROMPT_INJECTION not in self.policy.rules_disabled:
            self._injection = _injection_rules()

    def check(self, texts: Iterable[TextItem], context: Context, entry: Mapping[str, Any] | None = None,
              entry_path: Path = ()) -> tuple[list[DefinitionHit], ToolMark | None]:
        """Rule hits on the definition's strings (normalised), and what the registry keeps of it."""
        disabled = self.policy.rules_disabled
        hits: list[DefinitionHit] = []
        seen: set[str] = set()
        mentions: set[str] = set()
        marked: set[str] = set()

        def add(rule: str, path: Path, piece: str) -> None:
            if rule in disabled or rule in seen:
                return
            seen.add(rule)
            hits.append(DefinitionHit(rule, path, f"{format_path(path)}: {R.excerpt(piece)}"))

        own = context.own
        own_key = tool_key(own) if own else None
        param_names = _property_names(entry.get("inputSchema")) if entry is not None else []
        params = {tool_key(p) for p in param_names}  # a parameter named like a tool is not a reference
        foreign = {**self.known, **context.foreign}
        local = context.local
        for item in texts:
            scan: TextScan = self.rules.scan(item.text, own)
            flat = R.collapse(item.text) if scan.hits or scan.refs else ""
            for hit in scan.hits:
                add(hit.rule, item.path, flat[hit.start : hit.end])
            param = _parameter_of(item.path)
            if param is not None and item.path[-1] in ("description", "title"):
                for rule in R.parameter_hits(param, item.text, own):
                    add(rule, item.path, item.text[:80])
            for ref in scan.refs:
                key = tool_key(ref.name)
                if key == own_key or key in params:
                    continue
                if key in foreign and (local is None or key not in local):
                    add(R.SHADOWING, item.path, flat[ref.start : ref.end])
                elif (key not in local) if local is not None else (key in WELL_KNOWN_TOOLS):
                    # A directive about a tool this server does not list is about another server's
                    # tool; about its own tools (a workflow: "call resolve_id first") it is ordinary.
                    add(R.CROSS_TOOL_INSTRUCTION, item.path, flat[ref.start : ref.end])
            mentions |= scan.identifiers
            marked |= scan.marked
            if self._injection is not None:
                for rule_hit in self._injection(item.text):
                    if rule_hit.kind in INJECTION_KINDS:
                        add(PROMPT_INJECTION, item.path, item.text[rule_hit.start : rule_hit.end])
                        break
        named = sorted(
            foreign[k][1] for k in (mentions | marked)
            if k in foreign and k != own_key and (local is None or k not in local)
            and (k in marked or _distinctive(foreign[k][1]))
        )
        if named:
            where = (*entry_path, "description") if entry is not None and "description" in entry else entry_path
            add(R.SHADOWING, where, "names " + ", ".join(named[:5]))
        if own_key is not None and own_key in foreign:
            add(R.SHADOWING, (*entry_path, "name"), f"{own} (also {foreign[own_key][0]})")
        if entry is not None:
            for name in param_names:
                for rule in R.parameter_hits(name, "", own):
                    add(rule, (*entry_path, "inputSchema", "properties", name), name)
            if own and R.promotional_name(own):
                add(R.PREFERENCE_MANIPULATION, (*entry_path, "name"), own)
        mark = ToolMark(own, frozenset(mentions), frozenset(marked)) if own else None
        return hits, mark


def _prose(rest: Path) -> bool:
    """Whether a string inside a definition is read as prose: not the entry's own name or URI,
    not its icons, not a JSON-schema `required` list or `pattern` (a property may be called
    "name" or "pattern", so what counts is the step before)."""
    if len(rest) == 1:
        return rest[0] not in _IDENTITY_KEYS
    if rest[0] == "icons":
        return False
    return not any(
        step in _SCHEMA_NON_PROSE and (i == 0 or rest[i - 1] != "properties") for i, step in enumerate(rest)
    )


def _parameter_of(path: Path) -> str | None:
    """The schema property a string belongs to: `...properties.<name>.description` -> name."""
    for index in range(len(path) - 2, -1, -1):
        if path[index] == "properties" and isinstance(path[index + 1], str):
            return path[index + 1]  # type: ignore[return-value]
    return None


def _property_names(schema: Any, depth: int = 0) -> list[str]:
    if not isinstance(schema, Mapping) or depth > 8:
        return []
    names: list[str] = []
    properties = schema.get("properties")
    if isinstance(properties, Mapping):
        for name, child in properties.items():
            if isinstance(name, str):
                names.append(name)
            names.extend(_property_names(child, depth + 1))
    items = schema.get("items")
    if isinstance(items, Mapping):
        names.extend(_property_names(items, depth + 1))
    return names


def _injection_rules() -> Any:
    """The prompt-injection rule matcher, if that inspector is installed (it is optional here)."""
    try:
        from guardian.inspectors.injection import match_rules
    except ImportError:  # pragma: no cover - the injection inspector ships with the package
        return None
    return match_rules


# ---------------------------------------------------------------------------------------------
# The inspector


class ToolPoisoningInspector:
    """Poisoned tool/prompt/resource definitions and server instructions, and shadowing
    across upstreams. Options: `action` (remove | block | warn), `rules_disabled`,
    `extra_sensitive_paths`, `known_tools`, `injection_rules`, `shared_registry`, `pin_store` (see
    the module docstring)."""

    name = "tool_poisoning"

    def __init__(self, policy: PoisoningPolicy | None = None, registry: ToolRegistry | None = None,
                 pin_store: PinStore | None = None) -> None:
        """`pin_store`: other upstreams' tools are also read from it (`from_options` opens the
        policy's; constructed directly, none unless given)."""
        self.policy = policy or PoisoningPolicy()
        self.checker = DefinitionChecker(self.policy)
        if registry is None:
            registry = shared_registry() if self.policy.shared_registry else ToolRegistry()
        self.registry = registry
        self.pin_store = pin_store

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Self:
        policy = PoisoningPolicy.from_options(options)
        return cls(policy, pin_store=_open_pin_store(policy.pin_store))

    def _foreign(self, upstream: str, tenant: str | None) -> dict[str, tuple[str, str]]:
        """Tool key -> (where from, name) of the tools of other upstreams: this process's registry,
        then the pin store's records of upstreams this process has not seen list."""
        foreign = {k: (f"upstream {u}", n) for k, (u, n) in self.registry.foreign(upstream, tenant).items()}
        if self.pin_store is None:
            return foreign
        self.pin_store.refresh()
        recorded = self.pin_store.tool_names(tenant)
        own = {tool_key(name): since for name, since in recorded.get(upstream, {}).items()}
        for other, names in recorded.items():
            if other == upstream or self.registry.tools(other, tenant) is not None:
                continue
            for name, since in names.items():
                key = tool_key(name)
                mine = own.get(key)
                if key not in foreign and (mine is None or since <= mine):
                    foreign[key] = (f"upstream {other}", name)
        return foreign

    # -- calls to what was withheld ------------------------------------------------------------

    def request(self, event: Event) -> list[Finding]:
        call = _CALLS.get(event.method or "")
        if call is None or event.direction is not Direction.CLIENT_TO_SERVER:
            return []
        kind, key = call
        target = event.params.get(key)
        if not isinstance(target, str):
            return []
        session = event.session
        rule = self.registry.poisoned(session.upstream, session.tenant, kind, target)
        if rule is None:
            return []
        return [Finding(self.name, rule, f"this {kind} was flagged as poisoned ({rule}); it may not be used",
                        action=self._refusal, path=("params", key))]

    @property
    def _refusal(self) -> Action:
        """The action of a finding that does not remove anything: a warning in `warn` mode, else a block."""
        return Action.WARN if self.policy.action == "warn" else Action.BLOCK

    # -- listings and server instructions ---------------------------------------------------------

    def response(self, event: Event) -> list[Finding]:
        if event.result is None or event.direction is not Direction.SERVER_TO_CLIENT:
            return []
        listed = event.listed()
        if listed is not None:
            return self._listing(event, *listed)
        if event.method in SERVER_METHODS:
            return self._server_texts(event)
        return []

    def _listing(self, event: Event, result_key: str, entries: list[Any]) -> list[Finding]:
        kind = ENTRY_KINDS[result_key]
        session = event.session
        upstream, tenant = session.upstream, session.tenant
        id_key = _ENTRY_ID_KEYS[kind]
        by_entry: dict[int, list[TextItem]] = {}
        for item in event.normalized_texts():
            path = item.path
            if len(path) > 3 and path[0] == "result" and path[1] == result_key and isinstance(path[2], int):
                if not _prose(path[3:]):
                    continue
                by_entry.setdefault(path[2], []).append(item)
        fresh = not event.params.get("cursor")
        registered = self.registry.tools(upstream, tenant)
        foreign = self._foreign(upstream, tenant)
        if kind == "tool":
            names = {tool_key(e["name"]) for e in entries if isinstance(e, dict) and isinstance(e.get("name"), str)}
            earlier = set(registered or {}) if not fresh else set()
            local: frozenset[str] | None = frozenset(names | earlier)
        else:
            local = frozenset(registered) if registered is not None else None
        findings: list[Finding] = []
        marks: dict[str, ToolMark] = {}
        noun = f"{kind} definition"
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict):
                continue
            ident = entry.get(id_key)
            own = entry.get("name") if isinstance(entry.get("name"), str) else None
            entry_path: Path = ("result", result_key, index)
            context = Context(own if kind == "tool" else None, local, foreign)
            hits, mark = self.checker.check(by_entry.get(index, ()), context, entry, entry_path)
            if kind == "tool" and mark is not None:
                marks[tool_key(mark.name)] = mark
            if not isinstance(ident, str):
                ident = None
            if hits:
                if ident is not None:
                    self.registry.mark(upstream, tenant, kind, ident, hits[0].rule)
            elif ident is not None and (earlier_rule := self.registry.poisoned(upstream, tenant, kind, ident)):
                # Flagged in an earlier listing: still withheld, or its calls would fail unexplained.
                hits = [DefinitionHit(earlier_rule, entry_path, f"{format_path(entry_path)}: flagged earlier")]
            if hits:
                findings.extend(self._entry_findings(hits, entry_path, noun))
        if kind == "tool":
            for other, name in self.registry.record(upstream, tenant, marks, fresh):
                self.registry.mark(other, tenant, "tool", name, R.SHADOWING)
                findings.append(Finding(
                    self.name, R.SHADOWING,
                    "a tool of another server names a tool of this one; calls to that tool are refused",
                    action=Action.WARN, excerpt=f"upstream {other}: tool {name}"))
        return findings

    def _entry_findings(self, hits: list[DefinitionHit], entry_path: Path, noun: str) -> list[Finding]:
        action = self.policy.action
        findings = []
        for hit in hits:
            message = f"{noun} {_message(hit.rule)}"
            if action == "remove":
                findings.append(Finding(self.name, hit.rule, message, action=Action.REDACT, path=entry_path,
                                        remove=True, excerpt=hit.excerpt))
            else:
                findings.append(Finding(self.name, hit.rule, message, action=self._refusal, path=hit.path,
                                        excerpt=hit.excerpt))
        return findings

    def _server_texts(self, event: Event) -> list[Finding]:
        """`instructions` (and `serverInfo` prose) of an initialize / discover result."""
        texts = [item for item in event.normalized_texts()
                 if len(item.path) >= 2 and item.path[0] == "result" and (
                     item.path[1] == "instructions" or (item.path[1] == "serverInfo" and item.path[-1] in (
                         "description", "title")))]
        if not texts:
            return []
        session = event.session
        registered = self.registry.tools(session.upstream, session.tenant)
        foreign = self._foreign(session.upstream, session.tenant)
        context = Context(None, frozenset(registered) if registered is not None else None, foreign)
        findings: list[Finding] = []
        for item in texts:
            hits, _ = self.checker.check([item], context)
            for hit in hits:
                message = f"server {'instructions' if item.path[1] == 'instructions' else 'description'} " \
                          f"{_message(hit.rule)}"
                if self.policy.action == "remove":
                    whole = item.path[1] == "instructions" and len(item.path) == 2
                    findings.append(Finding(self.name, hit.rule, message, action=Action.REDACT, path=item.path,
                                            remove=whole, replacement=None if whole else REPLACEMENT,
                                            excerpt=hit.excerpt))
                else:
                    findings.append(Finding(self.name, hit.rule, message, action=self._refusal, path=item.path,
                                            excerpt=hit.excerpt))
        return findings


def _open_pin_store(setting: str | None) -> PinStore | None:
    """The pin store `pin_store` names; `auto` never fails (a bad default file is the pins
    inspector's to report), a named file that is not a pin store is a configuration error."""
    if setting is None:
        return None
    try:
        return PinStore(default_store_path() if setting == "auto" else setting)
    except PinStoreError as exc:
        if setting == "auto":
            logger.warning("tool_poisoning: not reading the pin store for shadowing: %s", exc)
            return None
        raise ConfigError([f"$.security.inspectors.{ToolPoisoningInspector.name}.pin_store: {exc}"]) from None


def _message(rule: str) -> str:
    if rule == PROMPT_INJECTION:
        return "carries a prompt injection"
    return R.RULE_MESSAGES[rule]
