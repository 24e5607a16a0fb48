"""Causal-LM agents: log-likelihood scoring (cached), prompt templates, shared adapters."""

from __future__ import annotations

import gc
import math
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import auction
from agents import Ad, Agent, AgentError, PrivateContext, load_model, loglik_teacher
from agents.loglik_scoring import BASELINE_WEIGHT, CONTEXT_TOKENS, relevance
from agents.prompts import NEUTRAL_PROMPT, context_prompt

ADS = [
    Ad("a1", "a red dress for summer", 2.0),
    Ad("a2", "dark roast coffee beans", 1.5),
    Ad("a3", "waterproof camping tent", 1.0),
]


@pytest.fixture(scope="module")
def causal():
    return load_model("tiny-causal")


def naive_token_logprobs(bb, context: str, cont: str) -> np.ndarray:
    """Log-prob of each token of ``cont`` after ``context``: the whole sequence in one run, no
    cache (the peer the cached, batched path must match)."""
    tok = bb.tokenizer
    ctx_ids = tok(context, return_tensors="pt")["input_ids"]
    cont_ids = tok(cont, add_special_tokens=False, return_tensors="pt")["input_ids"]
    ids = torch.cat([ctx_ids, cont_ids], 1)
    with torch.no_grad():
        logp = torch.log_softmax(bb.model(input_ids=ids).logits[0, :-1].float(), -1)
    k = ctx_ids.shape[1]
    return logp[k - 1 :].gather(-1, ids[0, k:, None])[:, 0].double().numpy()


def naive_loglik(bb, context: str, cont: str) -> float:
    """Mean token log-prob of ``cont`` after ``context`` (:func:`naive_token_logprobs`)."""
    return float(naive_token_logprobs(bb, context, cont).mean())


def naive_relevance(bb, prompt: str, cont: str, w: float, k: int | None) -> float:
    """The documented map, by hand: the first ``k`` tokens (all when None) after ``prompt``,
    the rest after the neutral prompt, less ``w`` times the neutral mean."""
    ctx, neutral = (
        naive_token_logprobs(bb, prompt, cont),
        naive_token_logprobs(bb, NEUTRAL_PROMPT, cont),
    )
    k = len(ctx) if k is None else k
    return float((ctx[:k].sum() + neutral[k:].sum()) / len(ctx) - w * neutral.mean())


@contextmanager
def counting(bb) -> Iterator[list[int]]:
    """Within the block, each run of the transformer body appends its batch size."""
    calls: list[int] = []
    hook = bb.core.register_forward_pre_hook(
        lambda module, args, kwargs: calls.append(int(kwargs["input_ids"].shape[0])),
        with_kwargs=True,
    )
    try:
        yield calls
    finally:
        hook.remove()


def shopper(bb, scorer="loglik") -> Agent:
    agent = Agent(bb, PrivateContext(), scorer=scorer)
    agent.context.add("view", "red summer dress", time=0.0)
    agent.context.add("purchase", "coffee beans", time=10.0)
    return agent


def test_loglik_runs_each_context_once_and_repeated_lists_are_lookups():
    bb = load_model("tiny-causal")
    with counting(bb) as calls:
        _check_counts(bb, calls)


def _check_counts(bb, calls: list[int]) -> None:
    shoes, tent, coffee = " running shoes", " a tent", " hot coffee"  # 2+ tokens each
    first = bb.loglik("viewed sneakers", [shoes, tent, shoes])
    assert calls == [1, 2]  # the context once, the two distinct continuations in one batch
    again = bb.loglik("viewed sneakers", [shoes, tent, shoes])
    assert again is first and not first.flags.writeable and calls == [1, 2]
    bb.loglik("viewed sneakers", [tent, coffee])
    assert calls == [1, 2, 1]  # the prefix is reused; only the new continuation runs
    bb.loglik("bought coffee", [tent])
    assert calls == [1, 2, 1, 1, 1]
    bb.active_version = "another adapter"
    bb.loglik("viewed sneakers", [tent])
    assert calls == [1, 2, 1, 1, 1, 1, 1]  # another adapter version: nothing reused
    bb.token_logprobs("bought a lamp", [shoes, tent, coffee], max_tokens=1)
    assert calls == [1, 2, 1, 1, 1, 1, 1, 1]  # first tokens only: the context's logits


