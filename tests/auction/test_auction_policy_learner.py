"""PolicyLearner: any callable (a stub standing in for a language model) bids in the arena."""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auction import ArenaConfig, AuctionError, arena_metrics, run_arena
from auction.bidders import BidContext, PolicyLearner, StaticLearner


def undercut_last_min_bid(context: BidContext) -> float:
    """A stub 'agent': bid one cent above the last revealed minimum bid to win, else half."""
    if context.history and math.isfinite(context.history[-1].min_bid):
        return min(context.value, context.history[-1].min_bid + 0.01)
    return context.value / 2


def study(**kw) -> ArenaConfig:
    base = {"rounds": 30, "repetitions": 3, "values": [1.0, 0.6], "mechanism": "first_price"}
    return ArenaConfig(**{**base, **kw})


def test_a_half_value_policy_wins_at_half_its_value_in_first_price():
    # Policy bids 0.5 (value 1) against a truthful 0.4: it wins every round and pays 0.5.
    bidders = [partial(PolicyLearner, policy=lambda c: c.value / 2), StaticLearner]
    m = arena_metrics(run_arena(bidders, study(values=[1.0, 0.4])))
    np.testing.assert_allclose(m.winning_bid, 0.5)
    np.testing.assert_allclose(m.surplus, 0.5)


def test_the_policy_sees_the_minimum_bid_only_where_the_arena_reveals_it():
    # Rival truthful at 0.6: with min-bid feedback the stub learns to bid 0.61 and wins at
    # 0.61; with own-outcome feedback it never sees 0.6 and keeps bidding 0.5 (and loses).
    bidders = [partial(PolicyLearner, policy=undercut_last_min_bid), StaticLearner]
    shown = run_arena(bidders, study(feedback="min_bid"))
    hidden = run_arena(bidders, study(feedback="own"))
    np.testing.assert_allclose(shown.bids[-1, :, 0], 0.61)
    assert (shown.winners == 0).all()
    np.testing.assert_allclose(hidden.bids[-1, :, 0], 0.5)
    assert (hidden.winners == 1).all()


@settings(max_examples=25, deadline=None)
@given(memory=st.integers(0, 5), rounds=st.integers(1, 12))
def test_history_keeps_the_last_memory_rounds_in_order(memory, rounds):
    seen = []

    def record(context: BidContext) -> float:
        seen.append(context)
        return 0.1 * (context.round + 1)

    learner = PolicyLearner([0], policy=record, memory=memory)
    for _ in range(rounds + 1):
        learner.bid(np.ones(1))
        learner.update(won=[True], payments=[0.0], clicks=[1.0])
    last = seen[-1]
    assert last.round == rounds
    want = [0.1 * (t + 1) for t in range(rounds)][-memory:] if memory else []
    np.testing.assert_allclose([h.bid for h in last.history], want)


def test_budget_caps_the_bid_and_the_policy_is_told_what_is_left():
    told = []

    def greedy(context: BidContext) -> float:
        told.append(context.budget_left)
        return 5.0

    learner = PolicyLearner([0], policy=greedy, budget=3.0)
    assert learner.bid(np.ones(1)).tolist() == [3.0]
    learner.update(won=[True], payments=[2.0], clicks=[1.0])
    assert learner.bid(np.ones(1)).tolist() == [1.0]
    assert told == [3.0, 1.0]


def test_batched_equals_sequential_for_a_deterministic_policy():
    bidders = [partial(PolicyLearner, policy=undercut_last_min_bid), StaticLearner]
    cfg = study(feedback="min_bid", values=lambda u: u, repetitions=4)
    together = run_arena(bidders, cfg)
    for r in range(4):
        alone = run_arena(
            bidders,
            study(feedback="min_bid", values=lambda u: u, repetitions=1, first_repetition=r),
        )
        np.testing.assert_array_equal(alone.bids[:, 0], together.bids[:, r])


@pytest.mark.parametrize("answer", [np.nan, -1.0, math.inf])
def test_a_bad_policy_answer_is_a_named_error(answer):
    learner = PolicyLearner([0, 1], policy=lambda c: answer)
    with pytest.raises(AuctionError, match="policy must answer"):
        learner.bid(np.ones(2))


@pytest.mark.parametrize(
    ("kw", "match"),
    [({"policy": 3}, "policy"), ({"budget": 0.0}, "budget"), ({"memory": -1}, "memory")],
)
def test_bad_arguments_are_named(kw, match):
    with pytest.raises(AuctionError, match=match):
        PolicyLearner([0], **{"policy": lambda c: 0.0, **kw})
