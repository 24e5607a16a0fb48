"""The market's fast path gives the numbers it gave before it was made faster (issue 18), and
what it keeps between steps (the run's tables, the estimator's predictions) follows what it
is derived from.

``fast_path_metrics.json`` holds every step's metrics (floats as ``float.hex``, timings
left out) of three small runs, recorded at commit de79cc1, before the fast-path work. A
change that is meant to change the market's numbers re-records them and says why in its
commit message::

    bash .ci/env python tests/economy/test_economy_fast_path.py --record
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

GOLDEN = Path(__file__).with_name("fast_path_metrics.json")
TIMINGS = {"fast_path_us_per_impression", "fed_seconds"}
CATEGORY = {"federated": {"every": 0}, "agents": {"scorer": "category"}}
CONFIGS = {
    "second_price": {
        "seed": 3,
        "market": {"users": 300, "advertisers": 30, "steps": 7, "impressions_per_user": 4},
        "social": {"trend_every": 2},
        **CATEGORY,
    },
    "gsp_reserve_tight_budgets": {
        "seed": 11,
        "market": {"users": 250, "advertisers": 25, "categories": 5, "steps": 6},
        "auction": {"mechanism": "gsp", "slot_ctrs": [1.0, 0.6, 0.3], "reserve": 0.05},
        "advertisers": {"budget_per_step": 0.5, "max_step_spend": 1.5},
        "social": {"trend_every": 3, "gossip_rounds": 4},
        **CATEGORY,
    },
    "vcg_equal_values_ties": {
        "seed": 5,
        "market": {"users": 200, "advertisers": 12, "categories": 3, "steps": 5},
        "auction": {"mechanism": "vcg", "slot_ctrs": [1.0, 0.5]},
        "advertisers": {
            "budget_per_step": 0.2,
            "value_sigma": 0.0,
            "strategies": {"truthful": 1.0},
        },
        "social": {"trend_every": 1},
        **CATEGORY,
    },
}


def _metrics(cfg: dict) -> list[dict]:
    """Every step's metrics of the run ``cfg``, floats as exact hex strings."""
    from economy.config import parse_config
    from economy.market import simulate

    return [
        {
            key: float(value).hex() if isinstance(value, float) else value
            for key, value in dataclasses.asdict(m).items()
            if key not in TIMINGS
        }
        for m in simulate(parse_config(cfg))
    ]


def test_the_fast_path_gives_the_numbers_recorded_before_it_was_changed():
    want = json.loads(GOLDEN.read_text())["metrics"]
    assert set(want) == set(CONFIGS)
    for name, cfg in CONFIGS.items():
        got = _metrics(cfg)
        assert len(got) == len(want[name])
        for step, (have, expected) in enumerate(zip(got, want[name], strict=True)):
            assert have == expected, f"{name}, step {step}"


def test_a_run_reads_its_social_graph_once(monkeypatch):
    import graphs.topology
    from economy.config import parse_config
    from economy.market import simulate

    calls = []
    original = graphs.topology.edge_arrays
    monkeypatch.setattr(graphs.topology, "edge_arrays", lambda G: calls.append(G) or original(G))
    cfg = parse_config({**CONFIGS["second_price"], "social": {"trend_every": 1}})
    metrics = simulate(cfg)
    assert all(m.gossip_bytes > 0 for m in metrics)  # every step gossiped...
    assert len(calls) == 1  # ...over one topology


counts = st.integers(1, 6).flatmap(
    lambda users: st.tuples(
        st.just(users),
        st.lists(
            st.tuples(
                st.lists(st.tuples(st.integers(0, users - 1), st.integers(0, 3), st.booleans())),
                st.booleans(),  # then set a new prior
            ),
            max_size=5,
        ),
    )
)


@settings(max_examples=60, deadline=None)
@given(case=counts, seed=st.integers(0, 1_000))
def test_category_predictions_follow_every_observation_and_prior(case, seed):
    """``predict_all`` equals ``predict`` of every user after any sequence of observations
    and priors, and the counts equal adding impressions one at a time (``np.add.at``)."""
    from economy.ctr_estimator import CategoryCTR

    users, batches = case
    gen = np.random.default_rng(seed)
    est = CategoryCTR(users, 4, prior_ctr=0.05)
    views, clicks = np.zeros((users, 4)), np.zeros((users, 4))
    for batch, new_prior in batches:
        u = np.array([b[0] for b in batch], dtype=np.int64)
        c = np.array([b[1] for b in batch], dtype=np.int64)
        hit = np.array([b[2] for b in batch], dtype=bool)
        est.predict_all()  # kept from before: must not survive the observation
        est.observe(u, c, hit)
        np.add.at(views, (u, c), 1.0)
        np.add.at(clicks, (u, c), hit.astype(float))
        if new_prior:
            est.predict_all()
            est.set_prior(gen.uniform(0.0, 0.2, (users, 4)))
        np.testing.assert_array_equal(est.predict_all(), est.predict(np.arange(users)))
    prior = est.__getstate__()["_prior"]
    np.testing.assert_array_equal(est.predict_all(), (clicks + prior * 20.0) / (views + 20.0))


def test_a_checkpoint_keeps_counts_and_prior_not_the_prediction_table():
    from economy.ctr_estimator import CategoryCTR

    est = CategoryCTR(3, 2, prior_ctr=0.1)
    est.observe(np.array([0, 2]), np.array([1, 1]), np.array([True, False]))
    table = est.predict_all().copy()
    state = est.__getstate__()
    assert sorted(state) == ["_clicks", "_n", "_prior", "_views"]
    back = CategoryCTR.__new__(CategoryCTR)
    back.__setstate__(state)
    np.testing.assert_array_equal(back.predict_all(), table)


def _record() -> None:
    """Write ``fast_path_metrics.json`` from this checkout (see the module doc)."""
    import subprocess

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    metrics = {name: _metrics(cfg) for name, cfg in CONFIGS.items()}
    GOLDEN.write_text(json.dumps({"commit": commit, "metrics": metrics}, indent=1) + "\n")
    print(f"wrote {GOLDEN} at {commit}")


if __name__ == "__main__" and sys.argv[1:] == ["--record"]:
    sys.path.insert(0, str(Path.cwd()))
    _record()