conts = st.lists(st.sampled_from([" shoes", " a red dress", " tent", " coffee beans"]), max_size=6)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conts, st.integers(1, 4), st.sampled_from(["viewed sneakers", "bought a tent"]))
def test_cached_batched_loglik_equals_the_whole_sequence_run(texts, batch_size, context):
    bb = _BB
    bb.clear_cache()
    scores = bb.loglik(context, texts, batch_size=batch_size)
    assert scores.shape == (len(texts),)
    for score, text in zip(scores, texts, strict=True):
        assert score == pytest.approx(naive_loglik(bb, context, text), abs=1e-4)
    np.testing.assert_array_equal(bb.loglik(context, texts[::-1]), scores[::-1])


_BB = load_model("tiny-causal")


def test_loglik_agent_ctr_is_the_documented_map(causal):
    agent = shopper(causal)
    prompt = context_prompt(agent.context.scored_events())
    assert prompt == (
        "The user recently purchased: coffee beans; viewed: red summer dress.\n"
        "The user would click on an ad for:"
    )
    ctr = agent.predict_ctr([a.text for a in ADS], 0.5)
    for c, ad in zip(ctr, ADS, strict=True):
        rel = naive_relevance(causal, prompt, " " + ad.text, BASELINE_WEIGHT, CONTEXT_TOKENS)
        # initial head: scale 4, bias -4, prior weight 0 (the prior has no effect yet)
        assert c == pytest.approx(1 / (1 + math.exp(-(4 * rel - 4))), rel=1e-3)
    decision = agent.choose_ad(ADS, reserve=0.01, rng=0)
    expected = auction.run_auction([a.bid for a in ADS], reserve=0.01, quality=ctr, rng=0)
    assert decision.winner == ADS[int(expected.winners[0])].ad_id
    assert decision.price == pytest.approx(float(expected.prices[0]))


@pytest.mark.parametrize("k", [1, 2, None])
@pytest.mark.parametrize("w", [0.0, 0.5, 1.0])
def test_the_agents_weight_and_context_tokens_are_the_ones_of_the_map(causal, w, k):
    context = shopper(causal).context
    agent = Agent(causal, context, scorer="loglik", baseline_weight=w, context_tokens=k)
    prompt = context_prompt(agent.context.scored_events())
    ctr = agent.predict_ctr([a.text for a in ADS])
    for c, ad in zip(ctr, ADS, strict=True):
        rel = naive_relevance(causal, prompt, " " + ad.text, w, k)
        assert c == pytest.approx(1 / (1 + math.exp(-(4 * rel - 4))), rel=1e-3)
    agent.choose_ad(ADS, reserve=0.01, rng=0)
    assert agent.last_explanation is not None  # the explanation runs with the same weight
    with pytest.raises(AgentError, match="baseline_weight"):
        Agent(causal, scorer="loglik", baseline_weight=1.5)


@pytest.mark.parametrize(("k", "runs"), [(1, [1]), (None, [1, 3])])
def test_loglik_agent_caches_until_the_context_changes(causal, k, runs):
    causal.clear_cache()  # the other case's prompts are cached on this shared backbone
    agent = Agent(causal, shopper(causal).context, scorer="loglik", context_tokens=k)
    agent.choose_ad(ADS, rng=0)
    with counting(causal) as calls:
        _check_agent_counts(agent, calls, runs)


