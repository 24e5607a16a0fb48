"""Shared pieces of ``fedadagent report``: PNG saving and the title line of every figure.

Every figure carries the folder's run name and key config in its suptitle
(:func:`headline`), so a PNG copied out of its folder still says what it shows.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .config import ExperimentConfig
from .rundir import atomic_write

PLOTS = "plots"  # PNGs of a report (economy.rundir.PLOTS)
HTML = "report.html"  # the self-contained report of a folder


def _budget(cfg: ExperimentConfig) -> str:
    b = cfg.privacy.epsilon_budget
    return "inf" if math.isinf(b) else f"{b:g}"


def headline(cfg: ExperimentConfig, kind: str = "market") -> str:
    """``name | key config`` of a folder of ``kind`` (market, auction, offline).

    Example:
        >>> from economy.config import parse_config
        >>> headline(parse_config({"name": "q", "seed": 3})).split(", ")[:3]
        ['q | scorer lm (minilm)', '200 users', '20 steps']
    """
    if kind == "auction":
        a, t = cfg.auction, cfg.truthfulness
        return (
            f"{cfg.name} | {a.mechanism}, slots {list(a.slot_ctrs)}, reserve {a.reserve:g}, "
            f"{t.bidders} bidders, coalition {t.coalition}, seed {cfg.seed}"
        )
    if kind == "offline":
        o = cfg.offline
        return (
            f"{cfg.name} | {o.dataset} {o.behavior_policy} log, campaign {o.campaign}, policy "
            f"{o.policy}, seed {cfg.seed}"
        )
    f = cfg.federated
    scorer = cfg.agents.scorer + (f" ({cfg.agents.model})" if cfg.agents.scorer == "lm" else "")
    fed = f"federated every {f.every} (noise {f.noise_multiplier:g})" if f.every else "no rounds"
    return (
        f"{cfg.name} | scorer {scorer}, {cfg.market.users} users, {cfg.market.steps} steps, "
        f"{fed}, epsilon budget {_budget(cfg)}, seed {cfg.seed}"
    )


def save_png(fig: Figure, path: Path, title: str) -> Path:
    """Put ``title`` (the headline) above ``fig`` and write it to ``path`` as a PNG."""
    fig.suptitle(title, fontsize="small", y=1.0, va="bottom")
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write(path, buf.getvalue())
    return path
