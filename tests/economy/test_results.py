"""Results to pandas: metrics.parquet beside the CSV, load_run / load_sweep round trips, the
95% t-interval over seeds."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import economy
from economy.config import parse_config
from economy.results import METRICS_PARQUET, mean_ci95, sweep_points, sweep_summary
from economy.rundir import METRICS, RunFolderError, create_run_dir
from economy.runner import run_market
from economy.sweep import create_sweep, run_sweep

SMALL = {
    "market": {"users": 30, "advertisers": 4, "steps": 3, "impressions_per_user": 2},
    "agents": {"scorer": "category"},
    "federated": {"every": 0},
}
FLAT = {"market.users": 30, "market.advertisers": 4, "market.steps": 3}
FLAT |= {"market.impressions_per_user": 2, "agents.scorer": "category", "federated.every": 0}


def test_load_run_round_trips_the_csv_and_parquet_follows_checkpoints(tmp_path):
    seen = []

    def on_step(state):  # the checkpoint (and its parquet) is written before on_step
        seen.append(len(economy.load_run(run_dir)))

    cfg = parse_config({**SMALL, "output_dir": str(tmp_path)})
    run_dir = create_run_dir(cfg)
    run_market(cfg, run_dir, on_step=on_step, checkpoint_every=1)
    assert seen == [1, 2, 2]  # steps 1, 2 checkpointed; the last one is written at the stop
    df = economy.load_run(run_dir)
    csv = pd.read_csv(run_dir / METRICS)
    pd.testing.assert_frame_equal(df, csv)  # same columns, values and dtypes
    assert df["step"].tolist() == [0, 1, 2]
    (run_dir / METRICS_PARQUET).unlink()  # older runs: read from the CSV
    pd.testing.assert_frame_equal(economy.load_run(run_dir), csv)


def test_load_run_refuses_a_folder_without_metrics(tmp_path):
    with pytest.raises(RunFolderError, match=r"no metrics\.parquet or metrics\.csv"):
        economy.load_run(tmp_path)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("s")
    folder = create_sweep(
        None, FLAT | {"output_dir": str(out)}, {"auction.reserve": [0.0, 0.3], "seed": [1, 2, 3]}
    )
    run_sweep(folder, workers=2)
    return folder


def test_load_sweep_is_every_points_load_run(sweep):
    df = economy.load_sweep(sweep)
    points = sweep_points(sweep)
    assert len(df) == 6 * 3  # six points of three steps
    assert list(df.columns[:5]) == ["point", "auction.reserve", "seed", "run_dir", "status"]
    for p in points.to_dict("records"):
        part = df[df["point"] == p["point"]].drop(columns=df.columns[:5]).reset_index(drop=True)
        pd.testing.assert_frame_equal(part, economy.load_run(sweep / p["run_dir"]))
        assert (df[df["point"] == p["point"]]["seed"] == p["seed"]).all()


def test_sweep_summary_is_the_t_interval_over_seeds(sweep):
    summary = sweep_summary(sweep)
    points = sweep_points(sweep)
    assert summary["auction.reserve"].tolist() == [0.0, 0.3] and summary["n"].tolist() == [3, 3]
    for row in summary.to_dict("records"):
        w = points[points["auction.reserve"] == row["auction.reserve"]]["user_welfare"]
        w = w.to_numpy(float)
        half = 4.302652729911275 * w.std(ddof=1) / math.sqrt(3)  # t(0.975, 2), from a table
        assert row["user_welfare_mean"] == pytest.approx(w.mean())
        assert row["user_welfare_hi"] - row["user_welfare_mean"] == pytest.approx(half)
        assert row["note"] == ""


def test_mean_ci95_hand_values():
    ci = mean_ci95([1.0, 2.0, 3.0])  # s = 1, t(0.975, 2) = 4.3027
    assert (ci["mean"], ci["n"]) == (2.0, 3)
    assert ci["hi"] - 2.0 == pytest.approx(4.302652729911275 / math.sqrt(3))
    one = mean_ci95([5.0])
    assert one["mean"] == 5.0 and math.isnan(one["lo"]) and math.isnan(one["hi"])
    assert mean_ci95([np.nan, np.inf])["n"] == 0


samples = st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=30)


@given(samples, st.floats(-1e6, 1e6))
def test_interval_holds_the_mean_and_moves_with_a_shift(xs, shift):
    ci = mean_ci95(xs)
    assert ci["lo"] <= ci["mean"] <= ci["hi"]
    moved = mean_ci95([x + shift for x in xs])
    width = ci["hi"] - ci["lo"]
    assert moved["hi"] - moved["lo"] == pytest.approx(width, abs=1e-6 * (1 + abs(shift)))
