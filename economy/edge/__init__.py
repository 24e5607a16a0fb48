"""The edge node: an HTTP service that decides ads for the users it hosts (``fedadagent serve``).

One node holds, for each user it hosts, that user's private context (kept on the node, written
ahead to its event store), and one served model: the global adapter + head of a run (or the
embedded default). A decision scores the candidates against the user's context and runs the
auction locally; only the chosen ad id and its price per click leave the node.

Modules, one job each: :mod:`.model` (which model and state a node serves), :mod:`.catalogue`
(the ads a catalogue query draws from), :mod:`.store` (the write-ahead event log), :mod:`.node`
(contexts and decisions), :mod:`.schemas` (request bodies), :mod:`.metrics` (Prometheus),
:mod:`.app` (the Starlette application, imported on its own: the rest needs no web framework).
"""

from .catalogue import Catalogue, catalogue_from_config
from .errors import EdgeError, UnknownAdError, UnknownUserError
from .model import GLOBAL_MODEL, ServedModel, load_served_model, write_global_model
from .node import EdgeNode
from .store import EventStore, StoredEvent

__all__ = [
    "GLOBAL_MODEL",
    "Catalogue",
    "EdgeError",
    "EdgeNode",
    "EventStore",
    "ServedModel",
    "StoredEvent",
    "UnknownAdError",
    "UnknownUserError",
    "catalogue_from_config",
    "load_served_model",
    "write_global_model",
]
