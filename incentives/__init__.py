"""Contribution valuation, token rewards and a tamper-evident ledger (numpy + sqlite3 only).

``incentives.flower.ValuedStrategy`` (imports Flower) values and pays each federated round.

Example:
    >>> from incentives import shapley_values
    >>> shapley_values(lambda s: float(len(s) >= 2), 3).round(4).tolist()
    [0.3333, 0.3333, 0.3333]
"""

from ._errors import IncentiveError
from .ledger import Ledger, Verification
from .rewards import RewardPolicy, gini
from .shapley import METHODS, ValuationResult, shapley_values, valuate
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
    "StandardErrorBelow",
    "StoppingRule",
    "ValuationResult",
    "Verification",
    "fl_utility",
    "gini",
    "shapley_values",
    "valuate",
]
