"""MCP Guardian: a protocol-native security gateway for the Model Context Protocol.

The public API is what this module exports; everything else is internal.
"""

__version__ = "0.1.0"

from guardian.config import Config
from guardian.content import TextItem, apply_patches, extract, format_path
from guardian.decision import Action, Decision, Finding
from guardian.errors import ConfigError
from guardian.events import Direction, Event, Kind, SessionInfo
from guardian.gateway import Guardian
from guardian.inspector import EveryMessage, Inspector
from guardian.pipeline import InspectorSettings

__all__ = [
    "Action",
    "Config",
    "ConfigError",
    "Decision",
    "Direction",
    "Event",
    "EveryMessage",
    "Finding",
    "Guardian",
    "Inspector",
    "InspectorSettings",
    "Kind",
    "SessionInfo",
    "TextItem",
    "__version__",
    "apply_patches",
    "extract",
    "format_path",
]
