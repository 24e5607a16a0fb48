"""User-level privacy of a federated run: who was in each aggregate, charged to that user alone.

Under a central DP mode (``dp = "central-*"`` or ``"client-*"``: each node's update is clipped
to the clipping norm, on the server or by Flower's client mod, and the server adds Gaussian
noise with multiplier ``z`` sized for the replies it averaged) every round a node's update goes
into is one Gaussian mechanism with multiplier ``z`` for the user that node holds. Selection
(uniform sampling by the strategy, energy-aware selection, a caller's choice) is not a Poisson
coin, so no amplification by sampling is claimed: rounds a user sat out cost it nothing, rounds
it was aggregated in cost ``gaussian(z)`` each, composed per user with PLD
(:class:`agents.UserAccountant`): ``epsilon_max`` is what happened, with no sampling
assumption. When the strategy itself samples a uniform cohort (``clients-per-round = 0``,
``fraction-train = q < 1``) the summary also gives ``epsilon_amplified``: RDP of ``rounds``
Poisson-subsampled Gaussian mechanisms at rate ``q``, the usual DP-FedAvg approximation of a
fixed-size uniform cohort (an approximation, not a proof, for Flower's sampling). Without a
central mode the updates leave without user-level noise and a user's epsilon is ``inf`` from
its first aggregated round (local DP-SGD protects single click rows, not the user).

Example:
    >>> acc = RoundAccountant(4, {"dp": "central-fixed", "noise-multiplier": 2.0})
    >>> class U: node_id = 7
    >>> round(acc.hook(1, {}, [U()], {})["epsilon-user-max"], 2)
    1.99
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def round_mechanism(cfg: Mapping[str, Any]) -> Any:
    """What one aggregated round costs a user under the run config's ``dp`` mode
    (an :class:`agents.accountant.Mechanism`)."""
    from agents.accountant import gaussian, unbounded

    if cfg["dp"] == "none":
        return unbounded("federated round without user-level DP")
    return gaussian(float(cfg["noise-multiplier"]), f"federated round ({cfg['dp']})")


class RoundAccountant:
    """Per-user accountant of a federated run, keyed by node id (see the module doc).

    Args:
        num_nodes: the federation's size (one user per node).
        cfg: the run config (``dp``, ``noise-multiplier``; ``dp-delta`` if present).
    """

    def __init__(self, num_nodes: int, cfg: Mapping[str, Any]) -> None:
        from agents.accountant import UserAccountant

        self.mechanism = round_mechanism(cfg)
        self.delta = float(cfg.get("dp-delta", 1e-5))
        self.accountant = UserAccountant(num_nodes, delta=self.delta)
        q = float(cfg.get("fraction-train", 1.0))
        uniform = int(cfg.get("clients-per-round", 0)) == 0 and q < 1
        noisy = self.mechanism.kind == "gaussian"
        self.sample_rate = q if uniform and noisy else None
        self.index: dict[int, int] = {}
        self.per_round: list[float] = []

    def _users(self, nodes: Sequence[int]) -> list[int]:
        for n in nodes:
            if n not in self.index:
                self.index[n] = len(self.index) % self.accountant.n_users
        return [self.index[n] for n in nodes]

    def hook(self, _r: int, _start: Any, updates: Sequence[Any], _new: Any) -> dict[str, float]:
        """A round hook (``train_round``): charge every user whose update was aggregated."""
        users = self._users([int(u.node_id) for u in updates])
        if users:
            self.accountant.charge(users, self.mechanism)
        self.per_round.append(float(self.accountant.epsilons().max()))
        return {"epsilon-user-max": self.per_round[-1]}

    def summary(self) -> dict[str, Any]:
        """The accountant's record (``epsilon_max``, median, RDP cross-check, delta, uses),
        plus ``epsilon_amplified`` under uniform cohort sampling (see the module doc)."""
        out = {**self.accountant.summary(), "unit": "user", "amplification": "none"}
        if self.sample_rate is not None and self.per_round:
            from agents.privacy import epsilon

            z, rounds = self.mechanism.param, len(self.per_round)
            out["amplification"] = f"uniform cohort, q = {self.sample_rate:g} (Poisson RDP)"
            out["epsilon_amplified"] = epsilon(z, self.sample_rate, rounds, self.delta)
        return out
