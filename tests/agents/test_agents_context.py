"""Private context: events, recency and kind weights, sensitive domains, budgets, persistence."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents import AgentError, BudgetExhaustedError, PrivateContext
from agents.context import KIND_WEIGHTS

kinds = st.sampled_from(sorted(KIND_WEIGHTS))


@given(st.lists(st.tuples(kinds, st.floats(0, 1e7)), min_size=1, max_size=30))
def test_weights_decay_with_age_and_scale_with_kind(rows):
    ctx = PrivateContext(half_life=86400.0)
    for kind, t in rows:
        ctx.add(kind, "item", time=t)
    w = ctx.weights(ctx.events)
    kw = np.array([KIND_WEIGHTS[e.kind] for e in ctx.events])
    assert np.all(w > 0) and np.all(w <= kw)
    newest = np.argmax([e.time for e in ctx.events])
    assert w[newest] == pytest.approx(kw[newest])


def test_sensitive_events_stay_out_of_scoring_and_summary():
    ctx = PrivateContext(sensitive={"health": 1.0})
    ctx.add("search", "blood pressure monitor", time=1.0, category="health")
    ctx.add("view", "running shoes", time=2.0, category="sport")
    assert [e.text for e in ctx.scored_events()] == ["running shoes"]
    assert "blood" not in ctx.summary()
    ctx.use_sensitive = True
    assert len(ctx.scored_events()) == 2


def test_clicks_are_logged_and_become_events():
    ctx = PrivateContext(max_events=2, max_clicks=2)
    ctx.record_impression("a1", "red dress", 1, time=0.0)
    ctx.record_impression("a2", "coffee", 0, time=1.0)
    ctx.record_impression("a3", "tent", 1, time=2.0)
    assert [c.ad_id for c in ctx.clicks] == ["a2", "a3"]
    assert [e.kind for e in ctx.events] == ["click", "click"]
    assert ctx.summary() == "clicked: tent; clicked: red dress"


def test_budget_spending():
    ctx = PrivateContext(sensitive={"health": 1.0})
    ctx.budgets["health"].spend(0.6, "health")
    with pytest.raises(BudgetExhaustedError, match="remaining"):
        ctx.budgets["health"].spend(0.6, "health")
    assert ctx.budgets["health"].remaining == pytest.approx(0.4)


def test_save_and_load_round_trip(tmp_path):
    ctx = PrivateContext(sensitive={"health": 2.0}, half_life=10.0)
    ctx.add("share", "board game", time=3.0, category="toys", source="friend-7")
    ctx.record_impression("a1", "vitamins", 1, time=4.0, category="health")
    ctx.budgets["health"].spend(0.5, "health")
    back = PrivateContext.load(ctx.save(tmp_path / "ctx.json"))
    assert back.events == ctx.events and back.clicks == ctx.clicks
    assert back.budgets["health"].spent == 0.5 and back.half_life == 10.0
    assert back.add("view", "x", time=5.0) == ctx.add("view", "x", time=5.0)
    assert [p.name for p in tmp_path.iterdir()] == ["ctx.json"]


def test_bad_input_is_named():
    ctx = PrivateContext()
    with pytest.raises(AgentError, match="kind"):
        ctx.add("like", "x", time=0.0)
    with pytest.raises(AgentError, match="text"):
        ctx.add("view", "", time=0.0)
    with pytest.raises(AgentError, match="time"):
        ctx.add("view", "x", time=float("nan"))
    with pytest.raises(AgentError, match="clicked"):
        ctx.record_impression("a", "x", 2, time=0.0)
    with pytest.raises(AgentError, match="health"):
        PrivateContext(sensitive={"health": 0.0})
    with pytest.raises(AgentError, match="half_life"):
        PrivateContext(half_life=0)
