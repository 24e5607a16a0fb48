"""``fedadagent auction``: is the configured mechanism truthful, and what does a reserve do?

Two parts, both seeded from the run's seed:

1. Truthfulness: empirical ex-post regret of every bidder over random value profiles
   (``auction.truthfulness``): the best gain any misreport on a grid gives over bidding the
   true value. A truthful mechanism has regret 0. With ``truthfulness.coalition = k > 1``
   every coalition of k bidders misreports jointly (a bid ring maximising its summed
   utility): second price and VCG are truthful alone but not against rings.
2. Revenue and welfare by simulation: ``simulate_auctions`` auctions with truthful bids and
   i.i.d. uniform values, at the configured reserve, at no reserve and at Myerson's optimal
   reserve for those values (``by_reserve``; for GSP truthful bids are no equilibrium, so
   its revenue there overstates what bidders would pay).
3. By mechanism (``by_mechanism``), at the configured reserve on one common draw of values:
   every mechanism with the configured slots at truthful bids (regret and revenue), and GSP
   at the bids of Edelman, Ostrovsky & Schwarz's lowest-revenue envy-free equilibrium
   (``auction.equilibrium``), whose revenue equals VCG's: the honest GSP benchmark.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from auction import myerson_reserve, run_auctions, welfare
from auction.equilibrium import gsp_envy_free_bids
from auction.truthfulness import RegretReport, ex_post_regret

from .config import ExperimentConfig
from .rundir import create_run_dir, write_json
from .seeding import RunSeeds


def _outcome(
    cfg: ExperimentConfig,
    values: np.ndarray,
    bids: np.ndarray,
    mechanism: str,
    reserve: float,
    rng: np.random.Generator,
) -> dict[str, float]:
    """Per-auction revenue, surplus and welfare of ``mechanism`` at ``bids`` for ``values``."""
    out = run_auctions(
        bids, mechanism=mechanism, slot_ctrs=cfg.auction.slot_ctrs, reserve=reserve, rng=rng
    )
    rep = welfare(out, values)
    n = values.shape[0]
    return {
        "revenue_per_auction": rep.revenue / n,
        "advertiser_surplus_per_auction": rep.advertiser_surplus / n,
        "social_welfare_per_auction": rep.social_welfare / n,
        "fill_rate": float((out.winners[:, 0] >= 0).mean()),
    }


def _values(cfg: ExperimentConfig, rng: np.random.Generator) -> np.ndarray:
    t = cfg.truthfulness
    return rng.uniform(t.value_low, t.value_high, size=(t.simulate_auctions, t.bidders))


def _simulate(cfg: ExperimentConfig, reserve: float, rng: np.random.Generator) -> dict[str, float]:
    values = _values(cfg, rng)
    mech = cfg.auction.mechanism
    return {"reserve": reserve, **_outcome(cfg, values, values, mech, reserve, rng)}


def _regret(cfg: ExperimentConfig, mechanism: str, rng: np.random.Generator) -> RegretReport:
    """Ex-post regret of ``mechanism`` on the report's profiles (drawn from ``rng``)."""
    t = cfg.truthfulness
    profiles = rng.uniform(t.value_low, t.value_high, size=(t.instances, t.bidders))
    return ex_post_regret(
        profiles,
        mechanism=mechanism,
        slot_ctrs=cfg.auction.slot_ctrs,
        reserve=cfg.auction.reserve,
        coalitions=t.coalition,
        misreports=np.linspace(0.0, 2.0 * t.value_high, t.grid),
        rng=rng,
    )


MECHANISMS_BY_SLOTS = {1: ("second_price", "gsp", "vcg"), 2: ("gsp", "vcg")}  # 2: two or more
LABELS = {
    ("second_price", "truthful"): "second price, truthful bids",
    ("vcg", "truthful"): "VCG, truthful bids",
    ("gsp", "truthful"): "GSP, truthful bids (no equilibrium with 2+ slots: overstates revenue)",
    ("gsp", "eos_equilibrium"): "GSP, EOS lowest envy-free equilibrium bids (revenue = VCG's)",
}


