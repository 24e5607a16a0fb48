"""A bidder that bids its value: the dominant strategy in second-price and VCG auctions."""

from __future__ import annotations

import math

from .shading import ShadingBidder


class TruthfulBidder(ShadingBidder):
    """Bids its per-click value (capped at the remaining budget).

    Example:
        >>> TruthfulBidder().bid([3.0, 1.0]).tolist()
        [3.0, 1.0]
    """

    def __init__(self, *, budget: float = math.inf) -> None:
        super().__init__(1.0, budget=budget)
