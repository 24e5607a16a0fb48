"""Federated training of the agents with Flower: strategies, DP, poisoning, accounting, LoLaFL.

The Flower apps live in submodules so that importing this package does not import Flower.

Example:
    >>> from federation import make_strategy
    >>> type(make_strategy("fedavg", num_nodes=4)).__name__
    'FedAvg'
"""

from ._errors import FederationError
from .accounting import CommLedger, array_bytes
from .gossip_fallback import FallbackHistory, decentralized_rounds
from .poisoning import ATTACKS, attack, flip_labels, malicious_partitions
from .selection import DeviceProfile, EnergyAwareSelection, select_nodes
from .strategies import DP_MODES, ROBUST, STRATEGIES, make_strategy
from .task import ClickTask, Task, ndcg_precision_at_k

__all__ = [
    "ATTACKS",
    "DP_MODES",
    "ROBUST",
    "STRATEGIES",
    "ClickTask",
    "CommLedger",
    "DeviceProfile",
    "EnergyAwareSelection",
    "FallbackHistory",
    "FederationError",
    "Task",
    "array_bytes",
    "attack",
    "decentralized_rounds",
    "flip_labels",
    "make_strategy",
    "malicious_partitions",
    "ndcg_precision_at_k",
    "select_nodes",
]