def _check_agent_counts(agent: Agent, calls: list[int], runs: list[int]) -> None:
    agent.choose_ad(ADS, rng=1)
    agent.predict_ctr([a.text for a in ADS])
    assert calls == []  # a repeated candidate list is a lookup
    before = agent.predict_ctr([a.text for a in ADS])
    agent.context.add("search", "camping tent", time=20.0)
    agent.choose_ad(ADS, rng=0)
    # the new prompt once; exact: the three ads once (the baseline is cached), k = 1: no ad
    assert calls == runs
    after = agent.predict_ctr([a.text for a in ADS])
    # relative: with a baseline weight < 1 the initial head's CTRs are far below 0.018
    assert calls == runs and not np.allclose(before, after, rtol=1e-6, atol=0.0)
    assert agent.last_explanation.predicted_ctr == pytest.approx(
        after[[a.ad_id for a in ADS].index(agent.choose_ad(ADS, rng=0).winner)]
    )


def test_loglik_explanation_names_the_prompt_events(causal):
    agent = shopper(causal)
    agent.choose_ad(ADS, rng=0)
    why = agent.last_explanation
    assert 0 < why.predicted_ctr < 1 and len(why.event_ids) == 2
    assert {e.text for e in agent.audit()} == {"red summer dress", "coffee beans"}
    assert list(why.contributions) == sorted(why.contributions, reverse=True)


def test_bad_scorer_arguments(causal):
    with pytest.raises(AgentError, match="scorer must be one of"):
        Agent(causal, scorer="bm25")
    with pytest.raises(AgentError, match="scorer='loglik' needs a causal"):
        Agent(load_model("tiny-encoder"), scorer="loglik")


events = st.lists(
    st.tuples(
        st.sampled_from(["view", "purchase", "search", "cart"]),
        st.text(st.characters(min_codepoint=97, max_codepoint=122), min_size=3, max_size=8),
    ),
    max_size=15,
)


@settings(max_examples=50, deadline=None)
@given(events, st.integers(1, 12))
def test_prompt_names_exactly_the_newest_events(history, max_events):
    ctx = PrivateContext()
    for t, (kind, text) in enumerate(history):
        ctx.add(kind, f"<{text}>", time=float(t))  # brackets: no text is inside another
    prompt = context_prompt(ctx.scored_events(), max_events)
    named = {f"<{text}>" for _, text in history[-max_events:]}
    for _, text in history:
        assert (f"<{text}>" in prompt) == (f"<{text}>" in named)
    assert prompt.endswith("The user would click on an ad for:")
    assert (prompt == NEUTRAL_PROMPT) == (not history)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from([a.text for a in ADS] + ["tent", "shoes"]), min_size=1))
def test_loglik_ctr_is_a_probability(texts):
    ctr = _AGENT.predict_ctr(texts)
    assert np.all((ctr > 0) & (ctr < 1))


_AGENT = shopper(_BB)


def test_agents_with_the_global_state_share_one_copy_and_training_copies_on_write():
    bb = load_model("tiny-encoder")
    first = Agent(bb)
    global_state = {k: v + 0.01 for k, v in first.state().items()}  # a new "global" adapter
    agents = [Agent(bb, state=global_state) for _ in range(50)]
    one = agents[0].state()
    # one set of arrays for all 50 (and for the first agent's initial state, another)
    assert bb.states.nbytes == 2 * agents[0].nbytes
    for agent in agents[1:]:
        for k in one:
            assert np.shares_memory(agent._state[k], agents[0]._state[k])
    assert all(np.array_equal(agents[0].state()[k], global_state[k]) for k in global_state)
    for i, t in enumerate(["red summer dress", "coffee beans", "tent", "shoes"]):
        agents[0].context.record_impression(f"a{i}", t, i % 2, time=float(i))
    agents[0].train_local(epochs=1, batch_size=2, noise_multiplier=0.5, rng=0)
    assert agents[0].state_version != agents[1].state_version
    for agent in agents[1:]:  # the others kept the global state, still shared
        assert all(np.array_equal(agent.state()[k], one[k]) for k in one)
        assert agent.state_version == agents[1].state_version
    assert bb.states.nbytes == 3 * agents[0].nbytes
    with pytest.raises(AgentError, match="read-only"):
        agents[1]._state["head.bias"] = np.zeros(1, np.float32)
    assert not agents[1]._state["head.bias"].flags.writeable
    del agents[1:], agent  # the loop variable held the last one
    gc.collect()
    assert len(bb.states) == 2  # nobody holds the global state any longer: dropped


