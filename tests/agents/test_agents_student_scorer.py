"""Agents that score with a distilled student (``Agent(..., scorer="student")``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import auction
from agents import Ad, Agent, AgentError, PrivateContext, load_model
from agents.distill import Student

WORDS = ["red", "dress", "coffee", "beans", "tent", "camping", "summer", "shoes", "lamp"]
ADS = [
    Ad("a1", "a red dress for summer", 2.0, prior=0.5),
    Ad("a2", "dark roast coffee beans", 1.5, prior=1.0),
    Ad("a3", "waterproof camping tent", 1.0, prior=0.0),
    Ad("a4", "red running shoes", 0.7, prior=2.0),
]
_BB = load_model("tiny-causal")


def shopper(texts: list[str]) -> PrivateContext:
    ctx = PrivateContext()
    for i, text in enumerate(texts):
        ctx.add("view" if i % 2 else "purchase", text, time=float(i))
    return ctx


phrases = st.lists(st.sampled_from(WORDS), min_size=1, max_size=3).map(" ".join)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(phrases, min_size=1, max_size=3), st.integers(0, 2**16), st.integers(0, 3))
def test_a_student_agent_decides_and_explains_by_its_students_logit(events, seed, rng):
    student = Student.initial(buckets=64, dim=8, rng=seed)
    state = student.state()
    agent = Agent(_BB, shopper(events), scorer="student", student=student)
    priors = np.array([a.prior for a in ADS])
    ctr = agent.predict_ctr([a.text for a in ADS], priors)
    np.testing.assert_allclose(
        ctr, student.predict_ctr(agent.context, [a.text for a in ADS], priors)
    )
    decision = agent.choose_ad(ADS, reserve=0.01, rng=rng)
    want = auction.run_auction([a.bid for a in ADS], reserve=0.01, quality=ctr, rng=rng)
    assert decision.winner == ADS[int(want.winners[0])].ad_id
    assert decision.price == pytest.approx(float(want.prices[0]))
    why = agent.last_explanation
    w = [a.ad_id for a in ADS].index(decision.winner)
    assert why.predicted_ctr == pytest.approx(float(ctr[w]), rel=1e-5)
    # every event's share (<= 3 events: all are listed) adds up to the logit less the prior's
    # term and the bias, by hand: scale <ad, sum_i w_i e_i> / |sum_i w_i e_i|
    logit = math.log(ctr[w] / (1 - ctr[w]))
    rest = float(state["student.prior"][0]) * ADS[w].prior + float(state["student.bias"][0])
    assert sum(why.contributions) == pytest.approx(logit - rest, abs=1e-4)
    assert set(why.event_ids) == {e.event_id for e in agent.context.scored_events()}
    assert list(why.contributions) == sorted(why.contributions, reverse=True)


def test_the_student_needs_its_scorer_and_the_scorer_its_student():
    student = Student.initial(buckets=16, dim=4, rng=0)
    with pytest.raises(AgentError, match="scorer='student' needs student="):
        Agent(_BB, scorer="student")
    with pytest.raises(AgentError, match="scorer='student' needs student="):
        Agent(_BB, scorer="embedding", student=student)
    with pytest.raises(AgentError, match=r"must be an agents\.distill\.Student"):
        Agent(_BB, scorer="student", student=student.state())
    agent = Agent(_BB, shopper(["red dress"]), scorer="student", student=student)
    agent.context.record_impression("a1", "red shoes", 1, time=30.0)
    with pytest.raises(AgentError, match="tuned by distillation"):
        agent.train_local(noise_multiplier=1.0, rng=0)
