"""Language-model agents as the devices' scorers in the market loop (tiny test encoder)."""

from __future__ import annotations

import pickle
from dataclasses import replace
from functools import lru_cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from economy.config import ConfigError, parse_config
from economy.lm_agents import LMScorer
from economy.market import simulate, start_market, summarize
from economy.seeding import RunSeeds
from economy.world import make_world

LM = {
    "seed": 11,
    "agents": {"scorer": "lm", "model": "tiny-encoder"},
    "world": {"history": 5},
    "market": {"users": 40, "advertisers": 8, "steps": 2, "impressions_per_user": 2},
    "federated": {"every": 0},  # the scorer alone; test_economy_federated trains it
}


@pytest.fixture(scope="module")
def world():
    cfg = parse_config(LM)
    return cfg, make_world(cfg, RunSeeds(cfg.seed))


def test_lm_market_runs_and_is_seeded():
    cfg = parse_config(LM)
    a, b = summarize(cfg, simulate(cfg)), summarize(cfg, simulate(cfg))
    assert a == b and a["steps"] == 2
    assert a["totals"]["impressions"] == 2 * 40 * 2
    other = parse_config({**LM, "seed": 12})
    assert summarize(other, simulate(other))["totals"] != a["totals"]


def test_lm_scorer_changes_the_auction_quality():
    """Same world and bids, the other scorer: the shown ads differ."""
    lm = parse_config(LM)
    counts = parse_config({**LM, "agents": {"scorer": "category"}})
    assert summarize(lm, simulate(lm))["totals"] != summarize(counts, simulate(counts))["totals"]


def test_synthetic_texts_follow_the_hidden_preferences(world):
    cfg, w = world
    assert w.texts is not None and len(w.texts.ads) == 8
    assert all(len(h) == cfg.world.history for h in w.texts.histories)
    for a, text in enumerate(w.texts.ads):
        assert w.texts.categories[w.ad_category[a]] in text
    big = parse_config({**LM, "market": {**LM["market"], "users": 300}, "world": {"history": 40}})
    bw = make_world(big, RunSeeds(0))
    # the most viewed category of a user is more often its top hidden preference than chance
    names = bw.texts.categories
    top_viewed = [
        np.bincount([names.index(t.split(" ", 1)[1]) for _, t, _ in h], minlength=len(names))
        for h in bw.texts.histories
    ]
    hits = np.mean([v.argmax() == p.argmax() for v, p in zip(top_viewed, bw.prefs, strict=True)])
    assert hits > 0.5


def test_scorer_predicts_per_user_and_learns_from_clicks(world):
    cfg, w = world
    scorer = LMScorer(w, cfg.agents)
    users = np.array([0, 1, 0, 2])
    q = scorer.predict(users)
    assert q.shape == (4, 8) and ((q > 0) & (q < 1)).all()
    np.testing.assert_array_equal(q[0], q[2])  # one row per user
    before = scorer.predict(np.arange(3))
    scorer.observe(0, np.array([1]), np.array([3]), np.array([1]))  # user 1 clicks ad 3
    after = scorer.predict(np.arange(3))
    np.testing.assert_array_equal(after[[0, 2]], before[[0, 2]])
    assert not np.array_equal(after[1], before[1])
    assert scorer.agents[1].context.events[-1].kind == "click"
    assert len(scorer.agents[1].context.clicks) == 1


def test_scorer_survives_a_checkpoint(world):
    cfg, w = world
    scorer = LMScorer(w, cfg.agents)
    scorer.observe(0, np.array([0, 4]), np.array([2, 5]), np.array([1, 0]))
    restored = pickle.loads(pickle.dumps(scorer))
    users = np.arange(40)
    np.testing.assert_allclose(restored.predict(users), scorer.predict(users), atol=1e-6)
    assert [len(a.context.clicks) for a in restored.agents] == [
        len(a.context.clicks) for a in scorer.agents
    ]


def test_market_state_carries_the_scorer():
    state = start_market(parse_config(LM))
    assert isinstance(state.lm, LMScorer)
    state.advance()
    assert sum(len(a.context.clicks) for a in state.lm.agents) == state.metrics[0].filled_slots
    assert start_market(parse_config({**LM, "agents": {"scorer": "category"}})).lm is None


def test_world_without_texts_is_refused(world):
    cfg, w = world
    with pytest.raises(ConfigError, match=r"agents\.scorer"):
        LMScorer(replace(w, texts=None), cfg.agents)


