"""A learning bidder: EXP3 over a grid of shading factors, rewarded by realised utility.

Auer, P., Cesa-Bianchi, N., Freund, Y. and Schapire, R. E. (2002), "The nonstochastic
multiarmed bandit problem", SIAM J. Computing 32(1). We use the loss-based estimator
(Lattimore & Szepesvari, *Bandit Algorithms*, 2020, ch. 11), which has lower variance when
rewards are near 1, plus uniform exploration ``gamma``:

    p = (1 - gamma) softmax(eta S) + gamma / K,     S_k -= (1 - r) / p_k  for the arm played,

with the reward ``r = (clip(utility / reward_scale, -1, 1) + 1) / 2`` in [0, 1].
"""

from __future__ import annotations

import math

import numpy as np

from .._validation import AuctionError, as_rng
from .base import BaseBidder
from .throttle import Throttle

DEFAULT_FACTORS = np.round(np.linspace(0.2, 1.4, 13), 10)


def exp3_probabilities(scores: np.ndarray, learning_rate: float, exploration: float) -> np.ndarray:
    """``(1 - gamma) softmax(eta S) + gamma / K`` over the last axis of (..., K) scores."""
    z = learning_rate * (scores - scores.max(axis=-1, keepdims=True))
    w = np.exp(z)
    return (1 - exploration) * w / w.sum(axis=-1, keepdims=True) + exploration / w.shape[-1]


def utility_loss(utilities: np.ndarray, reward_scale: float) -> np.ndarray:
    """Loss ``1 - r`` in [0, 1] of reward ``r = (clip(u / reward_scale, -1, 1) + 1) / 2``."""
    return (1.0 - np.clip(utilities / reward_scale, -1.0, 1.0)) / 2.0


def check_rates(learning_rate: float, exploration: float, reward_scale: float) -> None:
    """Raise ``AuctionError`` unless ``eta`` > 0, ``gamma`` in [0, 1) and the scale > 0."""
    if not (math.isfinite(learning_rate) and learning_rate > 0):
        raise AuctionError(f"learning_rate must be finite and > 0, got {learning_rate}")
    if not 0 <= exploration < 1:
        raise AuctionError(f"exploration must be in [0, 1), got {exploration}")
    if not (math.isfinite(reward_scale) and reward_scale > 0):
        raise AuctionError(f"reward_scale must be finite and > 0, got {reward_scale}")


class Exp3Bidder(BaseBidder):
    """Draws a shading factor per auction with EXP3 and bids ``factor x value``.

    Args:
        factors: (K,) candidate shading factors, > 0; default 0.2, 0.3, ..., 1.4.
        learning_rate: ``eta`` > 0.
        exploration: ``gamma`` in [0, 1), the uniform share of the arm distribution.
        reward_scale: utility that maps to reward 1 (e.g. the largest value per click).
        budget: total budget, ``math.inf`` for none.
        rng: seed or Generator for the arm draws.
        throttle: budget pacing (see ``BaseBidder``); it learns from the auctions it entered.

    Every auction of a batch draws its own arm from the same distribution; the batch then
    updates the estimates at once (delayed feedback).

    Example:
        >>> b = Exp3Bidder(rng=0)
        >>> b.probabilities.round(3).tolist() == [round(1 / 13, 3)] * 13
        True
    """

    def __init__(
        self,
        factors: np.ndarray = DEFAULT_FACTORS,
        *,
        learning_rate: float = 0.01,
        exploration: float = 0.05,
        reward_scale: float = 1.0,
        budget: float = math.inf,
        rng: np.random.Generator | int | np.random.SeedSequence | None = None,
        throttle: Throttle | None = None,
    ) -> None:
        f = np.asarray(factors, dtype=np.float64)
        if f.ndim != 1 or f.size == 0 or not np.isfinite(f).all() or (f <= 0).any():
            raise AuctionError("factors must be a non-empty 1-D array of finite values > 0")
        check_rates(learning_rate, exploration, reward_scale)
        super().__init__(budget, throttle=throttle)
        self.factors = f
        self.learning_rate = float(learning_rate)
        self.exploration = float(exploration)
        self.reward_scale = float(reward_scale)
        self._scores = np.zeros(f.size)
        self._rng = as_rng(rng)
        self._arms = np.empty(0, dtype=np.intp)
        self._played_with = self.probabilities

    @property
    def probabilities(self) -> np.ndarray:
        """(K,) current probability of each shading factor."""
        return exp3_probabilities(self._scores, self.learning_rate, self.exploration)

    @property
    def mean_factor(self) -> float:
        """Expected shading factor under the current distribution."""
        return float(self.probabilities @ self.factors)

    def _bids(self, values: np.ndarray) -> np.ndarray:
        self._played_with = self.probabilities
        self._arms = self._rng.choice(self.factors.size, size=values.size, p=self._played_with)
        return self.factors[self._arms] * values

    def _learn(self, payments: np.ndarray, utilities: np.ndarray) -> None:
        losses = utility_loss(utilities, self.reward_scale) / self._played_with[self._arms]
        self._scores -= np.bincount(self._arms, weights=losses, minlength=self.factors.size)
