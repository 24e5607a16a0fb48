"""Figures and summary of a sweep folder (``fedadagent sweep``).

- ``sweep_summary.csv``: per group of points that differ only in ``seed``, the mean and 95%
  Student-t interval over seeds of each headline metric (``economy.results.sweep_summary``;
  a group with one seed has no interval and says so in ``note``).
- ``plots/sweep.png``: each headline metric against the first swept key (lines for the other
  keys' values), the band the 95% interval; baselines as horizontal lines with their band.
- ``plots/steps.png``: user welfare and the largest user epsilon per step, mean over seeds
  with its band, one line per group (``economy.results.load_sweep``).

Every figure's title names the sweep, its research question (the header of the example
config it ran, when there is one) and the base config.
"""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .report_common import PLOTS, headline, save_png
from .results import BASELINE, group_keys, load_sweep, mean_ci95, sweep_summary
from .rundir import SWEEP, RunFolderError, read_run_config, write_rows

SUMMARY_CSV = "sweep_summary.csv"
PLOT_METRICS = {  # column -> axis label
    "user_welfare": "user welfare (expected clicks)",
    "revenue": "revenue",
    "ctr": "CTR",
    "ndcg10": "NDCG@10 (last step)",
    "epsilon_max": "epsilon per user (max)",
    "tokens_paid": "tokens paid",
}
STEP_METRICS = {"user_welfare": "user welfare per step", "epsilon_per_agent": "largest epsilon"}


def question(plan: dict[str, Any]) -> str:
    """The research question of the example config a sweep ran ("" when there is none)."""
    path = Path(plan["config"]) if plan.get("config") else None
    if path is None or not path.is_file():
        return ""
    header = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.startswith("#"):
            break
        header.append(line.lstrip("# ").strip())
    for i, line in enumerate(header):
        if line.lower().startswith("research question:"):
            text = [line.split(":", 1)[1].strip()]
            for more in header[i + 1 :]:
                if not more or more.startswith("bash ") or "?" in text[-1]:
                    break
                text.append(more)
            return " ".join(text)
    return header[0] if header else ""


def sweep_title(sweep: Path, plan: dict[str, Any], first_run: Path) -> tuple[str, str]:
    """``(title, key config line)`` of a sweep: its folder name and question; the base
    config's headline and what is swept."""
    q = question(plan)
    title = f"{sweep.name}" + (f": {q}" if q else "")
    swept = ", ".join(f"{k} = {plan['grid'][k]}" for k in plan["keys"])
    base = headline(read_run_config(first_run)).split(" | ", 1)[-1]
    return title, f"base: {base}; swept: {swept}"


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _label(row: dict[str, Any], keys: list[str]) -> str:
    return ", ".join(f"{k.split('.')[-1]}={row[k]}" for k in keys) or "grid points"


def _band(ax: Axes, x: np.ndarray, lo: np.ndarray, hi: np.ndarray, color: str) -> None:
    ok = np.isfinite(lo) & np.isfinite(hi)
    if ok.any():
        ax.fill_between(x[ok], lo[ok], hi[ok], color=color, alpha=0.2, lw=0)


def _metric_axes(ax: Axes, summary: pd.DataFrame, keys: list[str], metric: str) -> None:
    """One metric against the first swept key: grid lines with bands, baselines flat."""
    is_base = summary[BASELINE].notna() if BASELINE in summary else pd.Series(False, summary.index)
    grid, bases = summary[~is_base], summary[is_base]
    axes = [k for k in keys if k != BASELINE]
    x_key, series = (axes[0], axes[1:]) if axes else (None, [])
    xs = list(dict.fromkeys(grid[x_key])) if x_key else ["base config"]
    numeric = x_key is not None and all(_is_number(v) for v in xs)
    colors = iter(f"C{i}" for i in range(100))
    groups = grid.groupby(series, sort=False, dropna=False) if series else [((), grid)]
    for values, g in groups:
        color = next(colors)
        pos = (
            np.array([float(v) for v in g[x_key]])
            if numeric
            else np.array([xs.index(v) if x_key else 0 for v in (g[x_key] if x_key else [0])])
        )
        order = np.argsort(pos)
        y, lo, hi = (g[f"{metric}_{s}"].to_numpy(float)[order] for s in ("mean", "lo", "hi"))
        label = _label(dict(zip(series, np.atleast_1d(values), strict=False)), series)
        ax.plot(pos[order], y, marker="o", color=color, label=label)
        _band(ax, pos[order], lo, hi, color)
    for row in bases.to_dict("records"):
        color = next(colors)
        mean, lo, hi = (row[f"{metric}_{s}"] for s in ("mean", "lo", "hi"))
        if not math.isfinite(mean):
            continue
        ax.axhline(mean, color=color, ls="--", label=f"baseline {row[BASELINE]}")
        if math.isfinite(lo) and math.isfinite(hi):
            ax.axhspan(lo, hi, color=color, alpha=0.12, lw=0)
    if not numeric:
        ax.set_xticks(range(len(xs)), [str(v) for v in xs])
    ax.set(xlabel=x_key or "", ylabel=PLOT_METRICS[metric])
    ax.grid(alpha=0.3)


