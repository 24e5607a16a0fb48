"""Banchio & Skrzypacz (2022): Q-learners collude tacitly in first price, not in second price,
and revealing the minimum bid to win restores competition. Plus the defences (issue 17, item
5): a reserve price, the price-revealing feedback and deterministic (index) tie-breaking.

Two Q-learning bidders with a common value 1 bid on the grid 0, 0.05, ..., 1; learning rate
0.05, discount 0.95; exploration exp(-beta t). The main block uses memoryless learners (one
state), the setting in which the paper's mechanism -- after an experiment outbids the rival
by one increment, both re-coordinate on low bids -- needs no punishment strategy. A second
block repeats three designs with state = own last bid, as a robustness check: with discounting
and a state, synchronous updating only refreshes the visited state's row, and the learners
stop short of the competitive bid.

``winning_bid`` (the winner's bid / value) is the paper's measure; in second price the price
is the loser's bid, which no learner has a reason to raise once it loses every round.

The paper's runs are longer (slower decay, ~10^6 rounds). The defaults (30,000 rounds, beta
2e-4, so exploration ends at exp(-6) = 0.25%, 40 repetitions) are lowered so the script takes
~3 min on two shared cores; the ordering of the designs does not change with longer runs
(``--rounds 120000 --decay 5e-5``).

    bash .ci/env python examples/repro_banchio_skrzypacz.py
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from repro_common import parser, run_studies

from auction import ArenaConfig, QLearner

DESIGNS = {
    "FP, own outcome": {"mechanism": "first_price"},
    "SP, own outcome": {"mechanism": "second_price"},
    "FP, min bid to win": {"mechanism": "first_price", "feedback": "min_bid"},
    "FP, price revealed": {"mechanism": "first_price", "feedback": "price"},
    "FP, reserve 0.5": {"mechanism": "first_price", "reserve": 0.5},
    "FP, index ties": {"mechanism": "first_price", "ties": "index"},
}
STATEFUL_DESIGNS = ("FP, own outcome", "SP, own outcome", "FP, min bid to win")


def main(argv: Sequence[str] | None = None) -> dict:
    """Run every design with memoryless learners and three with last-bid state; report."""
    p = parser(__doc__, rounds=30_000, repetitions=40)
    p.add_argument("--decay", type=float, default=2e-4, help="beta of exp(-beta t)")
    a = p.parse_args(argv)
    base = {"rounds": a.rounds, "repetitions": a.repetitions, "values": [1.0, 1.0], "seed": a.seed}
    studies = []
    for stateful, labels in ((False, DESIGNS), (True, STATEFUL_DESIGNS)):
        q = partial(QLearner, decay=a.decay, learning_rate=0.05, discount=0.95, stateful=stateful)
        tag = "last-bid state" if stateful else "memoryless"
        studies += [
            (f"{label} ({tag})", [q] * 2, ArenaConfig(**base, **DESIGNS[label])) for label in labels
        ]
    return run_studies(
        "repro_banchio_skrzypacz",
        studies,
        {"learner": "QLearner(grid 0:0.05:1, alpha 0.05, gamma 0.95)", "decay": a.decay},
    )


if __name__ == "__main__":
    main()
