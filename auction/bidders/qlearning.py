"""Q-learning over a bid grid, as in Banchio and Skrzypacz (2022), batched over repetitions.

Banchio, M. and Skrzypacz, A. (2022), "Artificial Intelligence and Auction Design", EC '22
(arXiv:2202.05947). Each bidder keeps a table ``Q[s, a]`` over states ``s`` (its own last bid,
or "none" before the first round; or a single state) and actions ``a`` (a bid on a grid). It
plays epsilon-greedy with exploration decaying as ``eps_t = exp(-beta t)`` and updates

    Q[s, a] <- (1 - alpha) Q[s, a] + alpha (u + gamma max_a' Q[s', a'])     (asynchronous)

with ``s'`` the state the action leads to (its own bid ``a`` when the state is the last bid).
When the auctioneer reveals enough to know what every bid would have earned (e.g. the minimum
bid to win), the learner updates every action of the state at once (synchronous updating):
``Q[s, a] <- (1 - alpha) Q[s, a] + alpha (u_a + gamma max Q[s'_a, .])`` for all ``a``.
Greedy ties are broken uniformly at random.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .._validation import AuctionError
from .learner import GridLearner, argmax_random
from .streams import SeedLike

# Bids 0, 0.05, ..., 1 times the value: a 21-point grid like the paper's, value normalised to 1.
PAPER_GRID = np.round(np.linspace(0.0, 1.0, 21), 10)


class QLearner(GridLearner):
    """Epsilon-greedy Q-learning over ``grid x value`` bids, one table per repetition.

    Args:
        seeds: one ``SeedSequence`` (or int) per repetition.
        grid: (K,) bid multipliers (bid = multiplier x value); default 0, 0.05, ..., 1.
        learning_rate: ``alpha`` in (0, 1].
        discount: ``gamma`` in [0, 1).
        decay: ``beta`` >= 0 of ``eps_t = exp(-beta t)``, t = rounds learned so far.
        stateful: True: state = own last bid (K + 1 states with the initial "none");
            False: one state (a stateless learner).
        initial_q: starting value of every entry (finite; in money units).

    Example:
        >>> q = QLearner([0, 1], decay=1.0)
        >>> q.bid(np.array([1.0, 1.0])).shape, q.table.shape
        ((2,), (2, 22, 21))
    """

    def __init__(
        self,
        seeds: Sequence[SeedLike],
        *,
        grid: object = PAPER_GRID,
        learning_rate: float = 0.05,
        discount: float = 0.95,
        decay: float = 2e-5,
        stateful: bool = True,
        initial_q: float = 0.0,
    ) -> None:
        super().__init__(seeds, grid, draws=2 + np.asarray(grid).size)
        if not (math.isfinite(learning_rate) and 0 < learning_rate <= 1):
            raise AuctionError(f"learning_rate must be in (0, 1], got {learning_rate}")
        if not (math.isfinite(discount) and 0 <= discount < 1):
            raise AuctionError(f"discount must be in [0, 1), got {discount}")
        if not (math.isfinite(decay) and decay >= 0):
            raise AuctionError(f"decay must be finite and >= 0, got {decay}")
        if not math.isfinite(initial_q):
            raise AuctionError(f"initial_q must be finite, got {initial_q}")
        self.learning_rate = float(learning_rate)
        self.discount = float(discount)
        self.decay = float(decay)
        self.stateful = bool(stateful)
        k = self.grid.size
        states = k + 1 if stateful else 1
        self.table = np.full((self.repetitions, states, k), float(initial_q))
        # The initial "none" state is the last row; a stateless learner has only that row.
        self.state = np.full(self.repetitions, states - 1, dtype=np.intp)
        self._rows = np.arange(self.repetitions)

    @property
    def exploration(self) -> float:
        """Current ``eps_t = exp(-beta t)``, the probability of a uniformly random bid."""
        return math.exp(-self.decay * self.rounds)

    def policy(self) -> np.ndarray:
        """(R, K) greedy policy in the current state (ties share the mass)."""
        q = self.table[self._rows, self.state]
        best = (q == q.max(axis=1, keepdims=True)).astype(np.float64)
        return best / best.sum(axis=1, keepdims=True)

    def _choose(self, uniforms: np.ndarray) -> np.ndarray:
        k = self.grid.size
        greedy = argmax_random(self.table[self._rows, self.state], uniforms[:, 2:])
        explore = uniforms[:, 0] < self.exploration
        return np.where(explore, np.minimum((uniforms[:, 1] * k).astype(np.intp), k - 1), greedy)

    def _next_value(self) -> np.ndarray:
        """(R, K) ``max_a' Q[s'_a, a']`` for the state each action leads to."""
        if self.stateful:
            return self.table[:, :-1, :].max(axis=2)
        best = self.table[:, 0, :].max(axis=1, keepdims=True)
        return np.broadcast_to(best, (self.repetitions, self.grid.size))

    def _learn(self, utility: np.ndarray, counterfactual: np.ndarray | None) -> None:
        rows, s, a = self._rows, self.state, self.arms
        ahead = self._next_value()
        alpha = self.learning_rate
        known = np.zeros(rows.size, dtype=bool)
        if counterfactual is not None:
            known = np.isfinite(counterfactual).all(axis=1)
            r = rows[known]
            targets = counterfactual[known] + self.discount * ahead[known]
            self.table[r, s[known]] += alpha * (targets - self.table[r, s[known]])
        r, sa, aa = rows[~known], s[~known], a[~known]
        target = utility[~known] + self.discount * ahead[r, aa]
        self.table[r, sa, aa] += alpha * (target - self.table[r, sa, aa])
        if self.stateful:
            self.state = a.copy()
