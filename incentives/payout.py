"""Value one round's updates and pay their owners: the payment step of every federated round.

``RoundPayer.pay`` turns a round's updates ``delta_i = w_i - w_t`` into values with a
valuation method on ``u(S) = evaluate(w_t + weighted mean of delta_S)`` (sub-models rebuilt
from the updates, never retrained), into tokens with the reward policy out of
``revenue_share x revenue``, and records them in the ledger in one transaction. It knows
nothing of Flower: ``federation.rounds`` calls it as a round hook, and
``incentives.flower.ValuedStrategy`` around any Flower strategy.

Example:
    >>> import numpy as np
    >>> payer = RoundPayer(lambda p: -float(np.sum((p["w"] - 1.0) ** 2)), Ledger(":memory:"),
    ...                    RewardPolicy(revenue_share=0.5), method="exact")
    >>> paid = payer.pay(1, {"w": np.zeros(2)}, ["a", "b"],
    ...                  [{"w": np.ones(2)}, {"w": np.zeros(2)}], [1.0, 1.0], revenue=10.0)
    >>> bool(paid.tokens[0] > 0), float(paid.tokens[1])
    (True, 0.0)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._errors import IncentiveError
from .ledger import Ledger
from .rewards import RewardPolicy
from .shapley import METHODS, ValuationResult, valuate
from .utility import fl_utility


@dataclass(frozen=True)
class RoundPayment:
    """What one round paid: accounts, their valuation, and tokens (n,) in account order."""

    server_round: int
    accounts: list[str]
    valuation: ValuationResult
    tokens: np.ndarray


@dataclass
class RoundPayer:
    """Values updates and pays tokens into a ledger, round after round.

    Args:
        evaluate: validation metric of a parameter dict (name -> array), higher is better.
        ledger: where rewards are recorded.
        policy: reward policy (budget share, concavity, floor, price).
        method: valuation method (``incentives.METHODS``), ``"gtg"`` by default.
        seed: round r values with ``rng=[seed, r]``: the same seed gives the same payments.
        options: passed to ``incentives.valuate`` (e.g. ``stopping=MaxEvaluations(64)``).
    """

    evaluate: Callable[[dict[str, np.ndarray]], float]
    ledger: Ledger
    policy: RewardPolicy
    method: str = "gtg"
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    payments: list[RoundPayment] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise IncentiveError(f"method: unknown {self.method!r}; allowed: {', '.join(METHODS)}")

    def pay(
        self,
        server_round: int,
        start: Mapping[str, np.ndarray],
        accounts: Sequence[str],
        updates: Sequence[Mapping[str, np.ndarray]],
        weights: Sequence[float],
        revenue: float,
    ) -> RoundPayment:
        """Value ``updates`` (deltas from ``start``) weighted by ``weights``, pay ``accounts``.

        Raises:
            IncentiveError: lengths differ, or an update's names or shapes differ from
                ``start``'s.
        """
        if not len(accounts) == len(updates) == len(weights) >= 1:
            raise IncentiveError(
                f"accounts, updates and weights must have one entry per contributor, got "
                f"{len(accounts)}, {len(updates)}, {len(weights)}"
            )
        shapes = {k: np.shape(v) for k, v in start.items()}
        for u in updates:
            if {k: np.shape(v) for k, v in u.items()} != shapes:
                raise IncentiveError(f"an update's arrays must match the global ones: {shapes}")
        w_t = {k: np.asarray(v, dtype=float) for k, v in start.items()}
        deltas = [{k: np.asarray(v, dtype=float) for k, v in u.items()} for u in updates]
        options = dict(self.options)
        if self.method == "svarm-cv":  # its control variate models the weighted average
            options.setdefault("weights", list(weights))
        result = valuate(
            fl_utility(w_t, deltas, list(weights), self.evaluate),
            len(accounts),
            method=self.method,
            rng=[self.seed, server_round],
            **options,
        )
        tokens = self.policy.pay(result.values, float(revenue))
        self.ledger.record_rewards(
            {a: float(t) for a, t in zip(accounts, tokens, strict=True)},
            round=server_round,
            memo=f"{self.method} contribution",
        )
        paid = RoundPayment(server_round, list(accounts), result, tokens)
        self.payments.append(paid)
        return paid
