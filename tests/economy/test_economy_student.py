"""The economy with a distilled student as the devices' scorer (``agents.scorer = "student"``)."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from agents.distill import Student
from economy.config import ConfigError, parse_config
from economy.lm_agents import LMScorer
from economy.market import simulate, start_market, summarize
from economy.runner import run_market

STUDENT = {
    "seed": 5,
    "agents": {"scorer": "student", "model": "tiny-encoder"},
    "world": {"history": 5},
    "market": {"users": 30, "advertisers": 8, "steps": 2, "impressions_per_user": 2},
    "federated": {"every": 0},
}


def test_a_student_run_completes_and_its_summary_says_so(tmp_path):
    cfg = parse_config({**STUDENT, "output_dir": str(tmp_path)})
    run = run_market(cfg)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["agents"]["scorer"] == "student"
    assert summary["totals"]["impressions"] == 2 * 30 * 2
    assert 0.0 <= summary["quality"]["ndcg10"] <= 1.0


def test_the_student_scores_the_auction_and_is_seeded():
    cfg = parse_config(STUDENT)
    state = start_market(cfg)
    assert isinstance(state.lm, LMScorer) and isinstance(state.lm.student, Student)
    agent = state.lm.agents[3]
    expected = state.lm.student.predict_ctr(agent.context, state.lm.ads)
    np.testing.assert_allclose(state.lm.predict(np.array([3]))[0], expected, rtol=1e-6)
    assert not np.allclose(expected, agent.predict_ctr(state.lm.ads))  # not the teacher's
    a, b = summarize(cfg, simulate(cfg)), summarize(cfg, simulate(cfg))
    assert a == b
    lm = parse_config({**STUDENT, "agents": {"scorer": "lm", "model": "tiny-encoder"}})
    assert summarize(lm, simulate(lm))["totals"] != a["totals"]


def test_a_checkpoint_keeps_the_student():
    state = start_market(parse_config(STUDENT))
    restored = pickle.loads(pickle.dumps(state.lm))
    users = np.arange(30)
    np.testing.assert_array_equal(restored.predict(users), state.lm.predict(users))


def test_federated_rounds_with_a_student_are_refused():
    with pytest.raises(ConfigError, match=r"federated\.every.*'student'"):
        parse_config({**STUDENT, "federated": {"every": 1}})


def test_the_students_pass_over_private_contexts_is_charged_to_each_users_budget():
    from agents.accountant import gaussian

    cfg = parse_config(STUDENT)  # federated.noise_multiplier 1.0 by default
    state = start_market(cfg)
    eps = state.privacy.epsilons()
    once = gaussian(cfg.federated.noise_multiplier).epsilon_once(cfg.privacy.delta)
    assert state.privacy.counts and 0 < eps.max() == pytest.approx(once)
    assert np.count_nonzero(eps) == sum(bool(a.context.scored_events()) for a in state.lm.agents)
    with pytest.raises(ConfigError, match=r"federated\.noise_multiplier: 0"):
        parse_config({**STUDENT, "federated": {"every": 0, "noise_multiplier": 0.0}})
    free = {**STUDENT, "federated": {"every": 0, "noise_multiplier": 0.0}}
    free_state = start_market(parse_config({**free, "privacy": {"epsilon_budget": float("inf")}}))
    assert np.isinf(free_state.privacy.epsilons()).any()  # reported as it is: no noise