def metrics_figure(summary: pd.DataFrame, keys: list[str], note: str) -> Figure:
    """Headline metrics against the first swept key (module docstring)."""
    metrics = [m for m in PLOT_METRICS if summary[f"{m}_mean"].notna().any()]
    cols = 3
    rows = max(1, math.ceil(len(metrics) / cols))
    fig = Figure(figsize=(5 * cols, 3.6 * rows))
    for i, metric in enumerate(metrics):
        ax = fig.add_subplot(rows, cols, i + 1)
        _metric_axes(ax, summary, keys, metric)
        ax.set_title(PLOT_METRICS[metric], fontsize="medium")
        if i == 0:
            ax.legend(fontsize="x-small")
    fig.text(0.5, -0.02, note, ha="center", fontsize="small")
    fig.tight_layout()
    return fig


def steps_figure(per_step: pd.DataFrame, keys: list[str]) -> Figure:
    """Per-step metrics: mean over the seeds of each group, with the 95% band."""
    fig = Figure(figsize=(12, 4))
    panels = fig.subplots(1, len(STEP_METRICS))
    groups = per_step.groupby(keys, sort=False, dropna=False) if keys else [((), per_step)]
    for i, (values, g) in enumerate(groups):
        named = dict(zip(keys, np.atleast_1d(values), strict=False))
        label = (
            f"baseline {named[BASELINE]}"
            if isinstance(named.get(BASELINE), str)
            else _label(named, [k for k in keys if k != BASELINE])
        )
        for ax, metric in zip(panels, STEP_METRICS, strict=True):
            if metric not in g:
                continue
            cis = [mean_ci95(s[metric]) for _, s in g.groupby("step")]
            steps = np.array(sorted(g["step"].unique()), dtype=float) + 1
            y = np.array([c["mean"] for c in cis])
            ax.plot(steps, y, color=f"C{i}", label=label)
            lo, hi = (np.array([c[b] for c in cis], dtype=float) for b in ("lo", "hi"))
            _band(ax, steps, lo, hi, f"C{i}")
    for ax, (metric, what) in zip(panels, STEP_METRICS.items(), strict=True):
        ax.set(title=what, xlabel="step", ylabel=metric)
        ax.grid(alpha=0.3)
    panels[0].legend(fontsize="x-small")
    fig.tight_layout()
    return fig


def _note(summary: pd.DataFrame) -> str:
    n = summary["n"].tolist()
    text = f"mean and 95% Student-t interval over seeds ({min(n)}-{max(n)} seeds per point)"
    if min(n) < 2:
        text += "; points with one seed have no band"
    return text


def sweep_report(sweep: Path) -> tuple[str, str, pd.DataFrame, list[Path]]:
    """Write ``sweep_summary.csv`` and the figures; returns the title, key config line, the
    summary and the figure paths.

    Raises:
        RunFolderError: no point of the sweep is done yet.
    """
    plan = json.loads((sweep / SWEEP).read_text())
    summary = sweep_summary(sweep)
    if summary.empty:
        raise RunFolderError(f"{sweep}: no point of the sweep is done yet: nothing to report")
    write_rows(sweep / SUMMARY_CSV, summary.to_dict("records"))
    keys = group_keys(sweep)
    first = sweep / plan["points"][0]["run_dir"]
    title, config_line = sweep_title(sweep, plan, first)
    wrapped = "\n".join(textwrap.wrap(f"{title}\n{config_line}", 150))
    out = sweep / PLOTS
    paths = [save_png(metrics_figure(summary, keys, _note(summary)), out / "sweep.png", wrapped)]
    per_step = load_sweep(sweep)
    per_step = per_step[per_step["status"] == "done"]
    if not per_step.empty:
        for k in keys:  # arrays (slot_ctrs) group by their JSON text
            per_step[k] = per_step[k].map(lambda x: json.dumps(x) if isinstance(x, list) else x)
        paths.append(save_png(steps_figure(per_step, keys), out / "steps.png", wrapped))
    return title, config_line, summary, paths
