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
from collections.abc import Sequence

import numpy as np

from .._validation import AuctionError
from .base import BaseBidder, as_values
from .learner import outcome_arrays
from .streams import SeedLike
from .throttle import Throttle


def pacing_step(
    multiplier: np.ndarray | float, gap: np.ndarray | float, step_size: float, cap: float
) -> np.ndarray:
    """One projected dual step ``clip(mu - step_size x gap, 0, cap)``; ``gap = target - paid``."""
    return np.clip(np.asarray(multiplier) - step_size * np.asarray(gap), 0.0, cap)


def _check_pacing(budget: float, horizon: int, step_size: float | None, cap: float) -> float:
    """Validate the pacing arguments; return the step size (default ``1 / (rho sqrt(T))``)."""
    if not (math.isfinite(budget) and budget > 0):
        raise AuctionError(f"budget must be finite and > 0 for pacing, got {budget}")
    if int(horizon) != horizon or horizon < 1:
        raise AuctionError(f"horizon must be an integer >= 1 (auctions), got {horizon}")
    if step_size is None:
        step_size = 1.0 / (budget / horizon * math.sqrt(horizon))
    if not (math.isfinite(step_size) and step_size > 0):
        raise AuctionError(f"step_size must be finite and > 0, got {step_size}")
    if not cap > 0:
        raise AuctionError(f"max_multiplier must be > 0, got {cap}")
    return float(step_size)


class PacingBidder(BaseBidder):
    """Multiplicative budget pacing: bid ``value / (1 + mu)``, ``mu`` tracks the spend rate.

    Args:
        budget: total budget for the run, finite and > 0.
        horizon: number of auctions the budget must last, >= 1.
        step_size: dual step per unit of money; default ``1 / (rho sqrt(horizon))`` with
            ``rho = budget / horizon``, the ``T^(-1/2)`` rate of the paper in money units.
        max_multiplier: upper end of ``mu``'s range (the paper's ``mu_bar``); default no cap.
        throttle: budget pacing shared by every strategy (see ``BaseBidder``): its per-batch
            cap bounds the spend while ``mu`` is still learning; the step then covers the
            auctions entered.

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
        throttle: Throttle | None = None,
    ) -> None:
        self.step_size = _check_pacing(budget, horizon, step_size, max_multiplier)
        super().__init__(budget, throttle=throttle)
        self.target_rate = budget / horizon
        self.max_multiplier = float(max_multiplier)
        self.multiplier = 0.0

    def _bids(self, values: np.ndarray) -> np.ndarray:
        return values / (1.0 + self.multiplier)

    def _learn(self, payments: np.ndarray, utilities: np.ndarray) -> None:
        gap = self.target_rate * payments.shape[0] - float(payments.sum())
        step = pacing_step(self.multiplier, gap, self.step_size, self.max_multiplier)
        self.multiplier = float(step)


class PacingLearner:
    """Adaptive pacing (the rule of ``PacingBidder``) batched over ``R`` repetitions.

    Each repetition has its own multiplier ``mu`` and budget; the bid is
    ``min(value / (1 + mu), remaining budget)`` and after each auction
    ``mu <- clip(mu - step_size x (rho - paid), 0, max_multiplier)``.

    Args:
        seeds: one entry per repetition (only their number is used: pacing is deterministic).
        budget: budget per repetition for the whole run, finite and > 0.
        horizon: auctions (rounds) the budget must last, >= 1.
        step_size, max_multiplier: as in ``PacingBidder``.

    Example:
        >>> p = PacingLearner([0, 1], budget=1.0, horizon=10)
        >>> p.bid(np.array([2.0, 0.5])).tolist()
        [1.0, 0.5]
    """

    def __init__(
        self,
        seeds: Sequence[SeedLike],
        *,
        budget: float,
        horizon: int,
        step_size: float | None = None,
        max_multiplier: float = math.inf,
    ) -> None:
        self.step_size = _check_pacing(budget, horizon, step_size, max_multiplier)
        self.repetitions = len(seeds)
        self.budget = float(budget)
        self.target_rate = budget / horizon
        self.max_multiplier = float(max_multiplier)
        self.multiplier = np.zeros(self.repetitions)
        self.spent = np.zeros(self.repetitions)

    def bid(self, values: np.ndarray) -> np.ndarray:
        """(R,) bids ``min(value / (1 + mu), remaining)``."""
        v = as_values(values)
        if v.shape != (self.repetitions,):
            raise AuctionError(f"values must have shape ({self.repetitions},), got {v.shape}")
        return np.minimum(v / (1.0 + self.multiplier), self.budget - self.spent)

    def update(self, *, won: np.ndarray, payments: np.ndarray, clicks: np.ndarray) -> None:
        """Charge the (R,) payments and take one dual step per repetition."""
        _, paid, _ = outcome_arrays(self.repetitions, won, payments, clicks)
        self.spent += paid
        self.multiplier = pacing_step(
            self.multiplier, self.target_rate - paid, self.step_size, self.max_multiplier
        )
