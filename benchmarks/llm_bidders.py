"""LLM advertisers next to the learning bidders (issue 19, item 4): regret and collusion index.

Two symmetric bidders with per-click value 1 (the Banchio & Skrzypacz 2022 setting), one slot,
own-outcome feedback, first price and second price. Bidders: Q-learning (the paper's grid
0:0.05:1, learning rate 0.05, discount 0.95, memoryless, exploration exp(-decay t)), Hedge
(full information, the default grid), truthful (bid = value), and the language model
(``agents.llm_bidder``: it chooses a bid multiplier 0:0.1:1 by log-likelihood from a prompt
with its value, budget and last 3 rounds; cached per prompt), alone and against a Q-learner.
The learners play ``--rounds``; the LLM pairings ``--llm-rounds`` (each cache miss is one
forward pass of the model).

Per repetition over the final window (the last 10% of rounds):

- ``collusion_index`` from ``auction.arena_metrics``: (competitive - revenue) / (competitive -
  monopoly), 0 competitive, 1 full collusion;
- ``winning_bid``: the winner's bid / value (the paper's measure);
- ``regret``: external regret per round against the best fixed multiplier of the value in
  hindsight (0:0.05:1), each re-played against the rivals' logged bids of the window with
  ``auction.run_auctions``; averaged over the bidders (0: no fixed bid would have done better).

Means with 95% intervals over repetitions (``auction.mean_ci``).

    bash .ci/env python benchmarks/llm_bidders.py [--rounds 10000] [--llm-rounds 300] [--smollm2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from agents import load_model
from agents.llm_bidder import llm_bidder
from auction import ArenaConfig, ArenaLog, arena_metrics, mean_ci, run_arena, run_auctions
from auction.bidders import PAPER_GRID, HedgeLearner, LearnerFactory, QLearner, StaticLearner
from benchmarks._report import machine_note, write_json
from benchmarks.negotiation import markdown

COLUMNS = ["bidders", "mechanism", "rounds", "reps", "collusion_index", "winning_bid", "regret"]


def _utility(bids: np.ndarray, values: np.ndarray, i: int, mechanism: str) -> np.ndarray:
    """(A,) utility of bidder ``i`` in each one-slot auction row of ``bids`` (A, n)."""
    out = run_auctions(bids, mechanism=mechanism, rng=0)
    return values[:, i] * (out.winners[:, 0] == i) - out.payments[:, i]


def regret(log: ArenaLog) -> np.ndarray:
    """(R,) mean over bidders of the best fixed multiplier's window utility minus the actual.

    Example:
        >>> cfg = ArenaConfig(rounds=10, repetitions=1, values=[1.0, 1.0], window=10)
        >>> log = run_arena([partial(StaticLearner, factor=0.5)] * 2, cfg)  # first price, ties
        >>> regret(log).round(3).tolist()  # 0.55 would win: 0.45 a round; tied at 0.5: 0.25
        [0.2]
    """
    w, reps, n = log.bids.shape
    mech = log.config.mechanism
    bids, values = log.bids.reshape(w * reps, n), log.values.reshape(w * reps, n)
    per = np.zeros((reps, n))
    for i in range(n):
        actual = _utility(bids, values, i, mech).reshape(w, reps).mean(axis=0)
        best = np.full(reps, -np.inf)
        for m in PAPER_GRID:
            alt = bids.copy()
            alt[:, i] = m * values[:, i]
            best = np.maximum(best, _utility(alt, values, i, mech).reshape(w, reps).mean(axis=0))
        per[:, i] = best - actual
    return per.mean(axis=1)


def study(label: str, bidders: list[LearnerFactory], cfg: ArenaConfig) -> dict:
    """One row: run the arena, summarise collusion, winning bid and regret."""
    start = time.perf_counter()
    log = run_arena(bidders, cfg)
    m = arena_metrics(log)
    row = {"bidders": label, "mechanism": cfg.mechanism, "rounds": cfg.rounds}
    row["reps"] = cfg.repetitions
    stats = {
        "collusion_index": mean_ci(m.collusion_index),
        "winning_bid": mean_ci(m.winning_bid),
        "regret": mean_ci(regret(log)),
    }
    for k, ci in stats.items():
        row[k] = f"{ci['mean']:.3f} [{ci['lo']:.3f}, {ci['hi']:.3f}]"
    row["seconds"] = time.perf_counter() - start
    print(markdown([row], COLUMNS).splitlines()[-1], flush=True)
    return {**row, "stats": stats}


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=10_000, help="rounds of the learner studies")
    p.add_argument("--repetitions", type=int, default=20)
    p.add_argument("--llm-rounds", type=int, default=300, help="rounds of the LLM studies")
    p.add_argument("--llm-repetitions", type=int, default=8)
    p.add_argument("--smollm2", action="store_true", help="SmolLM2-135M-Instruct, not tiny")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    load_before = os.getloadavg()
    model = "smollm2" if a.smollm2 else "tiny-causal"
    backbone = load_model(model)
    q = partial(QLearner, decay=5.0 / a.rounds, learning_rate=0.05, discount=0.95)
    q_llm = partial(QLearner, decay=5.0 / a.llm_rounds, learning_rate=0.05, discount=0.95)
    learners = {
        "Q-learning x2": [q, q],
        "Hedge x2": [partial(HedgeLearner)] * 2,
        "truthful x2": [partial(StaticLearner, factor=1.0)] * 2,
    }
    print(markdown([], COLUMNS))
    rows = []
    for mech in ("first_price", "second_price"):
        base = {"values": [1.0, 1.0], "mechanism": mech, "seed": a.seed}
        cfg = ArenaConfig(rounds=a.rounds, repetitions=a.repetitions, **base)
        rows += [study(label, b, cfg) for label, b in learners.items()]
        llm_cfg = ArenaConfig(rounds=a.llm_rounds, repetitions=a.llm_repetitions, **base)
        llm = llm_bidder(backbone)
        rows.append(study(f"{model} x2", [llm, llm], llm_cfg))
        rows.append(study(f"{model} vs Q-learning", [llm, q_llm], llm_cfg))
        policy = llm.keywords["policy"]
        rows[-1]["llm_calls"], rows[-1]["llm_lookups"] = policy.calls, policy.lookups
    note = machine_note(load_before, os.getloadavg())
    command = "bash .ci/env python benchmarks/llm_bidders.py " + " ".join(argv or sys.argv[1:])
    print(f"\n{note}; one thread; `{command.strip()}`")
    name = "llm_bidders_smollm2" if a.smollm2 else "llm_bidders"
    meta = {"seed": a.seed, "model": model, "command": command.strip()}
    payload = {**meta, "rows": rows, "load_before": load_before, "load_after": os.getloadavg()}
    print(f"wrote {write_json(name, payload)}")
    return rows


if __name__ == "__main__":
    main()