def by_mechanism(cfg: ExperimentConfig, seeds: RunSeeds) -> list[dict[str, Any]]:
    """One row per (mechanism, bids): regret (truthful bids only) and per-auction outcomes at
    the configured reserve, all on one draw of values (streams ``mechanisms.*``)."""
    slots = len(cfg.auction.slot_ctrs)
    values = _values(cfg, seeds.generator("mechanisms.values"))
    reserve = cfg.auction.reserve
    rows = []
    for i, mech in enumerate(MECHANISMS_BY_SLOTS[min(slots, 2)]):
        regret = _regret(cfg, mech, seeds.generator("mechanisms.regret", i))
        rng = seeds.generator("mechanisms.ties", i)
        rows.append(
            {
                "mechanism": mech,
                "bids": "truthful",
                "label": LABELS[mech, "truthful"],
                "max_regret": regret.max_regret,
                "mean_regret": regret.mean_regret,
                **_outcome(cfg, values, values, mech, reserve, rng),
            }
        )
        if mech == "gsp":
            eos = gsp_envy_free_bids(values, cfg.auction.slot_ctrs, reserve)
            rows.append(
                {
                    "mechanism": mech,
                    "bids": "eos_equilibrium",
                    "label": LABELS[mech, "eos_equilibrium"],
                    "max_regret": None,  # the bids are an equilibrium, not truthful reports
                    "mean_regret": None,
                    **_outcome(cfg, values, eos, mech, reserve, rng),
                }
            )
    return rows


def build_report(cfg: ExperimentConfig) -> dict[str, Any]:
    """Compute the report (no files written)."""
    seeds = RunSeeds(cfg.seed)
    t = cfg.truthfulness
    regret = _regret(cfg, cfg.auction.mechanism, seeds.generator("truthfulness"))
    optimal = round(myerson_reserve(stats.uniform(t.value_low, t.value_high - t.value_low)), 9)
    reserves = sorted({0.0, cfg.auction.reserve, optimal})
    sim_rng = seeds.generator("simulation")
    return {
        "mechanism": cfg.auction.mechanism,
        "slot_ctrs": list(cfg.auction.slot_ctrs),
        "reserve": cfg.auction.reserve,
        "truthfulness": regret.to_dict(),
        "truthfulness_coalition": t.coalition,
        "myerson_reserve": optimal,
        "by_reserve": [_simulate(cfg, r, sim_rng) for r in reserves],
        "by_mechanism": by_mechanism(cfg, seeds),
    }


def auction_report(cfg: ExperimentConfig) -> Path:
    """Write ``report.json`` into a new run folder and print a short summary."""
    report = build_report(cfg)
    run_dir = create_run_dir(cfg)
    write_json(run_dir / "report.json", report)
    tr = report["truthfulness"]
    print(f"mechanism {report['mechanism']} slots {report['slot_ctrs']}")
    print(f"ex-post regret: max {tr['max_regret']:.6g}, mean {tr['mean_regret']:.6g}")
    truthful = " (GSP: truthful bids are no equilibrium)" if report["mechanism"] == "gsp" else ""
    print(f"by reserve, truthful bids{truthful}:")
    print(f"{'reserve':>10} {'revenue':>10} {'surplus':>10} {'welfare':>10} {'fill':>6}")
    for row in report["by_reserve"]:
        print(
            f"{row['reserve']:>10.4g} {row['revenue_per_auction']:>10.4g} "
            f"{row['advertiser_surplus_per_auction']:>10.4g} "
            f"{row['social_welfare_per_auction']:>10.4g} {row['fill_rate']:>6.3f}"
        )
    print(f"by mechanism at reserve {report['reserve']:g} (one draw of values):")
    print(f"(max regret: coalitions of {report['truthfulness_coalition']}, truthful bids only)")
    print(f"{'revenue':>10} {'surplus':>10} {'max regret':>10}  mechanism and bids")
    for row in report["by_mechanism"]:
        regret = "-" if row["max_regret"] is None else f"{row['max_regret']:.4g}"
        print(
            f"{row['revenue_per_auction']:>10.4g} {row['advertiser_surplus_per_auction']:>10.4g} "
            f"{regret:>10}  {row['label']}"
        )
    return run_dir
