"""A Flower strategy wrapper that values each round's updates and pays tokens into the ledger.

``ValuedStrategy`` wraps any Message-API strategy (``flwr.serverapp.strategy``):
``configure_train`` remembers the global arrays ``w_t``; ``aggregate_train`` turns each reply
into an update ``delta_i = w_i - w_t``, values the clients with GTG-Shapley on
``u(S) = evaluate(w_t + weighted mean of delta_S)`` (sub-models rebuilt, never retrained), pays
them out of ``revenue_share x revenue(round)`` so that gaming does not pay (claims capped by
``assigned``, lengths ignored, copies grouped, per example: ``incentives.gaming``), records
the payments in the ledger in one transaction (account ``node-<id>``), then lets the wrapped
strategy aggregate. The round's tokens and utility evaluations are added to the train metrics.
Importing this module imports Flower; ``import incentives`` does not.

Example (inside a ServerApp's main)::

    strategy = ValuedStrategy(FedAvg(), evaluate=val_ndcg, ledger=Ledger(run / "ledger.db"),
                              policy=RewardPolicy(revenue_share=0.1), revenue=lambda r: 100.0)
    result = strategy.start(grid, ArrayRecord(arrays), num_rounds=3)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from ._errors import IncentiveError
from .ledger import Ledger
from .payout import RoundPayer, RoundPayment
from .rewards import RewardPolicy


def _arrays(content: RecordDict, key: str) -> dict[str, np.ndarray]:
    """The reply's ArrayRecord (under ``key``, or its only one) as float arrays."""
    records = content.array_records
    record = records.get(key) or (next(iter(records.values())) if len(records) == 1 else None)
    if record is None:
        raise IncentiveError(f"a train reply must carry one ArrayRecord (or {key!r}): {records}")
    return {name: np.asarray(a.numpy(), dtype=float) for name, a in record.items()}


def _update(sent: dict[str, np.ndarray], w_t: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``w_i - w_t``; the reply must carry the global model's arrays (names and shapes)."""
    if {k: v.shape for k, v in sent.items()} != {k: v.shape for k, v in w_t.items()}:
        raise IncentiveError(
            "a train reply's arrays must match the global model's names and shapes, got "
            f"{ {k: v.shape for k, v in sent.items()} }"
        )
    return {k: sent[k] - v for k, v in w_t.items()}


def _weight(content: RecordDict, key: str) -> float:
    """The reply's aggregation weight: ``key`` in its MetricRecord."""
    for record in content.metric_records.values():
        if key in record:
            return float(record[key])
    raise IncentiveError(f"a train reply must report {key!r} in a MetricRecord")


class ValuedStrategy(Strategy):
    """Value, pay and record each round's contributions around a Flower strategy.

    Args:
        strategy: the wrapped ``flwr.serverapp.strategy`` strategy (e.g. ``FedAvg``).
        evaluate: validation metric of a parameter dict (name -> array), higher is better.
        ledger: where rewards are recorded.
        policy: reward policy (budget share, concavity, floor, price).
        revenue: ``revenue(server_round) -> float``, the auction revenue funding the round.
        method: valuation method, ``"gtg"`` by default (see ``incentives.METHODS``).
        rng: seed of the valuation; round r uses ``[rng, r]`` (same seed, same payments).
        assigned: examples each node (by node id) was assigned: its ``num-examples`` claim
            counts at most that (a node not in it: 0); None trusts the claims.
        options: passed to ``incentives.valuate`` (e.g. ``stopping=MaxEvaluations(100)``).
    """

    def __init__(
        self,
        strategy: Strategy,
        evaluate: Callable[[dict[str, np.ndarray]], float],
        ledger: Ledger,
        policy: RewardPolicy,
        revenue: Callable[[int], float],
        *,
        method: str = "gtg",
        rng: int = 0,
        assigned: Mapping[int, float] | None = None,
        **options: Any,
    ) -> None:
        self.strategy, self.revenue, self.assigned = strategy, revenue, assigned
        self.payer = RoundPayer(evaluate, ledger, policy, method, rng, dict(options))
        self._global: dict[str, np.ndarray] | None = None

    def summary(self) -> None:
        self.strategy.summary()

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self._global = {k: np.asarray(a.numpy(), dtype=float) for k, a in arrays.items()}
        return self.strategy.configure_train(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        arrays, metrics = self.strategy.aggregate_train(server_round, replies)
        ok = [r for r in replies if r.has_content()]
        if arrays is not None and ok and self._global is not None:
            paid = self._pay(server_round, ok, self._global)
            metrics = metrics if metrics is not None else MetricRecord()
            metrics["incentives-tokens"] = float(paid.tokens.sum())
            metrics["incentives-evaluations"] = paid.valuation.n_evaluations
        return arrays, metrics

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        return self.strategy.configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        return self.strategy.aggregate_evaluate(server_round, replies)

    @property
    def payments(self) -> list[RoundPayment]:
        """Every round's payment so far (accounts ``node-<id>``)."""
        return self.payer.payments

    def _pay(
        self, server_round: int, replies: list[Message], w_t: dict[str, np.ndarray]
    ) -> RoundPayment:
        key = getattr(self.strategy, "arrayrecord_key", "arrays")
        weight_key = getattr(self.strategy, "weighted_by_key", "num-examples")
        # Node order, not arrival order: the same seed then gives the same payments.
        replies = sorted(replies, key=lambda r: int(r.metadata.src_node_id))
        accounts = [f"node-{int(r.metadata.src_node_id)}" for r in replies]
        updates = [_update(_arrays(r.content, key), w_t) for r in replies]
        weights = [_weight(r.content, weight_key) for r in replies]
        caps = None
        if self.assigned is not None:
            caps = [float(self.assigned.get(int(r.metadata.src_node_id), 0.0)) for r in replies]
        revenue = float(self.revenue(server_round))
        return self.payer.pay(server_round, w_t, accounts, updates, weights, revenue, caps)
