"""agents.llm_bidder: a language-model bidder seated in the auction arena through PolicyLearner."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents import AgentError, load_model
from agents.generate import choose
from agents.llm_bidder import MULTIPLIERS, LLMBidPolicy, llm_bidder
from auction import ArenaConfig, arena_metrics, run_arena
from auction.bidders import BidContext, Round


@pytest.fixture(scope="module")
def causal():
    return load_model("tiny-causal")


def test_bid_is_the_lm_choice_times_the_value_and_cached(causal):
    policy = LLMBidPolicy(causal)
    history = (Round(0.5, True, 0.5, math.nan, math.nan), Round(0.7, False, 0.0, 0.8, math.nan))
    ctx = BidContext(value=1.25, round=2, budget_left=math.inf, history=history)
    text = policy.prompt(ctx)
    assert "1.25" in text and "no budget limit" in text and "price 0.80" in text
    assert "nan" not in text  # hidden feedback is left out, not printed
    expected = MULTIPLIERS[choose(causal, text, policy.options)] * 1.25  # the peer: choose itself
    assert policy(ctx) == expected
    assert policy(ctx) == expected and (policy.calls, policy.lookups) == (1, 2)


contexts = st.builds(
    BidContext,
    value=st.floats(0.0, 100.0),
    round=st.integers(0, 1000),
    budget_left=st.one_of(st.just(math.inf), st.floats(0.0, 1e4)),
    history=st.lists(
        st.builds(
            Round,
            st.floats(0, 10),
            st.booleans(),
            st.floats(0, 10),
            st.sampled_from([math.nan, 0.3]),
            st.sampled_from([math.nan, 0.4]),
        ),
        max_size=4,
    ).map(tuple),
)


@settings(max_examples=15, deadline=None)
@given(contexts)
def test_every_answer_is_a_grid_bid(ctx):
    policy = LLMBidPolicy(_model(), multipliers=(0.0, 0.5, 0.9))
    bid = policy(ctx)
    assert math.isfinite(bid) and bid >= 0
    assert any(math.isclose(bid, m * ctx.value) for m in (0.0, 0.5, 0.9))


_MODELS: dict[str, object] = {}


def _model():
    # hypothesis tests cannot take function-scoped fixtures; one model per process
    return _MODELS.setdefault("tiny", load_model("tiny-causal"))


def _arena(factory, rounds: int = 30):
    cfg = ArenaConfig(
        rounds=rounds, repetitions=2, values=[1.0, 0.8], mechanism="first_price", window=rounds
    )
    return run_arena([factory, factory], cfg)


def test_in_the_arena_bids_stay_on_the_grid(causal):
    factory = llm_bidder(causal, multipliers=(0.3, 0.6, 0.9))
    log = _arena(factory)
    assert np.isin(np.round(log.bids / log.values, 10), [0.3, 0.6, 0.9]).all()
    assert arena_metrics(log).collusion_index.shape == (2,)
    policy = factory.keywords["policy"]
    assert policy.calls < policy.lookups == 30 * 2 * 2  # repeated situations hit the cache


def test_in_the_arena_spend_stays_within_budget(causal):
    log = _arena(llm_bidder(causal, multipliers=(0.9,), budget=2.0))
    # first price: a winner pays its bid; over the whole run no bidder pays more than 2
    paid = np.where(log.winners[..., None] == np.arange(2), log.bids, 0.0).sum(axis=0)
    assert (paid <= 2.0 + 1e-9).all() and paid.max() > 1.5


def test_bad_arguments_are_named(causal):
    with pytest.raises(AgentError, match="multipliers"):
        LLMBidPolicy(causal, multipliers=())
    with pytest.raises(AgentError, match="multipliers"):
        LLMBidPolicy(causal, multipliers=(0.5, float("nan")))
    with pytest.raises(AgentError, match="memory"):
        LLMBidPolicy(causal, memory=-1)
    with pytest.raises(AgentError, match="causal"):
        LLMBidPolicy(load_model("tiny-encoder"))(BidContext(1.0, 0, math.inf, ()))


def test_auction_still_imports_without_torch():
    code = "import sys, auction, auction.bidders; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
