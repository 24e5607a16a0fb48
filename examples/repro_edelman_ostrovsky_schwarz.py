"""Edelman, Ostrovsky & Schwarz (2007): do learning bidders in GSP reach the lowest-revenue
locally envy-free equilibrium (whose revenue equals VCG's), and are they above or below it?

Three advertisers with per-click values 10, 4, 2 compete for two slots. ``revenue_ratio`` is
revenue / VCG revenue at truthful bids, i.e. / the lowest envy-free equilibrium revenue
(1: reached; > 1 above; < 1 below, toward collusion). Learners: Hedge with full information
(every slot's threshold is revealed), EXP3 (own outcome only), and Q-learning, over bid
multipliers 0.05, ..., 1 of the value.

    bash .ci/env python examples/repro_edelman_ostrovsky_schwarz.py    # ~2 min on 2 cores
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np
from repro_common import parser, run_studies

from auction import ArenaConfig, HedgeLearner, QLearner
from auction.bidders import hedge_rate

GRID = np.round(np.arange(1, 21) * 0.05, 10)
VALUES = [10.0, 4.0, 2.0]


def main(argv: Sequence[str] | None = None) -> dict:
    """Three learners x two CTR profiles in GSP, revenue against the lowest envy-free one."""
    a = parser(__doc__, rounds=3000, repetitions=40).parse_args(argv)
    eta = hedge_rate(GRID.size, a.rounds)
    learners = {
        "Hedge (full info)": partial(HedgeLearner, grid=GRID, learning_rate=eta, reward_scale=10),
        "EXP3 (own outcome)": partial(
            HedgeLearner, grid=GRID, learning_rate=eta, reward_scale=10, full_information=False
        ),
        "Q-learning": partial(QLearner, grid=GRID, decay=5.0 / a.rounds, stateful=False),
    }
    studies = []
    for ctrs in ([1.0, 0.5], [1.0, 0.995]):
        for name, make in learners.items():
            cfg = ArenaConfig(
                rounds=a.rounds,
                repetitions=a.repetitions,
                values=VALUES,
                mechanism="gsp",
                slot_ctrs=ctrs,
                feedback="min_bid",
                seed=a.seed,
            )
            studies.append((f"GSP ctrs {ctrs}, {name}", [make] * 3, cfg))
    return run_studies("repro_edelman_ostrovsky_schwarz", studies, {"values": VALUES, "eta": eta})


if __name__ == "__main__":
    main()
