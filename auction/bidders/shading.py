"""A bidder that bids a fixed fraction of its value (the first-price textbook strategy)."""

from __future__ import annotations

import math

import numpy as np

from .._validation import AuctionError
from .base import BaseBidder
from .throttle import Throttle


class ShadingBidder(BaseBidder):
    """Bids ``factor x value`` per click.

    Against ``n - 1`` rivals with i.i.d. uniform values, ``factor = (n - 1) / n`` is the
    first-price equilibrium; ``factor = 1`` is truthful bidding.

    Args:
        factor: shading factor, > 0 (> 1 overbids).
        budget: total budget, ``math.inf`` for none.
        throttle: budget pacing (see ``BaseBidder``); ``None`` for none.

    Example:
        >>> ShadingBidder(0.5).bid(np.array([4.0, 2.0])).tolist()
        [2.0, 1.0]
    """

    def __init__(
        self, factor: float, *, budget: float = math.inf, throttle: Throttle | None = None
    ) -> None:
        if not (math.isfinite(factor) and factor > 0):
            raise AuctionError(f"factor must be finite and > 0, got {factor}")
        super().__init__(budget, throttle=throttle)
        self.factor = float(factor)

    def _bids(self, values: np.ndarray) -> np.ndarray:
        return self.factor * values
