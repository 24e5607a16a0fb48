"""Build a bidder from a strategy name, for config-driven simulations."""

from __future__ import annotations

import math

import numpy as np

from .._validation import AuctionError
from .bandit import Exp3Bidder
from .base import BaseBidder
from .pacing import PacingBidder
from .shading import ShadingBidder
from .truthful import TruthfulBidder

STRATEGIES = ("truthful", "shading", "paced", "bandit")


def make_bidder(
    strategy: str,
    *,
    budget: float = math.inf,
    shading: float = 0.8,
    horizon: int | None = None,
    rng: np.random.Generator | int | np.random.SeedSequence | None = None,
) -> BaseBidder:
    """A bidder by name: ``"truthful"``, ``"shading"``, ``"paced"`` or ``"bandit"``.

    Args:
        strategy: one of ``STRATEGIES``.
        budget: total budget (``math.inf`` for none; ``"paced"`` needs a finite one).
        shading: factor of the ``"shading"`` bidder.
        horizon: auctions the budget must last; required by ``"paced"``.
        rng: seed or Generator of the ``"bandit"`` bidder.

    Example:
        >>> make_bidder("shading", shading=0.5).bid([4.0]).tolist()
        [2.0]
    """
    if strategy == "truthful":
        return TruthfulBidder(budget=budget)
    if strategy == "shading":
        return ShadingBidder(shading, budget=budget)
    if strategy == "bandit":
        return Exp3Bidder(budget=budget, rng=rng)
    if strategy == "paced":
        if horizon is None:
            raise AuctionError("strategy 'paced' needs horizon= (auctions the budget must last)")
        return PacingBidder(budget, horizon)
    raise AuctionError(f"unknown strategy {strategy!r}; allowed: {', '.join(STRATEGIES)}")
