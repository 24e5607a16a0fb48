"""Figure of an offline-evaluation folder (``fedadagent run`` with ``offline.dataset``).

``plots/estimates.png``: the agents' policy value by estimator (IPW, DM, DR) and the
uniform random policy's check (IPW, DR), each with its 95% normal interval (estimate +-
1.96 standard errors; ``summary.json`` holds the standard errors), against the logging
policy's on-policy CTR (and, for the check, the random log's).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from .report_common import PLOTS, save_png

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def estimate_rows(summary: dict[str, Any]) -> list[tuple[str, str, float, float, float, float]]:
    """``(policy, estimator, value, stderr, lo, hi)`` per estimate in ``summary.json``."""
    rows = []
    for policy, block in (
        (f"agents ({summary['agent_policy']['policy']})", summary["agent_policy"]),
        ("uniform random (check)", summary["uniform_random_check"]),
    ):
        for est in ("ipw", "dm", "dr"):
            if est in block:
                v, se = block[est]["value"], block[est]["stderr"]
                rows.append((policy, est.upper(), v, se, v - Z95 * se, v + Z95 * se))
    return rows


def estimates_figure(summary: dict[str, Any]) -> Figure:
    rows = estimate_rows(summary)
    fig = Figure(figsize=(7.5, 3.8))
    ax = fig.add_subplot()
    y = np.arange(len(rows))
    values = np.array([r[2] for r in rows])
    half = np.array([Z95 * r[3] for r in rows])
    colors = ["tab:blue" if r[0].startswith("agents") else "tab:grey" for r in rows]
    for yi, v, h, c in zip(y, values, half, colors, strict=True):
        ax.errorbar(v, yi, xerr=h, fmt="o", color=c, capsize=4)
    ax.axvline(summary["on_policy_ctr"], color="tab:red", ls="--", label="logging policy CTR")
    random_ctr = summary["uniform_random_check"].get("on_policy_ctr_of_random_log")
    if random_ctr is not None:
        ax.axvline(random_ctr, color="tab:grey", ls=":", label="random log CTR")
    ax.set_yticks(y, [f"{r[0]}: {r[1]}" for r in rows], fontsize="small")
    ax.invert_yaxis()
    ax.set(title="Policy value estimates, 95% intervals (+-1.96 SE)", xlabel="clicks per round")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3, axis="x")
    return fig


def offline_figures(folder: Path, summary: dict[str, Any], title: str) -> list[Path]:
    return [save_png(estimates_figure(summary), folder / PLOTS / "estimates.png", title)]
