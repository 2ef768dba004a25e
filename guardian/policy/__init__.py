"""Access policy: who may use which tools, prompts and resources, under which conditions.

A policy is a YAML file (schema: `schemas/policy.schema.json`; guide with examples:
`policies/access/README.md`)::

    version: 1
    name: team-access                # optional label
    default: deny                    # effect when no rule matches: allow | deny
    default_reason: ask an admin     # optional; shown to the client on a default deny
    timezone: Europe/Berlin          # optional; for time windows that name none (UTC)
    rules:                           # in order: the FIRST rule whose `when` holds decides
      - id: no-deletes-in-prod       # unique; appears in the audit log
        effect: deny                 # allow | deny | require-approval
        reason: deleting is not allowed in production    # shown to the client
        when:                        # every condition given must hold (AND)
          tenant: prod
          tool: "delete_*"
      - id: devs
        effect: allow
        when: {roles: [dev, admin]}

Semantics, in the order a reviewer checks them:

1. **First match wins.** Rules are read top to bottom; the first whose conditions all
   hold decides, like a firewall rule list. Put exceptions above the rule they carve
   out of. No rule matching means `default` (write `default: deny` for allow-lists).
2. **Which messages.** Client requests are judged. `initialize`, `ping`,
   `logging/setLevel` and the four list methods are judged by rules that match them, but
   `default` does not apply to them. Responses, notifications and server-to-client
   requests are not access requests and are never denied.
3. **Listings are filtered.** An entry of `tools/list`, `prompts/list`, `resources/list`
   or `resources/templates/list` is hidden when its use (`tools/call` of that tool, ...)
   would be denied whatever the arguments: a rule conditioned on arguments or findings
   counts as "may allow" when it allows and is skipped when it denies. Templates are
   matched by their `uriTemplate` text. `require-approval` entries stay visible.
4. **Effects.** `deny` blocks with the rule's `reason`; `require-approval` blocks with
   "approval required: <reason>" until approvals exist.

Conditions (under `when`; a list of patterns means any of them):

- `subject`, `tenant`, `upstream`, `method`, `tool`, `prompt`, `resource`: globs
  (`*` any run, slashes included; `?` one character; `[a-z]`, `[!a-z]`), case-sensitive,
  matched against the whole value. A rule names at most one of tool/prompt/resource.
  Resource URIs are compared percent-decoded with `//`, `.`, `..` resolved; one whose `..`
  climbs above its root is refused (`rule=(invalid-uri)`). `tool`, `prompt`,
  `resource` (and `args` equals/glob) may use `${subject}` and `${tenant}`.
- `authenticated: true|false`.
- `roles`, `scopes`: a list (the caller has any of them) or `{any: [...], all: [...],
  none: [...]}`.
- `claims`, `args`: lists of value tests into the token claims / the call's arguments,
  each `{path: $.a.b[0], <one of> equals | in | glob | regex | range | exists, not: bool,
  as_path: bool}`. `path` is a JSON path (`$.a`, `$['a b']`, `$.list[0]`, `$.list[-1]`,
  `$.list[*]`). With `[*]` the test holds if any value passes (with `not`, if any value
  fails); `[*]` over a single value reaches that value. `regex` searches (anchor it
  yourself); `range` takes `gt/gte/lt/lte` and accepts numeric strings; `equals`/`in` are
  type-strict (`true` is not `1`); `as_path` resolves `..` in file paths first. A path
  that reaches nothing fails every test except `exists: false` (so `not: true` on a
  missing value holds: the safe reading for deny rules).
- `time`: `{days: [mon-fri, sun], hours: "09:00-17:30" | [...], timezone: ...}`; hours
  are [start, end) and may wrap midnight (`"22:00-06:00"`).
- `findings`: a list of `{detector, kind, action, min_score}`; holds if a detector that
  ran before the policy reported a matching finding on the same message (`action` means
  "at least": warn < redact < block).

Use: `AccessPolicyInspector.from_file(path)` (or `from_options`) in the pipeline;
`CompiledPolicy.evaluate(subject, request, findings)` directly; `guardian policy test
POLICY CASES` (`guardian.policy.testing`) for table-driven checks.
"""

from guardian.policy.engine import CompiledPolicy, compile_policy
from guardian.policy.inspector import AccessPolicyInspector
from guardian.policy.loader import PolicyError, build_policy, load_policy, parse_policy
from guardian.policy.model import Effect, Policy, Request, Rule, Subject, SubjectLike, Verdict, subject_of

__all__ = [
    "AccessPolicyInspector",
    "CompiledPolicy",
    "Effect",
    "Policy",
    "PolicyError",
    "Request",
    "Rule",
    "Subject",
    "SubjectLike",
    "Verdict",
    "build_policy",
    "compile_policy",
    "load_policy",
    "parse_policy",
    "subject_of",
]
