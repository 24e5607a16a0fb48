"""``fedadagent report``: the plots of a run folder, and clear errors for other folders."""

from __future__ import annotations

import numpy as np
import pytest

from economy.cli import main
from economy.config import parse_config
from economy.report import load_graph, make_report, read_metrics
from economy.rundir import GRAPH, METRICS, PLOTS, RunFolderError, create_run_dir
from economy.runner import run_market
from economy.seeding import RunSeeds
from economy.world import make_world

PNG = b"\x89PNG\r\n\x1a\n"
SMALL = {
    "name": "rep",
    "seed": 3,
    "market": {"users": 60, "advertisers": 5, "steps": 4, "impressions_per_user": 2},
    "agents": {"scorer": "category"},
    "federated": {"every": 0},  # test_economy_federated reports a federated run
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return run_market(parse_config({**SMALL, "output_dir": str(tmp_path_factory.mktemp("r"))}))


def test_report_writes_every_plot(run, capsys):
    assert main(["report", str(run)]) == 0
    names = {p.name for p in (run / PLOTS).iterdir()}
    assert names == {
        "revenue.png",
        "welfare.png",
        "ctr.png",
        "ndcg.png",
        "epsilon.png",
        "tokens.png",
        "budgets.png",
        "lorenz.png",
        "graph.png",
    }
    for path in (run / PLOTS).iterdir():
        assert path.read_bytes().startswith(PNG)
    assert str(run / PLOTS / "graph.png") in capsys.readouterr().out


def test_saved_graph_is_the_worlds_graph(run):
    cfg = parse_config({**SMALL, "output_dir": str(run.parent)})
    world = make_world(cfg, RunSeeds(cfg.seed))
    G, community = load_graph(run, cfg)
    assert nx_equal(G, world.graph)
    np.testing.assert_array_equal(community, world.community)
    (run / GRAPH).rename(run / "moved.npz")  # old run folders: rebuilt from config + seed
    try:
        G2, community2 = load_graph(run, cfg)
        assert nx_equal(G, G2)
        np.testing.assert_array_equal(community, community2)
    finally:
        (run / "moved.npz").rename(run / GRAPH)


def nx_equal(a, b):
    return set(map(frozenset, a.edges())) == set(map(frozenset, b.edges())) and set(a) == set(b)


def test_ranking_columns_get_their_own_plot(tmp_path, run):
    rows = (run / METRICS).read_text().splitlines()
    extended = [rows[0] + ",ndcg_at_10"] + [r + f",{0.1 * i}" for i, r in enumerate(rows[1:])]
    copy = create_run_dir(parse_config({**SMALL, "output_dir": str(tmp_path)}))
    (copy / METRICS).write_text("\n".join(extended) + "\n")
    paths = make_report(copy)  # no ledger, no graph.npz: zero tokens, graph rebuilt
    assert copy / PLOTS / "ndcg.png" in paths
    assert read_metrics(copy)["ndcg_at_10"].tolist() == pytest.approx([0.0, 0.1, 0.2, 0.3])


def test_report_refuses_non_run_folders(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "is not a run folder" in capsys.readouterr().err
    fresh = create_run_dir(parse_config({**SMALL, "output_dir": str(tmp_path)}))
    with pytest.raises(RunFolderError, match=r"no metrics\.csv"):
        make_report(fresh)
    (fresh / METRICS).write_text("")
    with pytest.raises(RunFolderError, match="no steps yet"):
        make_report(fresh)