def test_train_local_refuses_a_loglik_agent(causal):
    agent = shopper(causal)
    agent.context.record_impression("a1", "tent", 1, time=30.0)
    with pytest.raises(AgentError, match="train_local fits the embedding scorer"):
        agent.train_local(noise_multiplier=1.0, rng=0)


_ENC = load_model("tiny-encoder")
_BASE = Agent(_ENC).state()
_VARIANTS = [{k: v + np.float32(0.01 * i) for k, v in _BASE.items()} for i in range(3)]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 2), min_size=1, max_size=8))
def test_agents_share_arrays_exactly_when_their_states_are_equal(picks):
    agents = [Agent(_ENC, state=_VARIANTS[i]) for i in picks]
    for a, i in zip(agents, picks, strict=True):
        assert all(np.array_equal(a.state()[k], _VARIANTS[i][k]) for k in _BASE)
        for b, j in zip(agents, picks, strict=True):
            shared = np.shares_memory(a._state["head.gain"], b._state["head.gain"])
            assert shared == (i == j) and (a.state_version == b.state_version) == (i == j)


SHOPPER_PROMPT = (  # written out by hand: the prompt of shopper()'s two events
    "The user recently purchased: coffee beans; viewed: red summer dress.\n"
    "The user would click on an ad for:"
)
NEUTRAL_TEXT = "The user has no recent activity.\nThe user would click on an ad for:"
RANKED = ["a red dress for summer", "dark roast coffee beans", "waterproof camping tent", "shoes"]


def test_baseline_weight_zero_is_plain_loglik_and_one_the_difference():
    bb = load_model("tiny-causal")
    plain = np.array([naive_loglik(bb, SHOPPER_PROMPT, " " + t) for t in RANKED])
    neutral = np.array([naive_loglik(bb, NEUTRAL_TEXT, " " + t) for t in RANKED])
    exact = {"context_tokens": None}
    with counting(bb) as calls:
        at0 = relevance(bb, SHOPPER_PROMPT, RANKED, baseline_weight=0.0, **exact)
    assert calls == [1, len(RANKED)]  # w = 0 never runs the neutral prompt
    at1 = relevance(bb, SHOPPER_PROMPT, RANKED, baseline_weight=1.0, **exact)
    half = relevance(bb, SHOPPER_PROMPT, RANKED, baseline_weight=0.5, **exact)
    np.testing.assert_allclose(at0, plain, atol=1e-4)
    np.testing.assert_allclose(at1, plain - neutral, atol=1e-4)
    np.testing.assert_allclose(half, plain - 0.5 * neutral, atol=1e-4)
    order0, order1 = np.argsort(-at0).tolist(), np.argsort(-at1).tolist()
    assert order0 == np.argsort(-plain).tolist()
    assert order1 == np.argsort(-(plain - neutral)).tolist()
    assert order0 != order1  # the weight changes the ranking here, so the test can tell


@settings(max_examples=25, deadline=None)
@given(st.floats(0.0, 1.0), st.lists(st.sampled_from(RANKED), min_size=1, max_size=4))
def test_relevance_is_affine_in_the_baseline_weight(w, texts):
    at0 = relevance(_BB, SHOPPER_PROMPT, texts, 0.0)
    at1 = relevance(_BB, SHOPPER_PROMPT, texts, 1.0)
    got = relevance(_BB, SHOPPER_PROMPT, texts, w)
    np.testing.assert_allclose(got, (1 - w) * at0 + w * at1, atol=1e-5)


@pytest.mark.parametrize(
    "w", [-0.1, 1.01, float("nan"), float("inf"), np.float32(2), "0.5", True, None]
)
def test_bad_baseline_weight_is_refused(causal, w):
    with pytest.raises(AgentError, match=r"baseline_weight must be a number in \[0, 1\]"):
        relevance(causal, SHOPPER_PROMPT, RANKED, baseline_weight=w)


