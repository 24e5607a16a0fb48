"""Learning bidders batched over independent repetitions: the interface and a grid base class.

A *learner* plays ``R`` independent repetitions of the same repeated auction at once: every
array it sees or returns has a leading repetition axis, and repetition ``r``'s state and random
numbers never mix with another's (so a batch of ``R`` equals ``R`` runs of one). The interface
is the one of ``auction.bidders.Bidder`` with ``m = R``:

    bid(values (R,)) -> (R,) per-click bids
    update(*, won (R,), payments (R,), clicks (R,), feedback: Feedback | None = None)

plus an optional ``feedback`` argument carrying what the auctioneer reveals (the harness
``auction.arena`` passes it only to learners whose ``update`` accepts it, so any object with
``bid``/``update`` -- a rule, a human, a language-model agent -- can take part).

Utilities are ``value x clicks - payment`` (``clicks``: the CTR of the slot won, in
expectation), the same as for the other bidders.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from .._validation import AuctionError
from .base import as_values
from .streams import SeedLike, Streams

Counterfactual = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Feedback:
    """What the auctioneer revealed to one bidder after a round, per repetition.

    Attributes:
        price: (R,) per-click price paid for the top slot, NaN where not revealed.
        min_bid: (R,) lowest per-click bid that would have won the top slot (the highest
            rival bid or the reserve), NaN where not revealed.
        counterfactual: ``f(bids (R, K)) -> (R, K)``, the expected utility each candidate
            per-click bid would have earned this round against the others' actual bids (a tie
            counts its win probability); NaN rows where the policy reveals too little to know.
            ``None`` when nothing is revealed in any repetition.
    """

    price: np.ndarray
    min_bid: np.ndarray
    counterfactual: Counterfactual | None = None


@runtime_checkable
class Learner(Protocol):
    """A bidder batched over ``R`` repetitions (see the module docstring)."""

    def bid(self, values: np.ndarray) -> np.ndarray:
        """(R,) per-click bids for (R,) per-click values."""
        ...

    def update(self, *, won: np.ndarray, payments: np.ndarray, clicks: np.ndarray) -> None:
        """Learn from the (R,) outcomes of the round last bid on."""
        ...


LearnerFactory = Callable[[Sequence[np.random.SeedSequence]], Learner]


def outcome_arrays(
    reps: int, won: object, payments: object, clicks: object
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check one round's feedback: three (R,) arrays, payments and clicks finite and >= 0."""
    arrays = [np.asarray(x, dtype=np.float64) for x in (won, payments, clicks)]
    if any(x.shape != (reps,) for x in arrays):
        raise AuctionError(
            f"won, payments and clicks must each have shape ({reps},) (one per repetition), "
            f"got {[x.shape for x in arrays]}"
        )
    if not np.isfinite(arrays).all() or (arrays[1] < 0).any() or (arrays[2] < 0).any():
        raise AuctionError("payments and clicks must be finite and >= 0")
    return arrays[0] > 0, arrays[1], arrays[2]


def as_grid(grid: object, name: str = "grid") -> np.ndarray:
    """A (K,) non-empty array of finite, distinct multipliers >= 0, sorted ascending."""
    g = np.asarray(grid, dtype=np.float64)
    if g.ndim != 1 or g.size == 0 or not np.isfinite(g).all() or (g < 0).any():
        raise AuctionError(f"{name} must be a non-empty 1-D array of finite values >= 0")
    if np.unique(g).size != g.size:
        raise AuctionError(f"{name} must not repeat a value")
    return np.sort(g)


class StaticLearner:
    """Bids ``factor x value`` in every repetition and never learns (a stationary rival).

    Example:
        >>> StaticLearner([1, 2], factor=0.5).bid(np.array([2.0, 4.0])).tolist()
        [1.0, 2.0]
    """

    def __init__(self, seeds: Sequence[SeedLike], *, factor: float = 1.0) -> None:
        if not (np.isfinite(factor) and factor >= 0):
            raise AuctionError(f"factor must be finite and >= 0, got {factor}")
        self.repetitions = len(seeds)
        self.factor = float(factor)

    def bid(self, values: np.ndarray) -> np.ndarray:
        """(R,) bids ``factor x values``."""
        return self.factor * as_values(values)

    def update(self, *, won: np.ndarray, payments: np.ndarray, clicks: np.ndarray) -> None:
        """Nothing to learn; the shapes are still checked."""
        outcome_arrays(self.repetitions, won, payments, clicks)


