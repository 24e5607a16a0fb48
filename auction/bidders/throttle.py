"""Budget pacing by probabilistic throttling, shared by every bidder kind.

A budget ``B`` meant to last ``T`` auctions has the per-auction share ``rho = B / T``. Before a
batch of ``m`` auctions the throttle

1. enters each auction independently with probability ``p`` (the bidder bids 0 in the others,
   so the bids it does place keep their strategy: a truthful bidder stays truthful);
2. allows the batch at most ``min(remaining, burst x rho x m)``: the hard cap that no
   advertiser spends more than ``burst`` times its share in a batch (the settlement makes a
   bidder leave the batch when its charges would exceed this).

After the batch it aims at the share of what is left, ``target = remaining x m / auctions
left`` (an under-spent budget catches up, an over-spent one slows down), and sets ``p`` to
the rate that would have spent exactly that: spend scales with ``p``, so

    p <- min(1, p x target / spent)                (1 when nothing was spent).

Throttling versus multiplicative pacing: Balseiro, S. R., Kim, A., Mahdian, M. and
Mirrokni, V. (2017), "Budget management strategies in repeated auctions", WWW '17.
"""

from __future__ import annotations

import math

import numpy as np

from .._validation import AuctionError, as_rng


class Throttle:
    """Enter a share ``p`` of the auctions and never spend more than ``burst`` shares a batch.

    Args:
        budget: total budget for the run, finite and > 0.
        horizon: auctions the budget must last, integer >= 1.
        burst: most a batch of ``m`` auctions may spend, in per-auction shares x ``m``, >= 1;
            ``math.inf`` leaves only the budget itself as the limit.
        rng: seed or Generator of the participation draws.

    Example:
        >>> t = Throttle(budget=10.0, horizon=10, burst=2.0, rng=0)
        >>> entered, allowance = t.plan(5, remaining=10.0)
        >>> int(entered.sum()), allowance
        (5, 10.0)
        >>> t.observe(10.0)
        >>> t.participation  # spent twice the share of what was left: enter half as often
        0.5
    """

    def __init__(
        self,
        budget: float,
        horizon: int,
        *,
        burst: float = 2.0,
        rng: np.random.Generator | int | np.random.SeedSequence | None = None,
    ) -> None:
        if not (math.isfinite(budget) and budget > 0):
            raise AuctionError(f"budget must be finite and > 0 for throttling, got {budget}")
        if int(horizon) != horizon or horizon < 1:
            raise AuctionError(f"horizon must be an integer >= 1 (auctions), got {horizon}")
        if math.isnan(burst) or burst < 1:
            raise AuctionError(f"burst must be >= 1 (shares per batch; inf for none), got {burst}")
        self.share = float(budget) / int(horizon)
        self.horizon = int(horizon)
        self.burst = float(burst)
        self.participation = 1.0
        self.seen = 0  # auctions planned so far
        self._batch = 0
        self._remaining_before = float(budget)
        self._rng = as_rng(rng)

    def plan(self, m: int, remaining: float) -> tuple[np.ndarray, float]:
        """Which of the next ``m`` auctions to enter, (m,) bool, and the money they may cost.

        Args:
            m: auctions in the batch, >= 0.
            remaining: money left in the budget before the batch, >= 0.
        """
        self._batch, self._remaining_before = m, float(remaining)
        self.seen += m
        entered = self._rng.random(m) < self.participation
        return entered, min(remaining, self.burst * self.share * m)

    def observe(self, spent: float) -> None:
        """Set the participation for the next batch from ``spent`` (>= 0), the money charged
        for the batch last planned."""
        left = max(self.horizon - self.seen + self._batch, self._batch, 1)
        target = self._remaining_before * self._batch / left
        self.participation = 1.0 if spent <= 0 else min(1.0, self.participation * target / spent)
