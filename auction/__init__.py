"""Ad auctions: mechanisms, a batched engine, bidders, truthfulness and collusion tools.

Only numpy is needed on this package's import path (no torch), so mechanism studies stay fast.

Example:
    >>> from auction import run_auction
    >>> run_auction([5.0, 8.0, 3.0], reserve=4.0).prices.tolist()
    [5.0]
"""

from ._validation import AuctionError
from .combinatorial import CombinatorialOutcome, combinatorial_vcg
from .engine import run_auction, run_auctions
from .mechanisms import MECHANISMS
from .outcome import AuctionOutcome, BatchOutcome
from .reserve import myerson_reserve, virtual_value
from .welfare import WelfareReport, expected_clicks, welfare

__all__ = [
    "MECHANISMS",
    "AuctionError",
    "AuctionOutcome",
    "BatchOutcome",
    "CombinatorialOutcome",
    "WelfareReport",
    "combinatorial_vcg",
    "expected_clicks",
    "myerson_reserve",
    "run_auction",
    "run_auctions",
    "virtual_value",
    "welfare",
]
