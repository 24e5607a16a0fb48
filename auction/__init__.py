"""Ad auctions: mechanisms, a batched engine, bidders, truthfulness and collusion tools.

Only numpy is needed on this package's import path (no torch), so mechanism studies stay fast.

Example:
    >>> from auction import run_auction
    >>> run_auction([5.0, 8.0, 3.0], reserve=4.0).prices.tolist()
    [5.0]
"""

from . import arena, bidders, collusion, truthfulness
from ._validation import AuctionError
from .arena import ArenaConfig, ArenaLog, run_arena
from .arena_stats import ArenaMetrics, arena_metrics, mean_ci
from .bidders import (
    BudgetedOutcome,
    Exp3Bidder,
    HedgeLearner,
    PacingBidder,
    PacingLearner,
    QLearner,
    ShadingBidder,
    TruthfulBidder,
    UCBLearner,
    make_bidder,
    run_budgeted_auctions,
)
from .combinatorial import CombinatorialOutcome, combinatorial_vcg
from .engine import run_auction, run_auctions
from .mechanisms import MECHANISMS
from .outcome import AuctionOutcome, BatchOutcome
from .reserve import myerson_reserve, virtual_value
from .truthfulness import RegretReport, ex_post_regret
from .welfare import WelfareReport, expected_clicks, welfare

__all__ = [
    "MECHANISMS",
    "ArenaConfig",
    "ArenaLog",
    "ArenaMetrics",
    "AuctionError",
    "AuctionOutcome",
    "BatchOutcome",
    "BudgetedOutcome",
    "CombinatorialOutcome",
    "Exp3Bidder",
    "HedgeLearner",
    "PacingBidder",
    "PacingLearner",
    "QLearner",
    "RegretReport",
    "ShadingBidder",
    "TruthfulBidder",
    "UCBLearner",
    "WelfareReport",
    "arena",
    "arena_metrics",
    "bidders",
    "collusion",
    "combinatorial_vcg",
    "ex_post_regret",
    "expected_clicks",
    "make_bidder",
    "mean_ci",
    "myerson_reserve",
    "run_arena",
    "run_auction",
    "run_auctions",
    "run_budgeted_auctions",
    "truthfulness",
    "virtual_value",
    "welfare",
]
