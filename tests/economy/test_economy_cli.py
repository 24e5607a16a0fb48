"""The command line end to end: quickstart, reproducibility, sweeps, example configs."""

from __future__ import annotations

import itertools
import json
import shlex
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from economy.cli import main
from economy.config import ConfigError, load_config
from economy.overrides import parse_grid, parse_override
from economy.rundir import SUMMARY, create_run_dir, read_run_config
from economy.runner import run_market
from economy.sweep import INDEX_CSV, INDEX_JSON, SWEEP, create_sweep, plan_points

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TINY = ["-c", "market.users=30", "-c", "market.advertisers=4", "-c", "market.steps=3"]
TINY += ["-c", "market.impressions_per_user=2", "-c", "federated.valuation_budget=8"]
# the market loop alone (click counts, no Flower): the quickstart test runs the whole system
TINY += ["-c", "agents.scorer=category", "-c", "federated.every=0"]


def only_child(folder: Path) -> Path:
    (child,) = folder.iterdir()
    return child


@pytest.mark.slow
def test_quickstart_end_to_end_reduced(tmp_path, capsys):
    """The main job at reduced size: MiniLM LoRA agents, Flower rounds, tokens, the ledger."""
    args = ["run", str(EXAMPLES / "quickstart.toml"), "-o", str(tmp_path), "--no-progress"]
    args += ["-c", "market.users=24", "-c", "market.steps=4", "-c", "federated.every=2"]
    args += ["-c", "federated.clients_per_round=3", "-c", "federated.valuation_budget=8"]
    args += ["-c", "federated.lr=0.02"]
    assert main(args) == 0
    run = only_child(tmp_path)
    summary = json.loads((run / SUMMARY).read_text())
    assert summary["name"] == "quickstart" and summary["steps"] == 4
    assert summary["agents"]["scorer"] == "lm" and summary["agents"]["model"] == "minilm"
    fed = summary["federated"]
    assert (fed["engine"], fed["rounds"], fed["strategy"]) == ("simulation", 2, "fedavg")
    assert 0 <= fed["adopted"] <= 2  # federated.adopt = "if_better" by default
    # whether 2 rounds of 3 clipped MiniLM updates earn tokens on the catalogue is not
    # settled at this size (test_economy_federated checks payments); the ledger must verify
    assert summary["ledger"]["verified"] is True
    assert summary["tokens"]["contributors"] <= 6
    assert 0 < summary["privacy"]["epsilon_max"] <= summary["privacy"]["budget"] == 8.0
    assert 0 <= summary["quality"]["ndcg10"] <= 1
    assert main(["report", str(run)]) == 0
    assert "graph.png" in capsys.readouterr().out


def test_same_seed_gives_identical_summary_json(tmp_path):
    for out in ("a", "b"):
        assert main(["run", "-o", str(tmp_path / out), "--no-progress", *TINY]) == 0
    a, b = (only_child(tmp_path / out) / SUMMARY for out in ("a", "b"))
    assert a.read_bytes() == b.read_bytes()
    assert main(["run", "-o", str(tmp_path / "c"), "--no-progress", "-c", "seed=1", *TINY]) == 0
    assert (only_child(tmp_path / "c") / SUMMARY).read_bytes() != a.read_bytes()


def test_sweep_runs_every_point_in_parallel_processes(tmp_path, capsys):
    args = ["sweep", "-o", str(tmp_path), "--no-progress", "--workers", "2", *TINY]
    args += ["--grid", "seed=1,2", "--grid", "auction.reserve=0,0.3"]
    assert main(args) == 0
    sweep = only_child(tmp_path)
    assert f"sweep folder: {sweep}" in capsys.readouterr().out
    rows = json.loads((sweep / INDEX_JSON).read_text())
    assert [(r["seed"], r["auction.reserve"]) for r in rows] == [(1, 0), (1, 0.3), (2, 0), (2, 0.3)]
    assert (sweep / INDEX_CSV).read_text().splitlines()[0].startswith("point,seed,auction.reserve")
    for row in rows:
        run = sweep / row["run_dir"]
        cfg = read_run_config(run)  # each point is an ordinary run folder
        assert (cfg.auction.reserve, cfg.seed, cfg.market.users) == (
            row["auction.reserve"],
            row["seed"],
            30,
        )
        summary = json.loads((run / SUMMARY).read_text())
        assert row["status"] == "done"
        assert row["revenue"] == summary["totals"]["revenue"]
        assert row["ctr"] == summary["ctr"]
    assert main(["report", str(sweep / rows[0]["run_dir"])]) == 0
    assert main(["report", str(sweep)]) == 0  # a sweep's own report (economy.report_sweep)
    assert (sweep / "report.html").is_file()