class GridLearner(ABC):
    """Base of the learners that bid ``grid[arm] x value`` with one arm per repetition.

    Subclasses choose arms from the round's uniforms (``_choose``) and learn from the realised
    utility of the arm played and, where revealed, every arm's counterfactual utility
    (``_learn``).

    Args:
        seeds: one ``SeedSequence`` (or int) per repetition; ``R = len(seeds)``.
        grid: (K,) bid multipliers (bid = multiplier x value), >= 0.
        draws: uniforms the subclass needs per repetition and round.
    """

    def __init__(self, seeds: Sequence[SeedLike], grid: object, draws: int) -> None:
        self.grid = as_grid(grid)
        self._streams = Streams(seeds, draws)
        self.repetitions = self._streams.repetitions
        self.arms = np.zeros(self.repetitions, dtype=np.intp)
        self._values = np.zeros(self.repetitions)
        self.rounds = 0

    def bid(self, values: np.ndarray) -> np.ndarray:
        """(R,) per-click bids ``grid[arm] x value`` for (R,) per-click values."""
        v = as_values(values)
        if v.shape != (self.repetitions,):
            raise AuctionError(f"values must have shape ({self.repetitions},), got {v.shape}")
        self._values = v
        self.arms = self._choose(self._streams.next())
        return self.grid[self.arms] * v

    def update(
        self,
        *,
        won: np.ndarray,
        payments: np.ndarray,
        clicks: np.ndarray,
        feedback: Feedback | None = None,
    ) -> None:
        """Learn from the round last bid on.

        Args:
            won: (R,) bool, got a slot.
            payments: (R,) float >= 0, amount charged (per-click price x clicks).
            clicks: (R,) float >= 0, expected clicks (slot CTR) of the slot won.
            feedback: what the auctioneer revealed (``Feedback``); ``None``: own outcome only.
        """
        _, paid, got = outcome_arrays(self.repetitions, won, payments, clicks)
        utility = self._values * got - paid
        counterfactual = None
        if feedback is not None and feedback.counterfactual is not None:
            counterfactual = np.asarray(
                feedback.counterfactual(self.grid[None, :] * self._values[:, None]),
                dtype=np.float64,
            )
            want = (self.repetitions, self.grid.size)
            if counterfactual.shape != want:
                raise AuctionError(
                    f"feedback.counterfactual must return shape {want}, got {counterfactual.shape}"
                )
        self._learn(utility, counterfactual)
        self.rounds += 1

    @property
    def mean_multiplier(self) -> np.ndarray:
        """(R,) expected bid multiplier of the current policy in each repetition."""
        return self.policy() @ self.grid

    @abstractmethod
    def policy(self) -> np.ndarray:
        """(R, K) probability of each arm in the next round (greedy part for value learners)."""

    @abstractmethod
    def _choose(self, uniforms: np.ndarray) -> np.ndarray:
        """(R,) arms from (R, draws) uniforms in [0, 1)."""

    @abstractmethod
    def _learn(self, utility: np.ndarray, counterfactual: np.ndarray | None) -> None:
        """Learn from (R,) realised utilities and optional (R, K) counterfactual utilities
        (rows of NaN where not revealed)."""


def sample(probabilities: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """(R,) arm drawn from each row of (R, K) probabilities by inversion of (R,) uniforms."""
    cdf = np.cumsum(probabilities, axis=1)
    arms = (cdf < uniforms[:, None] * cdf[:, -1:]).sum(axis=1)
    return np.minimum(arms, probabilities.shape[1] - 1)


def argmax_random(scores: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """(R,) index of each row's maximum of (R, K) ``scores``; ties go to the largest (R, K)
    ``keys`` (uniforms), i.e. uniformly at random, never to the lowest index."""
    best = scores == scores.max(axis=1, keepdims=True)
    return np.where(best, keys, -1.0).argmax(axis=1)
