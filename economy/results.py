"""Results as pandas DataFrames: a run's per-step metrics, a sweep's points and their CIs.

- :func:`load_run` — one row per finished step of a market run (``metrics.parquet``, or
  ``metrics.csv`` for runs from before it existed).
- :func:`load_sweep` — the per-step metrics of every point of a sweep, one row per (point,
  step), with the point's grid values (``baseline`` names a baseline point) in front.
- :func:`sweep_points` — one row per point: grid values, status and headline metrics
  (``index.json``).
- :func:`sweep_summary` — per group of points that differ only in ``seed``: mean and 95%
  Student-t interval of each headline metric over the seeds (:func:`mean_ci95`).

``metrics.parquet`` is written by the runner (:func:`write_metrics_parquet`) with pyarrow,
atomically, at every checkpoint and when the run stops, beside ``metrics.csv``.

Example:
    >>> round(mean_ci95([1.0, 2.0, 3.0])["hi"], 4)  # 2 + t(0.975, 2) x 1 / sqrt(3)
    4.4841
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from scipy import stats

from .rundir import METRICS, SWEEP, RunFolderError, atomic_write

METRICS_PARQUET = "metrics.parquet"  # the same rows as metrics.csv, typed (pyarrow)
INDEX_JSON = "index.json"  # economy.sweep's index of points
SEED, BASELINE = "seed", "baseline"
# index.json columns summarised over seeds (economy.sweep's headline metrics)
SUMMARY_METRICS = (
    "user_welfare",
    "revenue",
    "social_welfare",
    "ctr",
    "ndcg10",
    "epsilon_max",
    "tokens_paid",
)
ONE_SEED = "one seed: no interval"


def write_metrics_parquet(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write metric rows (one dict per step, same keys) to ``path`` as Parquet, atomically.

    No rows: nothing is written (a run stopped before its first step has no metrics).
    """
    if not rows:
        return
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    atomic_write(path, buf.getvalue())


def load_run(run_dir: str | Path) -> pd.DataFrame:
    """The per-step metrics of a market run, one row per finished step (``step`` from 0).

    Reads ``metrics.parquet``; a run folder without it (older runs) is read from
    ``metrics.csv``. ``df.attrs["run_dir"]`` is the folder.

    Raises:
        RunFolderError: the folder holds neither file.
    """
    run = Path(run_dir)
    if (run / METRICS_PARQUET).is_file():
        df = pq.read_table(run / METRICS_PARQUET).to_pandas()
    elif (run / METRICS).is_file():
        df = pd.read_csv(run / METRICS) if (run / METRICS).stat().st_size else pd.DataFrame()
    else:
        raise RunFolderError(
            f"{run} has no {METRICS_PARQUET} or {METRICS}: not a market run (or it never started)"
        )
    df.attrs["run_dir"] = str(run)
    return df


def _plan(sweep: Path) -> dict[str, Any]:
    if not (sweep / SWEEP).is_file():
        raise RunFolderError(f"{sweep} is not a sweep folder: it has no {SWEEP}")
    return json.loads((sweep / SWEEP).read_text())


def sweep_points(sweep_dir: str | Path) -> pd.DataFrame:
    """One row per point of a sweep: ``point``, the grid values, ``run_dir``, ``status``, the
    headline metrics (None until the point is done) and ``error`` (``index.json``)."""
    sweep = Path(sweep_dir)
    keys = _plan(sweep)["keys"]
    rows = json.loads((sweep / INDEX_JSON).read_text())
    df = pd.DataFrame(rows)
    for k in keys:  # grid values as given (1 stays 1, None stays None, not NaN)
        df[k] = pd.Series([r.get(k) for r in rows], index=df.index, dtype=object)
    return df


def load_sweep(sweep_dir: str | Path) -> pd.DataFrame:
    """Per-step metrics of every point of a sweep that has any, one row per (point, step):
    ``point``, the grid's keys (``baseline``: the baseline's name, None on grid points),
    ``run_dir``, ``status``, then the run's metric columns."""
    sweep = Path(sweep_dir)
    keys = _plan(sweep)["keys"]
    frames = []
    for p in sweep_points(sweep).to_dict("records"):
        run = sweep / p["run_dir"]
        try:
            df = load_run(run)
        except RunFolderError:
            continue  # a pending point: no steps yet
        front = {"point": p["point"], **{k: p.get(k) for k in keys}, "run_dir": p["run_dir"]}
        front["status"] = p["status"]
        head = pd.DataFrame({k: [v] * len(df) for k, v in front.items()}, index=df.index)
        frames.append(pd.concat([head, df], axis=1))
    if not frames:
        return pd.DataFrame(columns=["point", *keys, "run_dir", "status"])
    out = pd.concat(frames, ignore_index=True)
    out.attrs["sweep_dir"] = str(sweep)
    return out


def mean_ci95(values: Any) -> dict[str, float | int]:
    """Mean and two-sided 95% Student-t interval of the finite entries of ``values``.

    ``{"mean", "lo", "hi", "n"}``; with fewer than two values ``lo`` and ``hi`` are NaN (one
    seed gives no interval).

    Example:
        >>> ci = mean_ci95([1.0, 2.0, 3.0])
        >>> ci["mean"], round(ci["hi"] - ci["mean"], 4)  # t(0.975, 2) = 4.3027, s = 1
        (2.0, 2.4841)
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"mean": math.nan, "lo": math.nan, "hi": math.nan, "n": 0}
    m = float(v.mean())
    if v.size < 2:
        return {"mean": m, "lo": math.nan, "hi": math.nan, "n": 1}
    half = float(stats.t.ppf(0.975, v.size - 1)) * float(v.std(ddof=1)) / math.sqrt(v.size)
    return {"mean": m, "lo": m - half, "hi": m + half, "n": int(v.size)}


def group_keys(sweep_dir: str | Path) -> list[str]:
    """The grid keys that define a group of points: every key but ``seed``."""
    return [k for k in _plan(Path(sweep_dir))["keys"] if k != SEED]


def sweep_summary(sweep_dir: str | Path) -> pd.DataFrame:
    """Per group of done points (same grid values but ``seed``): ``n`` seeds and, for each
    headline metric ``m``, ``m_mean``, ``m_lo``, ``m_hi`` (95% t-interval over the seeds);
    ``note`` says when a group has one seed and so no interval. Groups in plan order."""
    points = sweep_points(sweep_dir)
    keys = group_keys(sweep_dir)
    done = points[points["status"] == "done"]
    if done.empty:
        return pd.DataFrame(columns=[*keys, "n"])
    # group by the values' JSON text: None, 1 and [1.0, 0.5] stay themselves (pandas would
    # make NaN, 1.0 and an unhashable key of them)
    label = done[keys].apply(lambda r: json.dumps(r.tolist()), axis=1) if keys else None
    rows = []
    groups = done.groupby(label, sort=False) if keys else [((), done)]
    for _, g in groups:
        row: dict[str, Any] = {k: g[k].iloc[0] for k in keys}
        row["n"] = len(g)
        for m in SUMMARY_METRICS:
            ci = mean_ci95(pd.to_numeric(g[m], errors="coerce")) if m in g else mean_ci95([])
            row |= {f"{m}_mean": ci["mean"], f"{m}_lo": ci["lo"], f"{m}_hi": ci["hi"]}
        row["note"] = ONE_SEED if len(g) < 2 else ""
        rows.append(row)
    out = pd.DataFrame(rows)
    for k in keys:
        out[k] = pd.Series([r[k] for r in rows], dtype=object)
    return out
