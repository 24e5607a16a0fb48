"""Checkpoints: an interrupted run resumed gives the uninterrupted run's summary and ledger."""

from __future__ import annotations

import csv

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from economy.checkpoint import load_checkpoint
from economy.cli import main
from economy.config import parse_config
from economy.rundir import CHECKPOINT, SUMMARY, RunFolderError, create_run_dir
from economy.runner import resume_market, run_market
from incentives import Ledger

SMALL = {
    "name": "r",
    "seed": 5,
    "market": {"users": 40, "advertisers": 6, "steps": 6, "impressions_per_user": 3},
    "advertisers": {"budget_per_step": 0.5},
    "agents": {"scorer": "category"},
    "federated": {"every": 0},  # Flower rounds are resumed in test_economy_federated
}


def interrupt_at(step: int):
    def on_step(state):
        if state.step == step:
            raise KeyboardInterrupt

    return on_step


def head(run):
    with Ledger(run / "ledger.db") as ledger:
        assert ledger.verify().ok
        return ledger.head()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    cfg = parse_config({**SMALL, "output_dir": str(tmp_path_factory.mktemp("ref"))})
    return run_market(cfg)


def interrupted_run(tmp_path, step, every=1):
    cfg = parse_config({**SMALL, "output_dir": str(tmp_path)})
    run = create_run_dir(cfg)
    with pytest.raises(KeyboardInterrupt):
        run_market(cfg, run, on_step=interrupt_at(step), checkpoint_every=every)
    return run


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(step=st.integers(1, 5), every=st.integers(1, 4))
def test_resumed_run_equals_uninterrupted(tmp_path_factory, reference, step, every):
    # every > 1 leaves the ledger ahead of the checkpoint (rounds at steps 2, 4, 6): the
    # resume must restore the ledger image and pay those rounds exactly once.
    run = interrupted_run(tmp_path_factory.mktemp("int"), step, every)
    assert not (run / SUMMARY).exists() and (run / CHECKPOINT).is_file()
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert len(rows) == step  # the finished steps are kept
    resume_market(run)
    assert (run / SUMMARY).read_text() == (reference / SUMMARY).read_text()
    assert head(run) == head(reference)
    assert not (run / CHECKPOINT).exists()


def test_resume_through_the_cli_twice(tmp_path, reference, capsys):
    run = interrupted_run(tmp_path, 2)
    state = load_checkpoint(run)
    assert state.step == 2
    state.close()
    assert main(["run", "--resume", str(run), "--no-progress"]) == 0
    assert str(run) in capsys.readouterr().out
    assert (run / SUMMARY).read_text() == (reference / SUMMARY).read_text()
    assert main(["run", "--resume", str(run)]) == 2  # complete: nothing to resume
    assert "nothing to resume" in capsys.readouterr().err


def test_resume_refuses_what_is_not_a_run(tmp_path, capsys):
    assert main(["run", "--resume", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err
    broken = interrupted_run(tmp_path / "b", 1)
    (broken / CHECKPOINT).write_bytes(b"not a checkpoint")
    with pytest.raises(RunFolderError, match="not a readable checkpoint"):
        resume_market(broken)


def test_resume_takes_no_config(tmp_path, capsys):
    run = interrupted_run(tmp_path, 1)
    assert main(["run", "--resume", str(run), "-c", "seed=1"]) == 2
    assert "--resume continues a folder with its own config" in capsys.readouterr().err
