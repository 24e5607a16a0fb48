"""The market loop and the CLI end to end, on a reduced size."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from dp_accounting.pld import privacy_loss_distribution as pld

from economy.cli import main
from economy.config import ConfigError, load_config, parse_config
from economy.market import run_steps, simulate, start_market, summarize

# the click-count scorer, no federated rounds: the market loop alone (test_economy_federated
# runs the whole system)
COUNTS = {"agents": {"scorer": "category"}, "federated": {"every": 0}}
SMALL = {
    "seed": 5,
    "market": {"users": 40, "advertisers": 6, "steps": 6, "impressions_per_user": 3},
    "advertisers": {"budget_per_step": 0.5},
    **COUNTS,
}


def test_same_seed_same_summary():
    cfg = parse_config(SMALL)
    assert summarize(cfg, simulate(cfg)) == summarize(cfg, simulate(cfg))


def test_different_seed_different_numbers():
    a, b = parse_config(SMALL), parse_config({**SMALL, "seed": 6})
    assert summarize(a, simulate(a))["totals"] != summarize(b, simulate(b))["totals"]


def test_budgets_never_overspent_and_welfare_identity():
    cfg = parse_config(SMALL)
    metrics = simulate(cfg)
    total_budget = cfg.advertisers.budget_per_step * cfg.market.steps * cfg.market.advertisers
    assert sum(m.revenue for m in metrics) <= total_budget + 1e-9
    for m in metrics:
        assert np.isclose(m.social_welfare, m.revenue + m.advertiser_surplus)
        assert m.filled_slots <= m.impressions


def test_devices_learn_relevance():
    cfg = parse_config(
        {
            "seed": 1,
            "market": {"users": 200, "steps": 15},
            "advertisers": {"budget_per_step": 50},
            **COUNTS,
        }
    )
    metrics = simulate(cfg)
    early = np.mean([m.user_welfare for m in metrics[:3]])
    late = np.mean([m.user_welfare for m in metrics[-3:]])
    assert late > 1.2 * early  # the private CTR estimates steer ads to interested users


def test_cli_run_writes_run_folder(tmp_path, capsys):
    args = ["run", "-o", str(tmp_path), "-c", "name=t", "-c", "market.users=30"]
    args += ["-c", "market.steps=3", "-c", "agents.scorer=category", "-c", "federated.every=0"]
    assert main(args) == 0
    (run,) = tmp_path.iterdir()
    assert {p.name for p in run.iterdir()} >= {"config.toml", "metrics.csv", "summary.json"}
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert len(rows) == 3
    assert json.loads((run / "summary.json").read_text())["steps"] == 3
    assert str(run) in capsys.readouterr().out


def test_cli_auction_report(tmp_path):
    args = ["auction", "-o", str(tmp_path), "-c", "truthfulness.instances=20"]
    args += ["-c", "truthfulness.simulate_auctions=2000", "-c", "auction.reserve=0.2"]
    assert main(args) == 0
    (run,) = tmp_path.iterdir()
    report = json.loads((run / "report.json").read_text())
    assert report["truthfulness"]["max_regret"] == 0.0  # second price is truthful
    assert report["myerson_reserve"] == 0.5
    assert [r["reserve"] for r in report["by_reserve"]] == [0.0, 0.2, 0.5]


def test_cli_auction_report_finds_gsp_deviation(tmp_path):
    args = ["auction", "-o", str(tmp_path), "-c", "auction.mechanism=gsp"]
    args += ["-c", "auction.slot_ctrs=[1.0, 0.9]", "-c", "truthfulness.instances=50"]
    args += ["-c", "truthfulness.simulate_auctions=1000"]
    assert main(args) == 0
    (run,) = tmp_path.iterdir()
    assert json.loads((run / "report.json").read_text())["truthfulness"]["max_regret"] > 0


def test_trend_gossip_accounting():
    """Each share is one Laplace release per user (gossip rounds are post-processing):
    epsilon after k shares is the PLD composition of k Laplace(2 / eps) releases."""
    social = {"gossip_rounds": 3, "trend_epsilon": 0.5, "trend_every": 2}
    cfg = parse_config({**SMALL, "social": social, "privacy": {"epsilon_budget": float("inf")}})
    metrics = simulate(cfg)
    shares = [m.step % 2 == 0 for m in metrics]
    assert [m.gossip_bytes > 0 for m in metrics] == shares
    k = sum(shares)
    one = pld.from_laplace_mechanism(1 / 0.5, sensitivity=1.0, value_discretization_interval=1e-3)
    expected = one.self_compose(k).get_epsilon_for_delta(cfg.privacy.delta)
    assert metrics[-1].epsilon_per_agent == pytest.approx(expected, rel=1e-6)
    assert metrics[-1].epsilon_per_agent < k * 0.5 + 1e-9  # never above basic composition
    assert metrics[-1].epsilon_median == metrics[-1].epsilon_per_agent  # everyone shared
    off = parse_config({**SMALL, "social": {"gossip_rounds": 0}})
    assert all(m.gossip_bytes == 0 and m.epsilon_per_agent == 0 for m in simulate(off))


def test_trend_shares_stop_at_the_budget_and_raw_shares_need_an_infinite_one():
    social = {"gossip_rounds": 2, "trend_epsilon": 1.0, "trend_every": 1}
    cfg = parse_config({**SMALL, "social": social, "privacy": {"epsilon_budget": 2.5}})
    state = start_market(cfg)
    run_steps(state)
    summary = summarize(cfg, state.metrics, privacy=state.privacy)
    p = summary["privacy"]
    assert p["epsilon_max"] <= 2.5 and p["budget"] == 2.5
    uses = p["uses"]["trend share (Laplace)"]
    assert 0 < uses < cfg.market.users * cfg.market.steps
    assert p["refused"]["trend share (Laplace)"] == cfg.market.users * cfg.market.steps - uses
    with pytest.raises(ConfigError, match=r"social\.trend_private"):
        parse_config({"social": {"trend_private": False}})
    raw = parse_config(
        {**SMALL, "social": {"trend_private": False}, "privacy": {"epsilon_budget": float("inf")}}
    )
    assert simulate(raw)[-1].epsilon_per_agent == float("inf")  # reported as it is


def test_world_has_homophilous_social_graph():
    from economy.seeding import RunSeeds
    from economy.world import make_world
    from graphs import homophily

    cfg = parse_config({"market": {"users": 300}, "social": {"homophily": 0.95}, **COUNTS})
    world = make_world(cfg, RunSeeds(0))
    G = world.graph
    assert G.number_of_nodes() == 300
    assert 4 < 2 * G.number_of_edges() / 300 < 12  # about avg_degree = 8
    assert homophily(G) > 0.8


# --- budgets that last the campaign ----------------------------------------------------------


def _quickstart_step_spend(max_step_spend: float):
    fast = {"agents.scorer": "category", "federated.every": 0}
    fast["advertisers.max_step_spend"] = max_step_spend
    cfg = load_config(Path(__file__).parents[2] / "examples" / "quickstart.toml", fast)
    spent = []
    metrics = simulate(cfg, on_step=lambda s: spent.append([b.budget.spent for b in s.bidders]))
    per_step = np.diff(np.vstack([np.zeros(cfg.market.advertisers), spent]), axis=0)
    return cfg, metrics, per_step / cfg.advertisers.budget_per_step


def test_quickstart_budgets_last_and_no_step_spends_over_twice_the_share():
    """The quickstart's market with click counts (issue 15: 12 of 30 advertisers went broke
    and revenue fell 209 -> 49 before the bidders were throttled)."""
    cfg, metrics, shares = _quickstart_step_spend(2.0)
    assert cfg.advertisers.max_step_spend == 2.0  # the default
    assert shares.max() <= 2 * (1 + 1e-9)
    assert metrics[-1].active_advertisers >= 0.8 * cfg.market.advertisers
    assert metrics[-1].revenue >= 0.4 * max(m.revenue for m in metrics)


@pytest.mark.parametrize("limit", [1.5, math.inf])
def test_max_step_spend_is_the_config_s_cap(limit):
    _, _, shares = _quickstart_step_spend(limit)
    if math.isinf(limit):  # only the budget limits: the first steps spend far ahead
        assert shares.max() > 2
    else:
        assert shares.max() <= limit * (1 + 1e-9)
    with pytest.raises(ConfigError, match="max_step_spend"):
        parse_config({"advertisers": {"max_step_spend": 0.5}})


def test_budget_metrics_from_bids_and_spend():
    strategies = {"truthful": {"truthful": 1.0}, "shading": {"shading": 1.0}}
    for name, expected in (("truthful", 1.0), ("shading", 0.5)):
        cfg = parse_config(
            {**SMALL, "advertisers": {"strategies": strategies[name], "shading": 0.5}}
        )
        metrics = simulate(cfg)
        total = cfg.advertisers.budget_per_step * cfg.market.steps * cfg.market.advertisers
        spent = np.cumsum([m.revenue for m in metrics])
        for m, so_far in zip(metrics, spent, strict=True):
            assert m.remaining_budget_share == pytest.approx(1 - so_far / total)
            assert m.mean_bid_over_value == pytest.approx(expected)  # bids are never capped
        assert metrics[0].active_advertisers == cfg.market.advertisers  # all enter at first
