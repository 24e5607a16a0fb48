"""Does the market show users more relevant ads with federated LM agents than with click counts?

For each seed, the same world and market run twice: devices that score ads with their own click
counts per category (``agents.scorer = "category"``, no federated rounds) and the whole system
(MiniLM LoRA agents over the user's private context, federated DP-SGD rounds through Flower's
Simulation Engine, valued and paid). Reported per scorer: user welfare (expected clicks on the
ads shown, summed over the run), NDCG@10 of the devices' ranking of all ads against the users'
true CTRs after the last step, and the run's per-user epsilon; mean and sd over seeds.

    bash .ci/env python benchmarks/economy_quality.py [--world clothing] [--seeds 0 1 2]

Defaults: the clothing world (real product texts, synthetic users), 100 users, 30
advertisers, 15 steps, rounds every 5 steps of 8 devices; about 2 minutes per LM run on 2
cores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._report import print_table, write_json
from economy.config import parse_config
from economy.runner import run_market

SCORERS = {
    "click counts": {"agents": {"scorer": "category"}, "federated": {"every": 0}},
    "federated MiniLM agents": {
        "agents": {"scorer": "lm", "model": "minilm"},
        "federated": {"every": 5, "clients_per_round": 8},
    },
}


def run_once(world: str, users: int, steps: int, seed: int, scorer: dict[str, Any]) -> dict:
    """One run's headline numbers (user welfare, NDCG@10, epsilon, wall seconds)."""
    history = {"clothing": 10, "synthetic": 20, "movielens": 20}[world]
    with tempfile.TemporaryDirectory() as out:
        cfg = parse_config(
            {
                "name": "quality",
                "seed": seed,
                "output_dir": out,
                "world": {"kind": world, "history": history},
                "market": {"users": users, "advertisers": 30, "steps": steps},
                "auction": {"reserve": 0.05},
                **scorer,
            }
        )
        start = time.perf_counter()
        run = run_market(cfg)
        seconds = time.perf_counter() - start
        summary = json.loads((run / "summary.json").read_text())
    return {
        "user_welfare": summary["totals"]["user_welfare"],
        "ndcg10": summary["quality"]["ndcg10"],
        "epsilon_max": summary["privacy"]["epsilon_max"],
        "tokens_paid": summary["tokens"]["paid"],
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--world", choices=["clothing", "synthetic", "movielens"], default="clothing"
    )
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {name: [] for name in SCORERS}
    for seed in args.seeds:  # interleaved: both scorers see the same machine load
        for name, scorer in SCORERS.items():
            runs[name].append(run_once(args.world, args.users, args.steps, seed, scorer))
            print(f"seed {seed} {name}: {runs[name][-1]}", flush=True)

    def spread(x: np.ndarray, fmt: str) -> str:
        sd = x.std(ddof=1) if len(x) > 1 else 0.0
        return f"{x.mean():{fmt}} ± {sd:{fmt}}"

    rows = []
    for name, results in runs.items():
        welfare = np.array([r["user_welfare"] for r in results])
        ndcg = np.array([r["ndcg10"] for r in results])
        rows.append(
            {
                "scorer": name,
                "user welfare": spread(welfare, ",.1f"),
                "NDCG@10": spread(ndcg, ".3f"),
                "epsilon/user": f"{max(r['epsilon_max'] for r in results):.3g}",
                "s/run": f"{np.mean([r['seconds'] for r in results]):.0f}",
            }
        )
    load = os.getloadavg()
    print(
        f"\n{args.world} world, {args.users} users, {args.steps} steps, seeds {args.seeds}; "
        f"load {load[0]:.1f}/{load[1]:.1f}; {time.strftime('%Y-%m-%d %H:%M')}"
    )
    print_table(rows, ["scorer", "user welfare", "NDCG@10", "epsilon/user", "s/run"])
    path = write_json(
        "economy_quality",
        {"args": vars(args), "load": load, "runs": runs, "table": rows},
    )
    print(f"written: {path}")


if __name__ == "__main__":
    main()