def test_loglik_teacher_scores_after_the_agents_scoring_prompt(causal):
    teacher = loglik_teacher(causal)
    got = teacher(shopper(causal).context, RANKED, np.zeros(len(RANKED)))
    want = [naive_loglik(causal, SHOPPER_PROMPT, " " + t) for t in RANKED]
    np.testing.assert_allclose(got, want, atol=1e-4)
    empty = teacher(PrivateContext(), RANKED[:2], np.zeros(2))
    want = [naive_loglik(causal, NEUTRAL_TEXT, " " + t) for t in RANKED[:2]]
    np.testing.assert_allclose(empty, want, atol=1e-4)


def test_explanation_shares_do_not_depend_on_the_baseline_weight(causal):
    from agents.loglik_scoring import explain_loglik

    agent = shopper(causal)
    events = agent.context.scored_events()
    head = agent.state()
    at0 = explain_loglik(causal, events, RANKED[0], head, baseline_weight=0.0)
    at1 = explain_loglik(causal, events, RANKED[0], head, baseline_weight=1.0)
    assert at0.event_ids == at1.event_ids
    np.testing.assert_allclose(at0.contributions, at1.contributions, atol=1e-5)  # cancels
    neutral = naive_loglik(causal, NEUTRAL_TEXT, " " + RANKED[0])
    # the CTRs differ by the neutral term in the logit: logit1 = logit0 - 4 * ll(ad | neutral)
    logit = [math.log(c / (1 - c)) for c in (at0.predicted_ctr, at1.predicted_ctr)]
    assert logit[1] - logit[0] == pytest.approx(-4 * neutral, abs=1e-3)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conts, st.integers(1, 3), st.one_of(st.none(), st.integers(1, 5)))
def test_token_logprobs_equal_the_whole_sequence_run(texts, batch_size, max_tokens):
    bb = _BB
    bb.clear_cache()
    rows = bb.token_logprobs("viewed sneakers", texts, max_tokens=max_tokens, batch_size=batch_size)
    for row, text in zip(rows, texts, strict=True):
        want = naive_token_logprobs(bb, "viewed sneakers", text)[:max_tokens]
        assert row.dtype == np.float64 and not row.flags.writeable
        np.testing.assert_allclose(row, want, atol=1e-4)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from(RANKED), min_size=1, max_size=4), st.integers(1, 4), st.floats(0, 1)
)
def test_context_tokens_score_the_first_tokens_after_the_context_the_rest_neutral(texts, k, w):
    got = relevance(_BB, SHOPPER_PROMPT, texts, w, context_tokens=k)
    want = [naive_relevance(_BB, SHOPPER_PROMPT, " " + t, w, k) for t in texts]
    np.testing.assert_allclose(got, want, atol=1e-4)
    longest = max(len(_BB.tokenizer(" " + t, add_special_tokens=False)["input_ids"]) for t in texts)
    exact = relevance(_BB, SHOPPER_PROMPT, texts, w, context_tokens=None)
    np.testing.assert_allclose(
        relevance(_BB, SHOPPER_PROMPT, texts, w, context_tokens=longest), exact, atol=1e-5
    )


@pytest.mark.parametrize("k", [0, -1, 1.5, True, "1"])
def test_bad_context_tokens_are_refused(causal, k):
    with pytest.raises(AgentError, match=r"context_tokens must be an int >= 1"):
        relevance(causal, SHOPPER_PROMPT, RANKED, context_tokens=k)
    with pytest.raises(AgentError, match=r"context_tokens must be an int >= 1"):
        Agent(causal, scorer="loglik", context_tokens=k)
    with pytest.raises(AgentError, match=r"max_tokens must be an int >= 1"):
        causal.token_logprobs(SHOPPER_PROMPT, RANKED, max_tokens=k)
