"""A bidder whose bid comes from any callable: the seat for a language-model advertiser.

Issue 17, item 4: the arena should accept an agent that is prompted with its value, budget and
feedback and answers with a bid. ``PolicyLearner`` is that seat without tying it to a model:
each round and repetition it hands a ``BidContext`` to ``policy(context) -> bid`` and plays
the returned per-click bid (capped at the budget left). A language-model policy renders the
context into its prompt and parses a number from the answer; a rule, a human or a test stub
fits the same signature. The policy sees only what the auctioneer revealed: the feedback
fields are NaN where the arena's policy hides them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .._validation import AuctionError
from .base import as_values
from .learner import Feedback, outcome_arrays
from .streams import SeedLike


@dataclass(frozen=True)
class Round:
    """One past round as the bidder saw it (per-click money units).

    Attributes:
        bid: what it bid; won: whether it got a slot; paid: its payment (price x clicks);
        price: the revealed top-slot price, NaN if not revealed; min_bid: the revealed
        lowest bid that would have won, NaN if not revealed.
    """

    bid: float
    won: bool
    paid: float
    price: float
    min_bid: float


@dataclass(frozen=True)
class BidContext:
    """What the bidder knows before bidding in one repetition.

    Attributes:
        value: per-click value its user told it.
        round: rounds played so far (0 before the first).
        budget_left: money left (``math.inf`` without a budget).
        history: the last ``memory`` rounds, oldest first.
    """

    value: float
    round: int
    budget_left: float
    history: tuple[Round, ...]


Policy = Callable[[BidContext], float]


class PolicyLearner:
    """Bids ``policy(context)`` in each of ``R`` repetitions; remembers what it saw.

    Args:
        seeds: one entry per repetition (only their number is used: draws belong to the
            policy, which should be deterministic in its context for batched == sequential).
        policy: ``policy(BidContext) -> per-click bid``, finite and >= 0.
        budget: budget per repetition for the whole run (> 0; ``math.inf``: none).
        memory: past rounds kept in ``BidContext.history`` (>= 0).

    Raises:
        AuctionError: bad arguments, or a policy answer that is not a finite number >= 0.

    Example:
        >>> half = PolicyLearner([0, 1], policy=lambda c: c.value / 2)
        >>> half.bid(np.array([1.0, 3.0])).tolist()
        [0.5, 1.5]
    """

    def __init__(
        self,
        seeds: Sequence[SeedLike],
        *,
        policy: Policy,
        budget: float = math.inf,
        memory: int = 10,
    ) -> None:
        if not callable(policy):
            raise AuctionError(f"policy must be callable(BidContext) -> bid, got {policy!r}")
        if math.isnan(budget) or budget <= 0:
            raise AuctionError(f"budget must be > 0 (math.inf for none), got {budget}")
        if int(memory) != memory or memory < 0:
            raise AuctionError(f"memory must be an integer >= 0 (rounds), got {memory!r}")
        self.repetitions = len(seeds)
        self.policy = policy
        self.memory = int(memory)
        self.spent = np.zeros(self.repetitions)
        self.budget = float(budget)
        self.history: list[tuple[Round, ...]] = [() for _ in range(self.repetitions)]
        self.rounds = 0
        self._bids = np.zeros(self.repetitions)

    def bid(self, values: np.ndarray) -> np.ndarray:
        """(R,) per-click bids: the policy's answer per repetition, capped at the budget left."""
        v = as_values(values)
        if v.shape != (self.repetitions,):
            raise AuctionError(f"values must have shape ({self.repetitions},), got {v.shape}")
        left = self.budget - self.spent
        answers = [
            self.policy(BidContext(float(v[r]), self.rounds, float(left[r]), self.history[r]))
            for r in range(self.repetitions)
        ]
        bids = np.asarray(answers, dtype=np.float64)
        if bids.shape != (self.repetitions,) or not np.isfinite(bids).all() or (bids < 0).any():
            raise AuctionError(f"policy must answer one finite bid >= 0 per call, got {answers}")
        self._bids = np.minimum(bids, left)
        return self._bids

    def update(
        self,
        *,
        won: np.ndarray,
        payments: np.ndarray,
        clicks: np.ndarray,
        feedback: Feedback | None = None,
    ) -> None:
        """Charge the (R,) payments and append the round (with what was revealed) to history."""
        got, paid, _ = outcome_arrays(self.repetitions, won, payments, clicks)
        self.spent += paid
        nan = np.full(self.repetitions, np.nan)
        price = nan if feedback is None else np.asarray(feedback.price, dtype=np.float64)
        min_bid = nan if feedback is None else np.asarray(feedback.min_bid, dtype=np.float64)
        for r in range(self.repetitions):
            seen = Round(
                float(self._bids[r]),
                bool(got[r]),
                float(paid[r]),
                float(price[r]),
                float(min_bid[r]),
            )
            self.history[r] = (*self.history[r], seen)[-self.memory :] if self.memory else ()
        self.rounds += 1
