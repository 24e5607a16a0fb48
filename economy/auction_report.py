"""``fedadagent auction``: is the configured mechanism truthful, and what does a reserve do?

Two parts, both seeded from the run's seed:

1. Truthfulness: empirical ex-post regret of every bidder over random value profiles
   (``auction.truthfulness``): the best gain any misreport on a grid gives over bidding the
   true value. A truthful mechanism has regret 0. With ``truthfulness.coalition = k > 1``
   every coalition of k bidders misreports jointly (a bid ring maximising its summed
   utility): second price and VCG are truthful alone but not against rings.
2. Revenue and welfare by simulation: ``simulate_auctions`` auctions with truthful bids and
   i.i.d. uniform values, at the configured reserve, at no reserve and at Myerson's optimal
   reserve for those values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from auction import myerson_reserve, run_auctions, welfare
from auction.truthfulness import ex_post_regret

from .config import ExperimentConfig
from .rundir import create_run_dir, write_json
from .seeding import RunSeeds


def _simulate(cfg: ExperimentConfig, reserve: float, rng: np.random.Generator) -> dict[str, float]:
    t = cfg.truthfulness
    values = rng.uniform(t.value_low, t.value_high, size=(t.simulate_auctions, t.bidders))
    out = run_auctions(
        values,
        mechanism=cfg.auction.mechanism,
        slot_ctrs=cfg.auction.slot_ctrs,
        reserve=reserve,
        rng=rng,
    )
    rep = welfare(out, values)
    n = t.simulate_auctions
    return {
        "reserve": reserve,
        "revenue_per_auction": rep.revenue / n,
        "advertiser_surplus_per_auction": rep.advertiser_surplus / n,
        "social_welfare_per_auction": rep.social_welfare / n,
        "fill_rate": float((out.winners[:, 0] >= 0).mean()),
    }


def build_report(cfg: ExperimentConfig) -> dict[str, Any]:
    """Compute the report (no files written)."""
    seeds = RunSeeds(cfg.seed)
    t = cfg.truthfulness
    probe_rng = seeds.generator("truthfulness")
    profiles = probe_rng.uniform(t.value_low, t.value_high, size=(t.instances, t.bidders))
    regret = ex_post_regret(
        profiles,
        mechanism=cfg.auction.mechanism,
        slot_ctrs=cfg.auction.slot_ctrs,
        reserve=cfg.auction.reserve,
        coalitions=t.coalition,
        misreports=np.linspace(0.0, 2.0 * t.value_high, t.grid),
        rng=probe_rng,
    )
    optimal = round(myerson_reserve(stats.uniform(t.value_low, t.value_high - t.value_low)), 9)
    reserves = sorted({0.0, cfg.auction.reserve, optimal})
    sim_rng = seeds.generator("simulation")
    return {
        "mechanism": cfg.auction.mechanism,
        "slot_ctrs": list(cfg.auction.slot_ctrs),
        "truthfulness": regret.to_dict(),
        "myerson_reserve": optimal,
        "by_reserve": [_simulate(cfg, r, sim_rng) for r in reserves],
    }


def auction_report(cfg: ExperimentConfig) -> Path:
    """Write ``report.json`` into a new run folder and print a short summary."""
    report = build_report(cfg)
    run_dir = create_run_dir(cfg)
    write_json(run_dir / "report.json", report)
    tr = report["truthfulness"]
    print(f"mechanism {report['mechanism']} slots {report['slot_ctrs']}")
    print(f"ex-post regret: max {tr['max_regret']:.6g}, mean {tr['mean_regret']:.6g}")
    print(f"{'reserve':>10} {'revenue':>10} {'surplus':>10} {'welfare':>10} {'fill':>6}")
    for row in report["by_reserve"]:
        print(
            f"{row['reserve']:>10.4g} {row['revenue_per_auction']:>10.4g} "
            f"{row['advertiser_surplus_per_auction']:>10.4g} "
            f"{row['social_welfare_per_auction']:>10.4g} {row['fill_rate']:>6.3f}"
        )
    return run_dir
