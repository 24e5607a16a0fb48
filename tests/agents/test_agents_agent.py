"""The agent: local auction, nothing private in what it returns, caches, DP training, budgets."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import auction
from agents import Ad, Agent, AgentError, BudgetExhaustedError, PrivateContext, load_model
from agents.agent import Decision

ADS = [
    Ad("a1", "a red dress for summer", 2.0, "fashion"),
    Ad("a2", "dark roast coffee beans", 1.5, "food"),
    Ad("a3", "waterproof camping tent", 1.0, "outdoor"),
]


@pytest.fixture(scope="module")
def backbone():
    return load_model("tiny-encoder")


def _shopper(backbone, **ctx_kwargs) -> Agent:
    agent = Agent(backbone, PrivateContext(**ctx_kwargs))
    agent.context.add("view", "red summer dress", time=0.0, category="fashion")
    agent.context.add("purchase", "coffee beans", time=10.0, category="food")
    return agent


def test_choose_ad_is_the_auction_on_predicted_ctr(backbone):
    agent = _shopper(backbone)
    decision = agent.choose_ad(ADS, reserve=0.5, rng=0)
    ctr = agent.predict_ctr([a.text for a in ADS])
    expected = auction.run_auction([a.bid for a in ADS], reserve=0.5, quality=ctr, rng=0)
    assert decision.winner == ADS[int(expected.winners[0])].ad_id
    assert decision.price == pytest.approx(float(expected.prices[0]))
    # what leaves the device is the winner and the price; the explanation stays
    assert dataclasses.asdict(decision) == {"winner": decision.winner, "price": decision.price}
    why = agent.last_explanation
    assert why.predicted_ctr == pytest.approx(ctr[int(expected.winners[0])])
    assert {e.text for e in agent.audit()} <= {"red summer dress", "coffee beans"}
    assert agent.audit() == agent.audit(why)


def test_no_winner_below_reserve_and_bad_candidates(backbone):
    agent = _shopper(backbone)
    agent.choose_ad(ADS)
    assert agent.last_explanation is not None
    assert agent.choose_ad(ADS, reserve=10.0) == Decision(None, 0.0)
    assert agent.last_explanation is None and agent.audit() == []  # not the old one
    with pytest.raises(AgentError, match="at least one"):
        agent.choose_ad([])
    with pytest.raises(AgentError, match="Ad"):
        agent.choose_ad([("a1", "x", 1.0)])


texts = st.text(st.characters(min_codepoint=97, max_codepoint=122), min_size=12, max_size=20)


@settings(max_examples=20, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(texts, texts), min_size=1, max_size=5), st.integers(0, 2**16))
def test_context_never_appears_in_what_choose_ad_returns(backbone, private, seed):
    agent = Agent(backbone)
    for i, (text, category) in enumerate(private):
        agent.context.add("purchase", text, time=float(i), category=category)
    decision = agent.choose_ad(ADS, rng=seed)
    returned = repr(dataclasses.asdict(decision))
    for text, category in private:
        assert text not in returned and category not in returned
    assert set(dataclasses.asdict(decision)) == {"winner", "price"}


def test_fast_path_reuses_caches_and_context_change_recomputes(backbone, monkeypatch):
    agent = _shopper(backbone)
    agent.choose_ad(ADS)
    calls = []
    original = backbone.pooled
    monkeypatch.setattr(backbone, "pooled", lambda *a, **k: calls.append(1) or original(*a, **k))
    agent.choose_ad(ADS)
    assert calls == []  # warm: ads and context served from caches
    agent.context.add("search", "hiking boots", time=20.0)
    agent.choose_ad(ADS)
    assert len(calls) == 1  # cold: only the new event runs through the model


def test_train_local_learns_spends_budget_and_stops(backbone):
    agent = _shopper(backbone)
    agent.budget.epsilon = 5.0
    for t in range(32):
        ad = ADS[t % 2]
        agent.context.record_impression(ad.ad_id, ad.text, int(ad is ADS[0]), time=100.0 + t)
    before = agent.predict_ctr([ADS[0].text, ADS[1].text])
    update = agent.train_local(epochs=2, batch_size=8, lr=0.05, target_epsilon=3.0, rng=0)
    assert update.epsilon == pytest.approx(3.0, rel=0.02) and update.epsilon <= 3.0
    assert update.num_examples == 32 and update.steps == 8
    assert update.nbytes == agent.nbytes and all(
        v.dtype == np.float32 for v in update.delta.values()
    )
    after = agent.predict_ctr([ADS[0].text, ADS[1].text])
    assert (after[0] - after[1]) > (before[0] - before[1])  # clicked ad gained on the other
    assert agent.can_contribute
    with pytest.raises(BudgetExhaustedError, match="stops contributing"):
        agent.train_local(epochs=2, batch_size=8, target_epsilon=3.0, rng=0)
    agent.train_local(epochs=2, batch_size=8, target_epsilon=2.0 - 1e-3, rng=0)
    assert not agent.can_contribute or agent.budget.remaining < 1e-2


def test_one_click_trains_one_step(backbone):
    agent = _shopper(backbone)
    agent.context.record_impression(ADS[0].ad_id, ADS[0].text, 1, time=100.0)
    update = agent.train_local(batch_size=16, lr=0.05, noise_multiplier=1.0, rng=0)
    assert update.num_examples == 1 and update.steps == 1
    assert 0 < update.epsilon < math.inf
    assert any(np.abs(d).max() > 0 for d in update.delta.values())


def test_training_learns_the_weight_of_the_exchange_prior(backbone):
    agent = _shopper(backbone)
    for t in range(48):  # clicks follow the exchange's prior, not the text
        prior = float(t % 2) * 2.0 - 1.0
        agent.context.record_impression(
            f"p{t}", ADS[t % 3].text, int(prior > 0), time=100.0 + t, prior=prior
        )
    agent.train_local(epochs=3, batch_size=8, lr=0.05, noise_multiplier=0.0, rng=0)
    assert agent.state()["head.prior"][0] > 0.05
    up, down = (dataclasses.replace(ADS[2], ad_id=i, prior=p) for i, p in (("u", 1.0), ("d", -1)))
    assert agent.choose_ad([down, up], rng=0).winner == "u"


def test_sensitive_domain_pays_or_is_left_out(backbone):
    agent = _shopper(backbone, sensitive={"health": 1.0})
    for t in range(16):
        agent.context.record_impression("h", "vitamin supplements", 1, time=t, category="health")
        agent.context.record_impression("s", "running shoes", 0, time=t, category="sport")
    first = agent.train_local(epochs=1, batch_size=8, target_epsilon=0.9, rng=1)
    assert first.num_examples == 32
    assert agent.context.budgets["health"].spent == pytest.approx(first.epsilon)
    second = agent.train_local(epochs=1, batch_size=8, target_epsilon=0.9, rng=1)
    assert second.num_examples == 16  # health rows dropped: their budget cannot pay again
    assert agent.context.budgets["health"].spent == pytest.approx(first.epsilon)


def test_seeded_training_is_reproducible(backbone):
    runs = []
    for _ in range(2):
        agent = _shopper(backbone)
        for t in range(8):
            agent.context.record_impression("a", ADS[t % 3].text, t % 2, time=50.0 + t)
        runs.append(agent.train_local(batch_size=4, noise_multiplier=1.0, rng=7).delta)
    for k in runs[0]:
        np.testing.assert_array_equal(runs[0][k], runs[1][k])


def test_click_reports(backbone):
    agent = Agent(backbone)
    assert agent.report_click(1) == 1
    reports = [agent.report_click(1, epsilon_rr=math.log(3), rng=s) for s in range(400)]
    assert 0.65 < np.mean(reports) < 0.85  # truthful with probability 3/4
    with pytest.raises(AgentError, match="clicked"):
        agent.report_click(3)
