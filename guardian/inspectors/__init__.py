"""Built-in inspectors. Each is an ordinary object with hook methods (see `guardian.inspector`)."""

from guardian.inspectors.hidden_characters import HiddenCharacterPolicy, HiddenCharactersInspector
from guardian.inspectors.limits import Limits, LimitsInspector
from guardian.inspectors.secrets import SecretsInspector, SecretsPolicy
from guardian.inspectors.tool_access import ToolAccessInspector

__all__ = [
    "HiddenCharacterPolicy",
    "HiddenCharactersInspector",
    "Limits",
    "LimitsInspector",
    "SecretsInspector",
    "SecretsPolicy",
    "ToolAccessInspector",
]
