"""Bidders for repeated ad auctions and a budget-safe batch runner.

Each bidder has ``bid(values (m,)) -> (m,) bids`` and ``update(won=, payments=, clicks=)``;
bids never exceed the remaining budget, and ``run_budgeted_auctions`` settles a batch so that
no budget is overspent.

Example:
    >>> from auction.bidders import ShadingBidder, TruthfulBidder, play_repeated
    >>> import numpy as np
    >>> h = play_repeated([TruthfulBidder(), ShadingBidder(0.5)], np.array([[[3.0, 4.0]]]))
    >>> h.revenue.tolist()
    [2.0]
"""

from .bandit import Exp3Bidder
from .base import BaseBidder, Bidder, Budget
from .budgeted import BudgetedOutcome, pay_per_click, run_budgeted_auctions
from .factory import STRATEGIES, make_bidder
from .pacing import PacingBidder
from .repeated import RepeatedHistory, play_repeated
from .shading import ShadingBidder
from .truthful import TruthfulBidder

__all__ = [
    "STRATEGIES",
    "BaseBidder",
    "Bidder",
    "Budget",
    "BudgetedOutcome",
    "Exp3Bidder",
    "PacingBidder",
    "RepeatedHistory",
    "ShadingBidder",
    "TruthfulBidder",
    "make_bidder",
    "pay_per_click",
    "play_repeated",
    "run_budgeted_auctions",
]
