"""Federated training of the agents with Flower: tasks, strategies, DP, SecAgg+, poisoning, LoLaFL.

The Flower apps live in submodules so that importing this package does not import Flower.
The tasks that need torch (``DeviceTask``, ``InstructTask``) are exported here but loaded on
first access (PEP 562 ``__getattr__``), so ``import federation`` imports neither Flower nor
torch.

Example:
    >>> from federation import make_strategy
    >>> type(make_strategy("fedavg", num_nodes=4)).__name__
    'FedAvg'
"""

from ._errors import FederationError
from .accounting import CommLedger, array_bytes
from .agent_task import AgentTask, partition_users
from .gossip_fallback import FallbackHistory, decentralized_rounds
from .poisoning import ATTACKS, attack, flip_labels, malicious_partitions
from .selection import DeviceProfile, EnergyAwareSelection, select_nodes
from .strategies import DP_MODES, ROBUST, STRATEGIES, make_strategy
from .task import ClickTask, Task, make_task

_LAZY = {"DeviceTask": ".device_task", "InstructTask": ".instruct_task"}


def __getattr__(name: str) -> object:
    """The torch-backed task classes, imported on first access."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ATTACKS",
    "DP_MODES",
    "ROBUST",
    "STRATEGIES",
    "AgentTask",
    "ClickTask",
    "CommLedger",
    "DeviceProfile",
    "DeviceTask",
    "EnergyAwareSelection",
    "FallbackHistory",
    "FederationError",
    "InstructTask",
    "Task",
    "array_bytes",
    "attack",
    "decentralized_rounds",
    "flip_labels",
    "make_strategy",
    "make_task",
    "malicious_partitions",
    "partition_users",
    "select_nodes",
]
