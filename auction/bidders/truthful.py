"""A bidder that bids its value: the dominant strategy in second-price and VCG auctions."""

from __future__ import annotations

import math

from .shading import ShadingBidder
from .throttle import Throttle


class TruthfulBidder(ShadingBidder):
    """Bids its per-click value (capped at the batch's allowance), in the auctions its
    ``throttle`` enters.

    Example:
        >>> TruthfulBidder().bid([3.0, 1.0]).tolist()
        [3.0, 1.0]
    """

    def __init__(self, *, budget: float = math.inf, throttle: Throttle | None = None) -> None:
        super().__init__(1.0, budget=budget, throttle=throttle)