@pytest.mark.slow
def test_lm_agents_on_the_movielens_world():
    cfg = parse_config({**LM, "world": {"kind": "movielens", "history": 5}})
    state = start_market(cfg)
    assert state.lm.ads[0] == state.world.texts.ads[0]
    assert "Genres:" in state.lm.ads[0]
    state.advance()
    assert state.metrics[0].impressions == 80


@pytest.mark.parametrize(
    ("key", "value"),
    [("agents.scorer", "bert"), ("agents.model", "gpt-5"), ("agents.max_length", 2)],
)
def test_bad_agents_config_names_the_key(key, value):
    section, leaf = key.split(".")
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_config({section: {leaf: value}})


@pytest.mark.slow
def test_interrupted_lm_run_resumes_to_the_same_summary(tmp_path):
    from economy.rundir import SUMMARY, create_run_dir
    from economy.runner import resume_market, run_market

    lm = {**LM, "name": "lm", "market": {**LM["market"], "steps": 4}}
    reference = run_market(parse_config({**lm, "output_dir": str(tmp_path / "ref")}))
    cfg = parse_config({**lm, "output_dir": str(tmp_path / "int")})
    run = create_run_dir(cfg)

    def stop(state):
        if state.step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_market(cfg, run, on_step=stop, checkpoint_every=1)
    resume_market(run)
    assert (run / SUMMARY).read_text() == (reference / SUMMARY).read_text()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("federated.every", -1),
        ("federated.noise_multiplier", -0.5),
        ("privacy.epsilon_budget", 0),
        ("privacy.delta", 0.5),
        ("federated.clipping_norm", 0),
        ("agents.lora_rank", 0),
    ],
)
def test_bad_training_config_names_the_key(key, value):
    section, leaf = key.split(".")
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_config({section: {leaf: value}})


def test_training_without_noise_must_be_accepted_explicitly():
    with pytest.raises(ConfigError, match=r"noise_multiplier: 0 sends updates without noise"):
        parse_config({"federated": {"noise_multiplier": 0}})
    assert parse_config(
        {"federated": {"noise_multiplier": 0}, "privacy": {"epsilon_budget": float("inf")}}
    )
    with pytest.raises(ConfigError, match=r"unknown key 'federated\.epsilon_budget'"):
        parse_config({"federated": {"epsilon_budget": 10}})  # moved to privacy.epsilon_budget
    with pytest.raises(ConfigError, match=r"federated\.every"):
        parse_config({"agents": {"scorer": "category"}})  # rounds need the LM agents


@lru_cache(maxsize=1)
def _scorer() -> LMScorer:
    cfg = parse_config(LM)
    return LMScorer(make_world(cfg, RunSeeds(cfg.seed)), cfg.agents)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 39), max_size=60))
def test_batched_prediction_is_one_row_per_user(users):
    scorer = _scorer()
    users = np.array(users, dtype=int)
    q = scorer.predict(users)
    assert q.shape == (users.size, 8)
    for i, u in enumerate(users):
        expected = scorer.agents[u].predict_ctr(scorer.ads).clip(1e-12)
        np.testing.assert_allclose(q[i], expected, rtol=1e-6)  # float32 matvec rounding


def _observe_before(scorer, step, users, ads, clicks):
    """``observe`` as it was before the per-user batches (issue 18): one impression at a time."""
    for u, a, c in zip(users.tolist(), ads.tolist(), clicks.tolist(), strict=True):
        scorer.agents[u].context.record_impression(
            str(a),
            scorer.ads[a],
            int(c),
            time=float(scorer._clock[u]) + 3600.0 * (step + 1),
            category=scorer.ad_category[a],
        )


def _logs(scorer):
    return [(a.context.clicks, a.context.events, a.context.version) for a in scorer.agents]


@settings(max_examples=10, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 39), st.integers(0, 7), st.integers(0, 1)), max_size=30))
def test_observe_equals_one_impression_at_a_time(rows):
    users, ads, clicks = (np.array([r[i] for r in rows], dtype=int) for i in range(3))
    ours, before = pickle.loads(pickle.dumps(_scorer())), pickle.loads(pickle.dumps(_scorer()))
    for step in (0, 1):
        ours.observe(step, users, ads, clicks)
        _observe_before(before, step, users, ads, clicks)
    assert _logs(ours) == _logs(before)
