"""Figures of an auction folder (``fedadagent auction``: ``report.json``).

- ``plots/mechanisms.png``: revenue and advertiser surplus per auction by mechanism at the
  configured reserve (GSP twice, labelled: at truthful bids, which are no equilibrium with
  two or more slots, and at the EOS lowest envy-free equilibrium bids), and each mechanism's
  ex-post regret at truthful bids (coalitions of ``truthfulness.coalition``).
- ``plots/reserve.png``: revenue, surplus and welfare of the configured mechanism at truthful
  bids by reserve, Myerson's optimal reserve marked.

A ``report.json`` from before ``by_mechanism`` existed gets only the reserve figure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from .report_common import PLOTS, save_png


def mechanisms_figure(rows: list[dict[str, Any]], coalition: int) -> Figure:
    """Horizontal bars per (mechanism, bids): money per auction (left), regret (right)."""
    fig = Figure(figsize=(12, 0.9 * len(rows) + 1.8))
    money, regret = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2, 1]})
    y = np.arange(len(rows))
    labels = [r["label"] for r in rows]
    rev = [r["revenue_per_auction"] for r in rows]
    surplus = [r["advertiser_surplus_per_auction"] for r in rows]
    money.barh(y - 0.2, rev, height=0.4, label="revenue", color="tab:blue")
    money.barh(y + 0.2, surplus, height=0.4, label="advertiser surplus", color="tab:green")
    for yi, v in zip(y, rev, strict=True):
        money.text(v, yi - 0.2, f" {v:.4g}", va="center", fontsize="small")
    money.set_yticks(y, labels, fontsize="small")
    money.invert_yaxis()
    money.set(title="Per auction, by mechanism and bids", xlabel="money per auction")
    money.legend(fontsize="small")
    reg = [np.nan if r["max_regret"] is None else r["max_regret"] for r in rows]
    mean = [np.nan if r["mean_regret"] is None else r["mean_regret"] for r in rows]
    regret.barh(y - 0.2, reg, height=0.4, label="max", color="tab:red")
    regret.barh(y + 0.2, mean, height=0.4, label="mean", color="tab:orange")
    for yi, r in zip(y, rows, strict=True):
        if r["max_regret"] is None:
            regret.text(0, yi, " equilibrium bids: not measured", va="center", fontsize="small")
    regret.set_yticks(y, [""] * len(rows))
    regret.invert_yaxis()
    regret.set(title=f"Ex-post regret, truthful bids (coalitions of {coalition})", xlabel="regret")
    regret.legend(fontsize="small")
    for ax in (money, regret):
        ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig


def reserve_figure(report: dict[str, Any]) -> Figure:
    rows = report["by_reserve"]
    fig = Figure(figsize=(6.4, 3.8))
    ax = fig.add_subplot()
    r = [row["reserve"] for row in rows]
    for key, label in (
        ("revenue_per_auction", "revenue"),
        ("advertiser_surplus_per_auction", "advertiser surplus"),
        ("social_welfare_per_auction", "social welfare"),
    ):
        ax.plot(r, [row[key] for row in rows], marker="o", label=label)
    ax.axvline(report["myerson_reserve"], color="grey", ls=":", label="Myerson reserve")
    bids = "truthful bids" + (" (no GSP equilibrium)" if report["mechanism"] == "gsp" else "")
    ax.set(title=f"{report['mechanism']} by reserve, {bids}", xlabel="reserve per click")
    ax.set_ylabel("money per auction")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return fig


def auction_figures(folder: Path, report: dict[str, Any], title: str) -> list[Path]:
    """Write the module's figures into ``folder/plots``; their paths."""
    out = folder / PLOTS
    paths = []
    if report.get("by_mechanism"):
        coalition = report.get("truthfulness_coalition", 1)
        fig = mechanisms_figure(report["by_mechanism"], coalition)
        paths.append(save_png(fig, out / "mechanisms.png", title))
    paths.append(save_png(reserve_figure(report), out / "reserve.png", title))
    return paths
