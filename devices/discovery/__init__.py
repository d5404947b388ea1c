"""Discovery: read the registration group from Graph, evaluate every candidate, register, record the run.

A run reads the tenant into staging rows first (so memory does not grow with the tenant, and nothing is
changed from a read that did not complete), then evaluates candidates in chunks and writes only the
devices whose evaluation changed. By job: `lease` (one run at a time), `reading` (Graph into staging),
`status` (the pure status rules), `rings`, `evaluation` (chunks, input keys, writes) and `run`.
"""

from .lease import acquire_lease, active_run
from .run import run_discovery
from .state import DiscoveryAborted
from .status import JOIN_TYPES, evaluate_device

__all__ = [
    "DiscoveryAborted",
    "JOIN_TYPES",
    "acquire_lease",
    "active_run",
    "evaluate_device",
    "run_discovery",
]
