"""A Flower strategy wrapper that values each round's updates and pays tokens into the ledger.

Wraps any Message-API strategy: ``configure_train`` remembers the global arrays ``w_t``;
``aggregate_train`` turns each reply into an update ``delta_i = w_i - w_t``, values the clients
with GTG-Shapley on ``u(S) = evaluate(w_t + weighted mean of delta_S)`` (sub-models rebuilt,
never retrained), pays them with the reward policy out of ``revenue_share x revenue(round)``,
records every payment in the ledger (account ``node-<id>``), then lets the wrapped strategy
aggregate. Imports Flower only when this module is imported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .ledger import Ledger
from .rewards import RewardPolicy
from .shapley import ValuationResult, valuate
from .utility import fl_utility


class ValuedStrategy:
    """Value, pay and record each round's contributions around a Flower strategy.

    Args:
        strategy: a ``flwr.serverapp.strategy`` strategy.
        evaluate: validation metric of a parameter dict (higher is better).
        ledger: where rewards are recorded.
        policy: reward policy (budget share, concavity, floor, price).
        revenue: ``revenue(server_round) -> float``, the auction revenue funding the round.
        method: valuation method (default ``"gtg"``); ``options`` go to ``valuate``.
    """

    def __init__(
        self,
        strategy: Any,
        evaluate: Callable[[dict[str, np.ndarray]], float],
        ledger: Ledger,
        policy: RewardPolicy,
        revenue: Callable[[int], float],
        *,
        method: str = "gtg",
        seed: int = 0,
        **options: Any,
    ) -> None:
        self.strategy, self.evaluate, self.ledger, self.policy = strategy, evaluate, ledger, policy
        self.revenue, self.method, self.seed, self.options = revenue, method, seed, options
        self._global: dict[str, np.ndarray] | None = None
        self.history: list[tuple[int, list[int], ValuationResult, np.ndarray]] = []

    def configure_train(self, server_round: int, arrays: Any, config: Any, grid: Any) -> Any:
        self._global = {k: a.numpy() for k, a in arrays.items()}
        return self.strategy.configure_train(server_round, arrays, config, grid)

    def aggregate_train(self, server_round: int, replies: Iterable[Any]) -> Any:
        replies = list(replies)
        ok = [r for r in replies if r.has_content()]
        if ok and self._global is not None:
            self._pay(server_round, ok)
        return self.strategy.aggregate_train(server_round, replies)

    def _pay(self, server_round: int, replies: list[Any]) -> None:
        nodes = [int(r.metadata.src_node_id) for r in replies]
        updates = [
            {k: a.numpy() - self._global[k] for k, a in r.content["arrays"].items()}
            for r in replies
        ]
        weights = [float(r.content["metrics"]["num-examples"]) for r in replies]
        utility = fl_utility(self._global, updates, weights, self.evaluate)
        result = valuate(
            utility, len(nodes), method=self.method, rng=[self.seed, server_round], **self.options
        )
        rewards = self.policy.pay(result.values, float(self.revenue(server_round)))
        for node, reward in zip(nodes, rewards, strict=True):
            if reward * 1e6 >= 1:  # below one micro-token nothing is recorded
                self.ledger.mint(
                    f"node-{node}",
                    float(reward),
                    round=server_round,
                    memo=f"{self.method} contribution",
                )
        self.history.append((server_round, nodes, result, rewards))

    def start(self, *args: Any, **kwargs: Any) -> Any:
        """Flower's round loop, driving this wrapper's configure/aggregate methods."""
        from flwr.serverapp.strategy import Strategy

        return Strategy.start(self, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # everything else is the wrapped strategy's
        return getattr(self.strategy, name)
