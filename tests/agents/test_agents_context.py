"""Private context: events, recency and kind weights, sensitive domains, budgets, persistence."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents import AgentError, BudgetExhaustedError, PrivateContext
from agents.context import KIND_WEIGHTS, Impression

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


def _record_before(ctx, rows):
    """The click log as ``record_impression`` kept it before the batched path (issue 18)."""
    for ad_id, text, clicked, time, category, prior in rows:
        ctx.clicks.append(Impression(ad_id, text, category, clicked, time, prior))
        del ctx.clicks[: -ctx.max_clicks]
        if clicked:
            ctx.add("click", text, time, category)


impressions = st.lists(
    st.tuples(
        st.sampled_from(["a1", "a2", "a3"]),
        st.sampled_from(["red dress", "tent", "coffee"]),
        st.integers(0, 1),
        st.floats(0, 1e6),
        st.sampled_from(["", "sport", "health"]),
        st.floats(-5, 5),
    ),
    max_size=12,
)


@given(impressions, impressions, st.integers(1, 6))
def test_batched_impressions_equal_one_at_a_time(first, second, keep):
    ours = PrivateContext(max_events=keep, max_clicks=keep)
    before = PrivateContext(max_events=keep, max_clicks=keep)
    for rows in (first, second):
        ours.record_impressions(*([r[i] for r in rows] for i in (0, 1, 2, 3, 4, 5)))
        _record_before(before, rows)
    assert (ours.clicks, ours.events, ours.version) == (
        before.clicks,
        before.events,
        before.version,
    )
    assert ours.add("view", "x", 0.0) == before.add("view", "x", 0.0)  # same next id


def test_a_bad_impression_in_a_batch_writes_nothing():
    ctx = PrivateContext()
    args = (["a1", "a2"], ["red dress", "tent"], [1, 1], [0.0, 1.0], ["", ""])
    for i, bad, match in [(2, 2, "clicked"), (3, float("nan"), "time"), (1, "", "texts")]:
        rows = [list(a) for a in args]
        rows[i][1] = bad
        with pytest.raises(AgentError, match=match):
            ctx.record_impressions(*rows)
    with pytest.raises(AgentError, match="prior"):
        ctx.record_impressions(*args, priors=[0.0, float("inf")])
    with pytest.raises(AgentError, match="length"):
        ctx.record_impressions(*args, priors=[0.0])
    assert (ctx.clicks, ctx.events, ctx.version) == ([], [], 0)
