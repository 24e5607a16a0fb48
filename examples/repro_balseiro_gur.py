"""Balseiro & Gur (2019): adaptive pacing under budgets converges, and against stationary
competition it earns close to the best any strategy could have earned in hindsight.

Second price, values i.i.d. U(0, 1) per bidder and round, budget per round ``rho``.
(a) One pacer against 3 truthful rivals without budgets: the pacer's utility vs the hindsight
optimum, the fractional knapsack over the realised (value, price) pairs
``max sum (v_t - d_t) x_t  s.t.  sum d_t x_t <= B, 0 <= x_t <= 1`` (an upper bound on any
strategy, dynamic ones included), and vs a truthful bidder with the same budget.
(b) Four pacers: do their bids converge, and to what? With n symmetric bidders each bidding
``c v`` in second price, one bidder pays ``c E[V_(2)] / n = c (n - 1) / (n (n + 1))`` per round,
so the budget binds at ``c* = min(1, rho n (n + 1) / (n - 1))`` (1/3 for n = 4, rho = 0.05):
the steady bid / value over rounds 50%-90% against c*, the spend / budget, and how many rounds
before the end the budgets ran out (the theory allows O(sqrt T)).

    bash .ci/env python examples/repro_balseiro_gur.py                 # ~1 min on 2 cores
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np
from repro_common import fmt, parser, report

from auction import ArenaConfig, ArenaLog, PacingLearner, mean_ci, run_arena
from auction.arena_stats import converged_at
from auction.bidders import StaticLearner


def uniform(u: np.ndarray) -> np.ndarray:
    """Values U(0, 1): the quantile function of the uniform distribution."""
    return u


def hindsight(values: np.ndarray, prices: np.ndarray, budget: float) -> np.ndarray:
    """(R,) fractional-knapsack optimum over (T, R) realised values and prices to win."""
    gain = np.maximum(values - prices, 0.0)
    best = np.zeros(values.shape[1])
    for r in range(values.shape[1]):
        ratio = np.divide(
            gain[:, r], prices[:, r], out=np.full(len(gain), np.inf), where=prices[:, r] > 0
        )
        order = np.argsort(-ratio)
        cost, g = prices[order, r], gain[order, r]
        keep = g > 0
        cost, g = cost[keep], g[keep]
        spent = np.cumsum(cost)
        full = spent <= budget
        best[r] = g[full].sum()
        k = full.sum()
        if k < len(cost) and cost[k] > 0:  # the fractional item
            left = budget - (spent[k - 1] if k else 0.0)
            best[r] += g[k] * left / cost[k]
    return best


def equilibrium_multiplier(n: int, rho: float) -> float:
    """``c*``: the bid / value at which n symmetric U(0, 1) pacers spend ``rho`` per round."""
    return min(1.0, rho * n * (n + 1) / (n - 1))


def pacers_rows(log: ArenaLog, budget: float) -> tuple[list[dict], dict]:
    """Steady bid / value (rounds 50%-90%), spend / budget, rounds left when budgets ran out."""
    t, n = log.config.rounds, log.bids.shape[2]
    start = np.cumsum(log.block_rounds) - log.block_rounds
    head = start + log.block_rounds <= 0.9 * t  # before budgets can run out
    steady = head & (start >= t // 2)
    curve = log.bid_ratio.mean(axis=2)
    spent = (log.revenue * log.block_rounds[:, None]).sum(axis=0) / (n * budget)
    positive = log.bids > 0  # values are U(0, 1) > 0: a zero bid means an empty budget
    last = t - 1 - np.argmax(positive[::-1], axis=0)  # (R, n) last round with a bid
    out = {
        "steady bid / value": mean_ci(curve[steady].mean(axis=0)),
        "spend / budget": mean_ci(spent),
        "rounds left unspent": mean_ci((t - 1 - last).mean(axis=1)),
        "bids within 0.02 of their 90% level from round": mean_ci(
            converged_at(curve[head], log.block_rounds[head], 0.02)
        ),
    }
    c_star = equilibrium_multiplier(n, budget / t)
    rows = [{"(b) 4 pacers, SP": k, "ours": fmt(v)} for k, v in out.items()]
    rows[0]["closed form"] = f"{c_star:.4f}"
    return rows, {**out, "c_star": c_star}


def main(argv: Sequence[str] | None = None) -> dict:
    """(a) one pacer vs the hindsight optimum; (b) four pacers against each other."""
    p = parser(__doc__, rounds=10_000, repetitions=40)
    p.add_argument("--rho", type=float, default=0.05, help="budget per round")
    a = p.parse_args(argv)
    budget = a.rho * a.rounds
    pacer = partial(PacingLearner, budget=budget, horizon=a.rounds)
    truthful = partial(StaticLearner, factor=1.0)
    rows, payload = [], {"rho": a.rho, "budget": budget}
    base = {
        "rounds": a.rounds,
        "repetitions": a.repetitions,
        "values": uniform,
        "mechanism": "second_price",
        "seed": a.seed,
        "window": a.rounds,  # keep the whole log: every round is needed below
    }
    for label, first in (("pacer", pacer), ("truthful, same budget", truthful)):
        budgets = [budget, np.inf, np.inf, np.inf]
        log = run_arena([first, truthful, truthful, truthful], ArenaConfig(**base, budgets=budgets))
        got = (log.utility[:, :, 0] * log.block_rounds[:, None]).sum(axis=0)
        opt = hindsight(log.values[..., 0], log.bids[..., 1:].max(axis=2), budget)
        rows.append(
            {"study": f"(a) {label}", "utility / hindsight optimum": fmt(mean_ci(got / opt))}
        )
        payload[label] = {
            "ratio": mean_ci(got / opt),
            "utility": mean_ci(got),
            "hindsight": mean_ci(opt),
        }
    report("repro_balseiro_gur_hindsight", rows, ["study", "utility / hindsight optimum"], payload)
    log = run_arena([pacer] * 4, ArenaConfig(**base, budgets=[budget] * 4))
    rows, out = pacers_rows(log, budget)
    return report(
        "repro_balseiro_gur_pacers",
        rows,
        ["(b) 4 pacers, SP", "ours", "closed form"],
        {"rho": a.rho, **out},
    )


if __name__ == "__main__":
    main()
