"""Federated training of the agents with Flower: strategies, DP, poisoning, accounting, LoLaFL.

The Flower apps live in submodules so that importing this package does not import Flower.

Example:
    >>> from federation import make_strategy
    >>> type(make_strategy("fedavg", num_nodes=4)).__name__
    'FedAvg'
"""

from ._errors import FederationError
from .accounting import CommLedger, array_bytes
from .poisoning import ATTACKS, attack, flip_labels, malicious_partitions
from .strategies import DP_MODES, ROBUST, STRATEGIES, make_strategy

__all__ = [
    "ATTACKS",
    "DP_MODES",
    "ROBUST",
    "STRATEGIES",
    "CommLedger",
    "FederationError",
    "array_bytes",
    "attack",
    "flip_labels",
    "make_strategy",
    "malicious_partitions",
]
