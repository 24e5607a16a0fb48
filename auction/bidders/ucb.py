"""UCB1 over bid multipliers, batched over repetitions.

Auer, P., Cesa-Bianchi, N. and Fischer, P. (2002), "Finite-time analysis of the multiarmed
bandit problem", Machine Learning 47. Each repetition plays every multiplier once, then

    a_t = argmax_k  mean_k + c sqrt(2 ln t / n_k)

with ``mean_k`` the average reward ``r = (clip(u / reward_scale, -1, 1) + 1) / 2`` of arm ``k``
over its ``n_k`` plays. Where every arm's utility is revealed (full information) every arm's
mean and count are updated. Ties (the initial round-robin included) are broken at random.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .._validation import AuctionError
from .bandit import DEFAULT_FACTORS, utility_loss
from .learner import GridLearner, argmax_random
from .streams import SeedLike


class UCBLearner(GridLearner):
    """UCB1 bandit over bid multipliers, one set of arm statistics per repetition.

    Args:
        seeds: one ``SeedSequence`` (or int) per repetition.
        grid: (K,) bid multipliers, >= 0; default 0.2, 0.3, ..., 1.4.
        confidence: ``c`` >= 0, weight of the exploration bonus (1 is UCB1).
        reward_scale: utility (money) that maps to reward 1.
        full_information: False ignores revealed counterfactuals.

    Example:
        >>> u = UCBLearner([0], grid=[0.5, 1.0])
        >>> u.counts.tolist()
        [[0.0, 0.0]]
    """

    def __init__(
        self,
        seeds: Sequence[SeedLike],
        *,
        grid: object = DEFAULT_FACTORS,
        confidence: float = 1.0,
        reward_scale: float = 1.0,
        full_information: bool = False,
    ) -> None:
        super().__init__(seeds, grid, draws=np.asarray(grid).size)
        if not (math.isfinite(confidence) and confidence >= 0):
            raise AuctionError(f"confidence must be finite and >= 0, got {confidence}")
        if not (math.isfinite(reward_scale) and reward_scale > 0):
            raise AuctionError(f"reward_scale must be finite and > 0, got {reward_scale}")
        self.confidence = float(confidence)
        self.reward_scale = float(reward_scale)
        self.full_information = bool(full_information)
        self.counts = np.zeros((self.repetitions, self.grid.size))
        self.means = np.zeros((self.repetitions, self.grid.size))

    def _index(self) -> np.ndarray:
        """(R, K) UCB index; unplayed arms are +inf so each arm is tried once first."""
        t = max(self.rounds, 1)  # rounds played, the same in every repetition
        with np.errstate(divide="ignore", invalid="ignore"):  # unplayed arms: inf below
            bonus = self.confidence * np.sqrt(2.0 * math.log(t) / self.counts)
        return np.where(self.counts > 0, self.means + bonus, np.inf)

    def policy(self) -> np.ndarray:
        """(R, K) the arm(s) UCB would play next (ties share the mass)."""
        idx = self._index()
        best = (idx == idx.max(axis=1, keepdims=True)).astype(np.float64)
        return best / best.sum(axis=1, keepdims=True)

    def _choose(self, uniforms: np.ndarray) -> np.ndarray:
        return argmax_random(self._index(), uniforms)

    def _observe(self, rows: np.ndarray, arms: np.ndarray | slice, reward: np.ndarray) -> None:
        # rows (m,) with arms (m,) picks one arm per row; with a slice, every arm of each row.
        counts = self.counts[rows, arms] + 1.0
        self.means[rows, arms] += (reward - self.means[rows, arms]) / counts
        self.counts[rows, arms] = counts

    def _learn(self, utility: np.ndarray, counterfactual: np.ndarray | None) -> None:
        rows = np.arange(self.repetitions)
        known = np.zeros(rows.size, dtype=bool)
        if counterfactual is not None and self.full_information:
            known = np.isfinite(counterfactual).all(axis=1)
            reward = 1.0 - utility_loss(counterfactual[known], self.reward_scale)
            self._observe(rows[known], slice(None), reward)
        own = rows[~known]
        self._observe(own, self.arms[own], 1.0 - utility_loss(utility[own], self.reward_scale))