def test_bad_grid_fails_before_any_work(tmp_path, capsys):
    args = ["sweep", "-o", str(tmp_path), "--grid", "market.users=10,-1"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "grid point {'market.users': -1}" in err and "'market.users'" in err
    assert main(["sweep", "-o", str(tmp_path), "--grid", "auction.reserv=0,1"]) == 2
    assert "unknown key 'auction.reserv'" in capsys.readouterr().err
    for bad, message in [
        (["--grid", "seed"], "must look like key=v1,v2"),
        (["--grid", "seed=1,1"], "repeated"),
        (["--grid", "seed=1,2", "--grid", "seed=3"], "given twice"),
        (["--grid", "name=a,b"], "set by the sweep"),
        (["--grid", "seed=1,2", "-c", "seed=3"], "both overridden"),
        ([], "at least one --grid"),
    ]:
        assert main(["sweep", "-o", str(tmp_path), *bad]) == 2
        assert message in capsys.readouterr().err
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_interrupted_sweep_resumes(tmp_path):
    overrides = dict(parse_override(t) for t in TINY[1::2]) | {"output_dir": str(tmp_path)}
    sweep = create_sweep(None, overrides, {"seed": [1, 2]})
    plan = json.loads((sweep / SWEEP).read_text())
    first = sweep / plan["points"][0]["run_dir"]

    def stop(state):
        if state.step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_market(read_run_config(first), first, on_step=stop)
    statuses = [r["status"] for r in json.loads((sweep / INDEX_JSON).read_text())]
    assert statuses == ["pending", "pending"]  # written at creation
    assert main(["sweep", "--resume", str(sweep), "--no-progress"]) == 0
    rows = json.loads((sweep / INDEX_JSON).read_text())
    assert [r["status"] for r in rows] == ["done", "done"]
    cfg = read_run_config(first)
    again = run_market(cfg, create_run_dir(cfg, tmp_path / "again"))
    assert (again / SUMMARY).read_text() == (first / SUMMARY).read_text()


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.name)
def test_every_example_validates_with_its_documented_commands(path):
    load_config(path)
    header = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        header.append(line.lstrip("# "))
    assert "?" in " ".join(header), "the header states a research question"
    commands = [shlex.split(h) for h in header if h.startswith("bash .ci/env ")]
    assert commands, "the header gives the command to run it"
    for argv in commands:
        argv = argv[2:]
        if argv[0] == "python":
            assert (EXAMPLES.parent / argv[1]).is_file()
            continue
        assert argv[0] == "fedadagent" and argv[2] == f"examples/{path.name}"
        command, rest = argv[1], argv[3:]
        overrides = dict(parse_override(v) for f, v in itertools.pairwise(rest) if f == "-c")
        grid = dict(parse_grid(v) for f, v in itertools.pairwise(rest) if f == "--grid")
        if command == "sweep":
            assert len(plan_points(path, overrides, grid)) > 1
        else:
            assert command in ("run", "auction") and not grid
            load_config(path, overrides)


scalars = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(-1e6, 1e6, allow_nan=False).filter(lambda x: x != 0),
    st.booleans(),
)


@given(st.lists(scalars, min_size=1, max_size=6, unique_by=repr))
def test_grid_values_keep_their_types(values):
    text = ",".join(json.dumps(v) for v in values)
    key, parsed = parse_grid(f"a.b={text}")
    assert key == "a.b"
    assert [(type(v), v) for v in parsed] == [(type(v), v) for v in values]


@given(scalars)
def test_override_values_are_toml(value):
    assert parse_override(f"k={json.dumps(value)}") == ("k", value)


def test_bare_words_are_strings():
    assert parse_override("auction.mechanism=gsp") == ("auction.mechanism", "gsp")
    assert parse_grid("auction.mechanism=gsp, vcg")[1] == ["gsp", "vcg"]
    with pytest.raises(ConfigError, match="non-empty"):
        parse_grid("seed=1,,2")
    assert tomllib.loads("v = 1")  # TOML is what the values are read as


def test_collusion_example_finds_ring_gains_and_reserve_shrinks_them(tmp_path):
    regret = {}
    for reserve in (0.0, 0.5):
        args = ["auction", str(EXAMPLES / "collusion.toml"), "-o", str(tmp_path / str(reserve))]
        args += ["-c", "truthfulness.simulate_auctions=1000", "-c", f"auction.reserve={reserve}"]
        assert main(args) == 0
        report = json.loads((only_child(tmp_path / str(reserve)) / "report.json").read_text())
        assert len(report["truthfulness"]["best"]["bidders"]) == 2  # a ring of two
        regret[reserve] = report["truthfulness"]["mean_regret"]
    assert regret[0.0] > regret[0.5] > 0  # second price is not ring-proof


def test_coalition_cannot_exceed_bidders():
    with pytest.raises(ConfigError, match="coalition: must be at most bidders"):
        load_config(None, {"truthfulness.bidders": 2, "truthfulness.coalition": 3})


def test_a_failing_point_is_recorded_and_the_others_run(tmp_path, capsys):
    overrides = dict(parse_override(t) for t in TINY[1::2]) | {"output_dir": str(tmp_path)}
    sweep = create_sweep(None, overrides, {"seed": [1, 2]})
    bad = sweep / json.loads((sweep / SWEEP).read_text())["points"][0]["run_dir"]
    (bad / "config.toml").write_text("market = 3\n")
    assert main(["sweep", "--resume", str(sweep), "--no-progress", "--workers", "2"]) == 1
    assert "point 0 failed: RunFolderError" in capsys.readouterr().err
    rows = json.loads((sweep / INDEX_JSON).read_text())
    assert [r["status"] for r in rows] == ["failed", "done"]
    assert "not a valid config" in rows[0]["error"] and rows[0]["revenue"] is None
