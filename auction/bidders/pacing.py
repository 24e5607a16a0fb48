"""Budget pacing by a dual multiplier: adaptive pacing (Balseiro & Gur, 2019).

Balseiro, S. R. and Gur, Y. (2019), "Learning in repeated auctions with budgets: regret
minimization and equilibrium", Management Science 65(9). With budget ``B`` over ``T``
auctions the target spend rate is ``rho = B / T``; the bidder bids ``v / (1 + mu)`` and moves
the multiplier by a projected (sub)gradient step on the dual of the budget constraint,

    mu <- clip(mu - step_size x (rho - z), 0, max_multiplier)

where ``z`` is what it paid: spending above the target rate raises ``mu`` and shades harder.
"""

from __future__ import annotations

import math

import numpy as np

from .._validation import AuctionError
from .base import BaseBidder


class PacingBidder(BaseBidder):
    """Multiplicative budget pacing: bid ``value / (1 + mu)``, ``mu`` tracks the spend rate.

    Args:
        budget: total budget for the run, finite and > 0.
        horizon: number of auctions the budget must last, >= 1.
        step_size: dual step per unit of money; default ``1 / (rho sqrt(horizon))`` with
            ``rho = budget / horizon``, the ``T^(-1/2)`` rate of the paper in money units.
        max_multiplier: upper end of ``mu``'s range (the paper's ``mu_bar``); default no cap.

    A batch of ``m`` auctions is bid with one ``mu`` and updated with the summed step
    ``step_size x (m rho - sum z)``, which for ``m = 1`` is the paper's rule.

    Example:
        >>> p = PacingBidder(budget=10.0, horizon=100)
        >>> p.bid(np.array([2.0])).tolist()
        [2.0]
    """

    def __init__(
        self,
        budget: float,
        horizon: int,
        *,
        step_size: float | None = None,
        max_multiplier: float = math.inf,
    ) -> None:
        if not (math.isfinite(budget) and budget > 0):
            raise AuctionError(f"budget must be finite and > 0 for pacing, got {budget}")
        if int(horizon) != horizon or horizon < 1:
            raise AuctionError(f"horizon must be an integer >= 1 (auctions), got {horizon}")
        super().__init__(budget)
        self.target_rate = budget / horizon
        if step_size is None:
            step_size = 1.0 / (self.target_rate * math.sqrt(horizon))
        if not (math.isfinite(step_size) and step_size > 0):
            raise AuctionError(f"step_size must be finite and > 0, got {step_size}")
        if not max_multiplier > 0:
            raise AuctionError(f"max_multiplier must be > 0, got {max_multiplier}")
        self.step_size = float(step_size)
        self.max_multiplier = float(max_multiplier)
        self.multiplier = 0.0

    def _bids(self, values: np.ndarray) -> np.ndarray:
        return values / (1.0 + self.multiplier)

    def _learn(self, payments: np.ndarray, utilities: np.ndarray) -> None:
        gap = self.target_rate * payments.shape[0] - float(payments.sum())
        self.multiplier = min(max(self.multiplier - self.step_size * gap, 0.0), self.max_multiplier)
