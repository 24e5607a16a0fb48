"""Contribution valuation, token rewards and a tamper-evident ledger (numpy + sqlite3 only).

Values what each participant's update is worth (``valuate``/``shapley_values``: exact,
permutation, TMC, GTG-Shapley, SVARM with a fitted control variate (``svarm-cv``),
leave-one-out, Banzhaf), pays tokens for it (``RewardPolicy``), and records the payments
(``Ledger``). ``incentives.flower.ValuedStrategy``
does all three for every round of a Flower strategy (importing it imports Flower).

Example:
    >>> from incentives import shapley_values
    >>> shapley_values(lambda s: float(len(s) >= 2), 3).round(4).tolist()
    [0.3333, 0.3333, 0.3333]
"""

from ._errors import IncentiveError
from .ledger import Ledger, Verification, count_entries, read_key, verify_image, verify_ledger
from .payout import RoundPayer, RoundPayment
from .rewards import RewardPolicy, gini
from .shapley import METHODS, ValuationResult, auto_method, shapley_values, valuate
from .stopping import MaxEvaluations, MaxPermutations, StandardErrorBelow, StoppingRule
from .utility import CachedUtility, fl_utility

__all__ = [
    "METHODS",
    "CachedUtility",
    "IncentiveError",
    "Ledger",
    "MaxEvaluations",
    "MaxPermutations",
    "RewardPolicy",
    "RoundPayer",
    "RoundPayment",
    "StandardErrorBelow",
    "StoppingRule",
    "ValuationResult",
    "Verification",
    "auto_method",
    "count_entries",
    "fl_utility",
    "gini",
    "read_key",
    "shapley_values",
    "valuate",
    "verify_image",
    "verify_ledger",
]
