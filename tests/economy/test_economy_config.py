"""Config validation, overrides, seeding and run folders."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from economy.cli import main
from economy.config import ConfigError, ExperimentConfig, load_config, parse_config
from economy.rundir import create_run_dir
from economy.seeding import RunSeeds


def test_empty_config_is_the_embedded_defaults():
    assert parse_config({}) == ExperimentConfig()


def test_unknown_key_names_key_and_allowed_keys():
    with pytest.raises(ConfigError) as exc:
        parse_config({"auction": {"reserv": 0.1}})
    msg = str(exc.value)
    assert "unknown key 'auction.reserv'" in msg
    assert "mechanism, reserve, slot_ctrs" in msg


def test_unknown_top_level_key():
    with pytest.raises(ConfigError, match=r"unknown key 'sed'.*seed"):
        parse_config({"sed": 1})


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"auction": {"reserve": -1}}, "'auction.reserve': Input should be greater than or equal"),
        ({"auction": {"mechanism": "dutch"}}, "'auction.mechanism'"),
        ({"market": {"users": 0}}, "'market.users': Input should be greater than or equal to 1"),
        ({"auction": {"slot_ctrs": [1.0, 0.5]}}, "has one slot; use 'gsp' or 'vcg'"),
        ({"auction": {"mechanism": "gsp", "slot_ctrs": [0.5, 1.0]}}, "non-increasing"),
        ({"truthfulness": {"value_low": 2.0, "value_high": 1.0}}, "greater than value_low"),
        ({"advertisers": {"strategies": {"random": 1.0}}}, "advertisers.strategies"),
    ],
)
def test_bad_values_name_the_key(data, fragment):
    with pytest.raises(ConfigError, match="invalid config") as exc:
        parse_config(data)
    assert fragment in str(exc.value)


def test_every_problem_is_listed_at_once():
    with pytest.raises(ConfigError) as exc:
        parse_config({"seed": -1, "market": {"steps": 0}})
    assert "'seed'" in str(exc.value) and "'market.steps'" in str(exc.value)


def test_load_config_file_and_overrides(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('name = "x"\n[auction]\nmechanism = "gsp"\nslot_ctrs = [1.0, 0.5]\n')
    cfg = load_config(path, {"auction.reserve": 0.25, "market.users": 10})
    assert (cfg.name, cfg.auction.mechanism, cfg.auction.reserve) == ("x", "gsp", 0.25)
    assert cfg.market.users == 10


def test_load_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_cli_rejects_bad_config_before_work(tmp_path, capsys):
    code = main(["run", "-c", "market.users=-5", "-o", str(tmp_path)])
    assert code == 2
    assert "'market.users'" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing written


def test_cli_config_prints_resolved_toml(capsys):
    assert main(["config", "-c", "auction.mechanism=gsp", "-c", "auction.slot_ctrs=[1, 0.5]"]) == 0
    printed = tomllib.loads(capsys.readouterr().out)
    assert printed["auction"]["mechanism"] == "gsp"
    assert printed["auction"]["slot_ctrs"] == [1.0, 0.5]


def test_run_dir_holds_resolved_config(tmp_path):
    cfg = parse_config({"name": "demo", "seed": 3})
    run = create_run_dir(cfg, tmp_path)
    assert run.name.startswith("demo-")
    assert parse_config(tomllib.loads((run / "config.toml").read_text())) == cfg
    assert create_run_dir(cfg, tmp_path) != run  # a second run never overwrites the first


@given(st.integers(0, 2**63 - 1), st.text(min_size=1, max_size=10))
def test_named_streams_are_reproducible_and_independent(seed, name):
    a = RunSeeds(seed).generator(name).random(4)
    np.testing.assert_array_equal(a, RunSeeds(seed).generator(name).random(4))
    assert not np.array_equal(a, RunSeeds(seed).generator(name + "x").random(4))
