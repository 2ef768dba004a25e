"""Tool definition pinning and rug-pull blocking (see `guardian.pins.inspector`)."""

from guardian.pins.fingerprint import Fingerprint, fingerprint, instructions_fingerprint
from guardian.pins.inspector import PinPolicy, PinsInspector
from guardian.pins.store import PinEntry, PinStore, PinStoreError, default_store_path

__all__ = [
    "Fingerprint",
    "PinEntry",
    "PinPolicy",
    "PinStore",
    "PinStoreError",
    "PinsInspector",
    "default_store_path",
    "fingerprint",
    "instructions_fingerprint",
]
