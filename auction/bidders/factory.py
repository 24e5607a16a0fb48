"""Build a bidder from a strategy name, for config-driven simulations."""

from __future__ import annotations

import math

import numpy as np

from .._validation import AuctionError, as_rng
from .bandit import Exp3Bidder
from .base import BaseBidder
from .pacing import PacingBidder
from .shading import ShadingBidder
from .throttle import Throttle
from .truthful import TruthfulBidder

STRATEGIES = ("truthful", "shading", "paced", "bandit")


def make_bidder(
    strategy: str,
    *,
    budget: float = math.inf,
    shading: float = 0.8,
    horizon: int | None = None,
    burst: float = 2.0,
    rng: np.random.Generator | int | np.random.SeedSequence | None = None,
) -> BaseBidder:
    """A bidder by name: ``"truthful"``, ``"shading"``, ``"paced"`` or ``"bandit"``.

    With a finite budget and a ``horizon`` every strategy is throttled (``Throttle``): it
    enters a share of the auctions sized so the budget lasts ``horizon`` auctions, and never
    spends more than ``burst`` per-auction shares times the batch size in one batch.

    Args:
        strategy: one of ``STRATEGIES``.
        budget: total budget (``math.inf`` for none; ``"paced"`` needs a finite one).
        shading: factor of the ``"shading"`` bidder.
        horizon: auctions the budget must last; required by ``"paced"``; ``None``: no
            throttling (bid until the budget is gone).
        burst: most one batch may spend, in per-auction shares x its auctions, >= 1.
        rng: seed or Generator of the throttle's and the ``"bandit"`` bidder's draws.

    Example:
        >>> make_bidder("shading", shading=0.5).bid([4.0]).tolist()
        [2.0]
        >>> b = make_bidder("truthful", budget=10.0, horizon=10, rng=0)
        >>> b.bid([3.0, 3.0, 3.0]).tolist(), b.allowance  # at most 2 shares x 3 auctions
        ([3.0, 3.0, 3.0], 6.0)
    """
    if strategy not in STRATEGIES:
        raise AuctionError(f"unknown strategy {strategy!r}; allowed: {', '.join(STRATEGIES)}")
    if strategy == "paced" and horizon is None:
        raise AuctionError("strategy 'paced' needs horizon= (auctions the budget must last)")
    arms, entries = as_rng(rng).spawn(2)
    throttle = None
    if horizon is not None and math.isfinite(budget):
        throttle = Throttle(budget, horizon, burst=burst, rng=entries)
    if strategy == "truthful":
        return TruthfulBidder(budget=budget, throttle=throttle)
    if strategy == "shading":
        return ShadingBidder(shading, budget=budget, throttle=throttle)
    if strategy == "bandit":
        return Exp3Bidder(budget=budget, rng=arms, throttle=throttle)
    return PacingBidder(budget, horizon, throttle=throttle)
