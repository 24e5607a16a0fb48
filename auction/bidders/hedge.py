"""Hedge over bid multipliers, falling back to EXP3 where only the own outcome is seen.

Freund, Y. and Schapire, R. E. (1997), "A decision-theoretic generalization of on-line learning
and an application to boosting", JCSS 55(1) (Hedge / multiplicative weights); Auer et al.
(2002) for EXP3. Both keep cumulative loss scores ``S`` (R, K) over the multipliers and play

    p = (1 - gamma) softmax(eta S) + gamma / K

with the loss ``l = 1 - r`` of reward ``r = (clip(u / reward_scale, -1, 1) + 1) / 2``. Where the
auctioneer reveals every multiplier's utility (full information) every score moves,
``S -= l``; where it reveals only the own outcome, the arm played moves by the importance-
weighted estimate ``S_k -= l_k / p_k`` (EXP3's loss-based estimator). Kolumbus and Nisan (2022)
study exactly these no-regret agents in repeated auctions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .bandit import DEFAULT_FACTORS, check_rates, exp3_probabilities, utility_loss
from .learner import GridLearner, sample
from .streams import SeedLike


class HedgeLearner(GridLearner):
    """Hedge (full information) / EXP3 (own outcome only) over bid multipliers, per repetition.

    Args:
        seeds: one ``SeedSequence`` (or int) per repetition.
        grid: (K,) bid multipliers, >= 0; default 0.2, 0.3, ..., 1.4.
        learning_rate: ``eta`` > 0.
        exploration: ``gamma`` in [0, 1), uniform share of the arm distribution.
        reward_scale: utility (money) that maps to reward 1, e.g. the largest value.
        full_information: False ignores revealed counterfactuals (plain EXP3).

    Example:
        >>> h = HedgeLearner([0, 1], grid=[0.5, 1.0])
        >>> h.policy().tolist()
        [[0.5, 0.5], [0.5, 0.5]]
    """

    def __init__(
        self,
        seeds: Sequence[SeedLike],
        *,
        grid: object = DEFAULT_FACTORS,
        learning_rate: float = 0.1,
        exploration: float = 0.05,
        reward_scale: float = 1.0,
        full_information: bool = True,
    ) -> None:
        super().__init__(seeds, grid, draws=1)
        check_rates(learning_rate, exploration, reward_scale)
        self.learning_rate = float(learning_rate)
        self.exploration = float(exploration)
        self.reward_scale = float(reward_scale)
        self.full_information = bool(full_information)
        self.scores = np.zeros((self.repetitions, self.grid.size))
        self._played_with = self.policy()

    def policy(self) -> np.ndarray:
        """(R, K) probability of each multiplier in the next round."""
        return exp3_probabilities(self.scores, self.learning_rate, self.exploration)

    def _choose(self, uniforms: np.ndarray) -> np.ndarray:
        self._played_with = self.policy()
        return sample(self._played_with, uniforms[:, 0])

    def _learn(self, utility: np.ndarray, counterfactual: np.ndarray | None) -> None:
        rows = np.arange(self.repetitions)
        known = np.zeros(rows.size, dtype=bool)
        if counterfactual is not None and self.full_information:
            known = np.isfinite(counterfactual).all(axis=1)
            self.scores[known] -= utility_loss(counterfactual[known], self.reward_scale)
        r, a = rows[~known], self.arms[~known]
        loss = utility_loss(utility[~known], self.reward_scale)
        self.scores[r, a] -= loss / self._played_with[r, a]


def hedge_rate(arms: int, rounds: int) -> float:
    """Hedge's worst-case learning rate ``sqrt(8 ln K / T)`` for losses in [0, 1].

    Example:
        >>> round(hedge_rate(2, 8 * 1000), 4) == round(math.sqrt(math.log(2) / 1000), 4)
        True
    """
    return math.sqrt(8.0 * math.log(max(arms, 2)) / max(rounds, 1))
