"""Do advertisers' budgets last the campaign? The quickstart market with click-count devices.

Runs ``examples/quickstart.toml`` with the category scorer and no federated rounds
(``{"agents": {"scorer": "category"}, "federated": {"every": 0}}``: seconds, not minutes) and
reads every advertiser's spend per step from its budget. Reported: revenue of the first and
last step, advertisers with less than 1% of their budget left at the end, advertisers that
bid in the last step, and the largest step spend over the per-step share
(``advertisers.budget_per_step``), overall and per bidding strategy.

    bash .ci/env python benchmarks/budget_pacing.py [--seeds 42] [--budget-per-step 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._report import machine_note, print_table, write_json
from economy.config import parse_config
from economy.market import MarketState, simulate

QUICKSTART = Path(__file__).resolve().parents[1] / "examples" / "quickstart.toml"
FAST = {"agents": {"scorer": "category"}, "federated": {"every": 0}}


def run(seed: int, budget_per_step: float | None) -> dict[str, Any]:
    """One quickstart-like run; its budget numbers as one table row."""
    data = tomllib.loads(QUICKSTART.read_text())
    for section, values in FAST.items():
        data.setdefault(section, {}).update(values)
    data["seed"] = seed
    if budget_per_step is not None:
        data.setdefault("advertisers", {})["budget_per_step"] = budget_per_step
    cfg = parse_config(data)
    spent: list[np.ndarray] = []
    totals: list[float] = []
    strategies: list[str] = []

    def record(state: MarketState) -> None:
        if not totals:
            totals.extend(b.budget.total for b in state.bidders)
            strategies.extend(str(s) for s in state.world.strategies)
        spent.append(np.array([b.budget.spent for b in state.bidders]))

    metrics = simulate(cfg, on_step=record)
    per_step = np.diff(np.vstack([np.zeros(len(totals)), *spent]), axis=0)  # (steps, n)
    share = per_step / cfg.advertisers.budget_per_step
    left = 1.0 - spent[-1] / np.array(totals)
    row: dict[str, Any] = {
        "seed": seed,
        "revenue_first": metrics[0].revenue,
        "revenue_last": metrics[-1].revenue,
        "welfare_total": float(sum(m.social_welfare for m in metrics)),
        "broke_at_end": int((left < 0.01).sum()),
        "bid_last_step": int((per_step[-1] > 0).sum()),
        "max_step_spend_over_share": float(share.max()),
    }
    names = np.array(strategies)
    for name in sorted(set(strategies)):
        row[f"max_over_share_{name}"] = float(share[:, names == name].max())
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    parser.add_argument("--budget-per-step", type=float, default=None)
    parser.add_argument("--label", default="budget_pacing", help="name of the JSON result")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    rows = [run(seed, args.budget_per_step) for seed in args.seeds]
    load = os.getloadavg()
    print_table(rows, list(rows[0]))
    print(machine_note(load_before, load))
    payload = {"rows": rows, "load_before": load_before, "load_after": load}
    print(f"wrote {write_json(args.label, payload)}")


if __name__ == "__main__":
    main()
