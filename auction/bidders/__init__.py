"""Bidders for repeated ad auctions and a budget-safe batch runner.

Each bidder has ``bid(values (m,)) -> (m,) bids`` and ``update(won=, payments=, clicks=)``;
bids never exceed the batch's ``allowance`` (the remaining budget, or less under a shared
``Throttle`` that paces every strategy), and ``run_budgeted_auctions`` settles a batch so that
no allowance is overspent. The learners (``QLearner``, ``HedgeLearner``, ``UCBLearner``,
``PacingLearner``, ``StaticLearner``, and ``PolicyLearner`` around any callable, e.g. a
language model) have the same interface batched over ``R`` independent repetitions
(``m = R``, one state per repetition) and are played by ``auction.arena``.

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
from .hedge import HedgeLearner, hedge_rate
from .learner import Feedback, GridLearner, Learner, LearnerFactory, StaticLearner
from .pacing import PacingBidder, PacingLearner
from .policy import BidContext, Policy, PolicyLearner, Round
from .qlearning import PAPER_GRID, QLearner
from .repeated import RepeatedHistory, play_repeated
from .shading import ShadingBidder
from .streams import Streams, repetition_seeds
from .throttle import Throttle
from .truthful import TruthfulBidder
from .ucb import UCBLearner

__all__ = [
    "PAPER_GRID",
    "STRATEGIES",
    "BaseBidder",
    "BidContext",
    "Bidder",
    "Budget",
    "BudgetedOutcome",
    "Exp3Bidder",
    "Feedback",
    "GridLearner",
    "HedgeLearner",
    "Learner",
    "LearnerFactory",
    "PacingBidder",
    "PacingLearner",
    "Policy",
    "PolicyLearner",
    "QLearner",
    "RepeatedHistory",
    "Round",
    "ShadingBidder",
    "StaticLearner",
    "Streams",
    "Throttle",
    "TruthfulBidder",
    "UCBLearner",
    "hedge_rate",
    "make_bidder",
    "pay_per_click",
    "play_repeated",
    "repetition_seeds",
    "run_budgeted_auctions",
]
