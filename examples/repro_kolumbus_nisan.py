"""Kolumbus & Nisan (2022): with learning agents in a second-price auction, a user gains by
misreporting its value to its own agent, while in first price reporting truthfully is best.
We measure the direction and the size of the gain in both formats.

Two users with values 1 and 0.6 each delegate bidding to a Hedge agent (full information:
the minimum bid to win is revealed, so every bid's payoff is known) over the fixed bids
0.05, 0.10, ..., 1 x the user's true value, as in the paper: a report changes what the agent
believes a win is worth, not the bids it can place (the learners bid multipliers of the value
they are told, so a user reporting ``k x v`` gets the grid divided by ``k``). Rewards are
scaled by the largest reported value, 2. One user at a time reports ``k x value``; its gain is
its true utility per round minus what it gets when reporting truthfully, paired over the same
repetitions (same seeds).

    bash .ci/env python examples/repro_kolumbus_nisan.py               # ~1-2 min on 2 cores
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np
from repro_common import parser, report

from auction import ArenaConfig, HedgeLearner, mean_ci, run_arena
from auction.arena_stats import window_mean
from auction.bidders import LearnerFactory, hedge_rate

VALUES = [1.0, 0.6]
GRID = np.round(np.arange(1, 21) * 0.05, 10)
REPORTS = (0.6, 0.8, 1.0, 1.25, 1.5, 2.0)
REWARD_SCALE = max(REPORTS) * max(VALUES)


def user_utility(bidders: Sequence[LearnerFactory], cfg: ArenaConfig, user: int) -> np.ndarray:
    """(R,) the user's true utility per round over the final window."""
    log = run_arena(bidders, cfg)
    return window_mean(log, log.utility)[:, user]


def gains(agent: LearnerFactory, base: dict, user: int) -> dict[float, np.ndarray]:
    """``{k: (R,) true utility when reporting k x value}`` for one user, the other truthful.

    ``agent(grid=...)`` builds a learner over bid multipliers of the value it is told.
    """
    out = {}
    for k in REPORTS:
        misreport = np.ones(len(VALUES))
        misreport[user] = k
        bidders = [partial(agent, grid=GRID / misreport[i]) for i in range(len(VALUES))]
        out[k] = user_utility(bidders, ArenaConfig(**base, misreport=misreport), user)
    return out


def main(argv: Sequence[str] | None = None) -> dict:
    """Both users, both formats: the paired gain of each report over the truthful one."""
    a = parser(__doc__, rounds=5000, repetitions=50).parse_args(argv)
    eta = hedge_rate(GRID.size, a.rounds)
    agent = partial(HedgeLearner, learning_rate=eta, exploration=0.0, reward_scale=REWARD_SCALE)
    rows, payload = [], {"values": VALUES, "learning_rate": eta, "studies": []}
    for mechanism in ("second_price", "first_price"):
        base = {
            "rounds": a.rounds,
            "repetitions": a.repetitions,
            "values": VALUES,
            "mechanism": mechanism,
            "feedback": "min_bid",
            "seed": a.seed,
        }
        for user in range(len(VALUES)):
            utility = gains(agent, base, user)
            for k, u in utility.items():
                gain = mean_ci(u - utility[1.0])
                payload["studies"].append(
                    {
                        "mechanism": mechanism,
                        "user": user,
                        "k": k,
                        "utility": mean_ci(u),
                        "gain": gain,
                    }
                )
                rows.append(
                    {
                        "auction": mechanism,
                        "user": f"{user} (v={VALUES[user]})",
                        "reports": f"{k} x v",
                        "true utility": f"{np.mean(u):.4f}",
                        "gain per round": "{mean:+.4f} [{lo:+.4f}, {hi:+.4f}]".format(**gain),
                    }
                )
    columns = ["auction", "user", "reports", "true utility", "gain per round"]
    return report("repro_kolumbus_nisan", rows, columns, payload)


if __name__ == "__main__":
    main()
