"""Value one round's updates and pay their owners: the payment step of every federated round.

``RoundPayer.pay`` caps each ``num-examples`` claim by what the node was assigned, groups
near-duplicate updates ``delta_i = w_i - w_t`` into one player, gives every player's update
one norm (set, or the round's median), values the players with a valuation method on
``u(S) = evaluate(w_t + weighted mean of delta_S)`` (sub-models rebuilt from the updates,
never retrained), and pays
the round's tokens (``RewardPolicy.round_total`` of the positive value, out of
``revenue_share x revenue``) per claimed example to the players of positive value, a group's
pay split among its members (:mod:`incentives.gaming`: why scaling, copying, splitting into
identities and lying about one's size do not pay). The payments go into the ledger in one
transaction. It knows nothing of Flower: ``federation.rounds`` calls it as a round hook, and
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
from .gaming import capped_claims, duplicate_groups, median_norm, normalised, per_example_shares
from .ledger import Ledger
from .rewards import RewardPolicy
from .shapley import METHODS, ValuationResult, valuate
from .utility import fl_utility


@dataclass(frozen=True)
class RoundPayment:
    """What one round paid: accounts, the valuation of its players (``groups``: the accounts
    of each player, by index; near-duplicates share one), and tokens (n,) in account order."""

    server_round: int
    accounts: list[str]
    valuation: ValuationResult
    tokens: np.ndarray
    groups: list[list[int]]


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
        duplicate_tolerance: updates closer than this x the round's median pairwise distance
            are one player (``incentives.gaming.duplicate_groups``), in [0, 1).
        norm: every player's update is valued at this L2 norm (e.g. the DP clipping norm);
            None: the round's median (``incentives.gaming.median_norm``).
    """

    evaluate: Callable[[dict[str, np.ndarray]], float]
    ledger: Ledger
    policy: RewardPolicy
    method: str = "gtg"
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    duplicate_tolerance: float = 0.1
    norm: float | None = None
    payments: list[RoundPayment] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise IncentiveError(f"method: unknown {self.method!r}; allowed: {', '.join(METHODS)}")
        if self.norm is not None and not 0 < self.norm < np.inf:
            raise IncentiveError(f"norm must be a finite number > 0 or None, got {self.norm}")
        if not 0 <= self.duplicate_tolerance < 1:
            raise IncentiveError(
                f"duplicate_tolerance must be in [0, 1), got {self.duplicate_tolerance}"
            )

    def pay(
        self,
        server_round: int,
        start: Mapping[str, np.ndarray],
        accounts: Sequence[str],
        updates: Sequence[Mapping[str, np.ndarray]],
        weights: Sequence[float],
        revenue: float,
        caps: Sequence[float] | None = None,
    ) -> RoundPayment:
        """Value ``updates`` (deltas from ``start``) weighted by ``weights`` (the claimed
        ``num-examples``), pay ``accounts`` (module doc).

        Args:
            caps: per account, the examples its node was assigned: a claim counts at most
                that (None: claims are trusted).

        Raises:
            IncentiveError: lengths differ, a claim is negative or not finite, or an update's
                names or shapes differ from ``start``'s.
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
        claims = capped_claims(weights, caps)
        directions = normalised(updates, 1.0)
        groups = duplicate_groups(directions, self.duplicate_tolerance)
        norm = median_norm(updates, groups) if self.norm is None else self.norm
        players = normalised(
            [{k: np.mean([directions[i][k] for i in g], axis=0) for k in w_t} for g in groups],
            norm,
        )
        player_claims = [float(claims[g].max()) for g in groups]
        options = dict(self.options)
        if self.method in ("svarm-cv", "auto"):  # its control variate models the weighted average
            options.setdefault("weights", player_claims)
        result = valuate(
            fl_utility(w_t, players, player_claims, self.evaluate),
            len(players),
            method=self.method,
            rng=[self.seed, server_round],
            **options,
        )
        gain = float(np.clip(result.values, 0, None).sum())
        total = self.policy.round_total(gain, float(revenue))
        tokens = total * per_example_shares(result.values, groups, claims)
        self.ledger.record_rewards(
            {a: float(t) for a, t in zip(accounts, tokens, strict=True)},
            round=server_round,
            memo=f"{result.method} contribution",
        )
        paid = RoundPayment(server_round, list(accounts), result, tokens, groups)
        self.payments.append(paid)
        return paid
