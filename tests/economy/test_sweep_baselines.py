"""Sweep baselines (``--grid baseline=...``) and the example sweeps' baselines and seed axes."""

from __future__ import annotations

import itertools
import math
import shlex
from pathlib import Path

import pytest

from economy.config import ConfigError, load_config
from economy.overrides import parse_grid
from economy.sweep import BASELINES, plan_points

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
LM = {"agents.scorer": "lm", "federated.every": 5, "privacy.epsilon_budget": math.inf}


def test_baseline_points_per_seed_beside_the_grid():
    grid = {"federated.noise_multiplier": [0.5, 2.0], "baseline": ["no-federation", "no-dp"]}
    grid["seed"] = [1, 2]
    points = plan_points(None, dict(LM), grid)
    values = [v for v, _ in points]
    assert values[:4] == [
        {"federated.noise_multiplier": 0.5, "seed": 1},
        {"federated.noise_multiplier": 0.5, "seed": 2},
        {"federated.noise_multiplier": 2.0, "seed": 1},
        {"federated.noise_multiplier": 2.0, "seed": 2},
    ]
    assert values[4:] == [
        {"baseline": "no-federation", "seed": 1},
        {"baseline": "no-federation", "seed": 2},
        {"baseline": "no-dp", "seed": 1},
        {"baseline": "no-dp", "seed": 2},
    ]
    no_fed, no_dp = points[4][1], points[6][1]
    assert no_fed.federated.every == 0 and no_fed.federated.noise_multiplier == 1.0  # base
    assert no_dp.federated.noise_multiplier == 0 and not no_dp.social.trend_private
    assert [c.seed for _, c in points[4:]] == [1, 2, 1, 2]


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ({"seed": [1], "baseline": ["none-such"]}, "unknown; allowed: count-scorer, no-dp"),
        ({"social.gossip_rounds": [0, 1], "baseline": ["no-gossip"]}, "grid sweeps already"),
        ({"seed": [1], "baseline": ["count-scorer"]}, "changes nothing here"),
    ],
)
def test_bad_baselines_are_named(grid, message):
    base = {"agents.scorer": "category", "federated.every": 0}
    with pytest.raises(ConfigError, match=message):
        plan_points(None, base, grid)


def sweep_grids(path: Path) -> list[dict]:
    """The ``--grid`` values of every sweep command in an example's header."""
    grids = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("# ")
        if text.startswith("bash .ci/env fedadagent sweep"):
            argv = shlex.split(text)
            grids.append(dict(parse_grid(v) for f, v in itertools.pairwise(argv) if f == "--grid"))
    return grids


SWEEPS = {p.name: sweep_grids(p) for p in sorted(EXAMPLES.glob("*.toml")) if sweep_grids(p)}


@pytest.mark.parametrize("name", sorted(SWEEPS))
def test_every_example_sweep_has_seeds_and_its_baselines(name):
    for grid in SWEEPS[name]:
        assert len(grid["seed"]) >= 3, "seeds as a grid axis, for a 95% interval"
        base = load_config(EXAMPLES / name)
        # the reference point without the mechanism the question is about is in every sweep:
        # as a named baseline, or as a grid value (gossip_rounds = 0)
        has = set(grid.get("baseline", []))
        if base.social.gossip_rounds and "social.gossip_rounds" not in grid:
            assert "no-gossip" in has or name != "gossip_only.toml"
        if base.federated.every:
            assert "no-federation" in has
        if name == "gossip_only.toml":
            assert 0 in grid["social.gossip_rounds"]
        if name == "dp_tradeoff.toml":
            assert "no-dp" in has
        assert set(has) <= set(BASELINES)


def test_the_examples_with_sweeps_are_the_expected_ones():
    assert {"dp_tradeoff.toml", "gossip_only.toml", "lolafl_vs_fedavg.toml"} <= set(SWEEPS)
