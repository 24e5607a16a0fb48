"""Scoring: predicted CTR in (0, 1), explanations that add up to the logit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from agents.scoring import context_vector, explain, initial_head, logits, predict_ctr

D = 6


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


vectors = arrays(np.float64, (4, D), elements=st.floats(0.1, 1.0))


@given(
    vectors,
    vectors,
    arrays(np.float64, 4, elements=st.floats(0.01, 3.0)),
    st.floats(-3.0, 3.0),
    st.floats(-2.0, 2.0),
)
def test_contributions_add_up_to_the_logit(events, ads, weights, prior, prior_weight):
    events, ads = _unit(events), _unit(ads)
    head = initial_head(D)
    head["head.gain"] = np.linspace(0.5, 1.5, D, dtype=np.float32)
    head["head.prior"] = np.array([prior_weight], dtype=np.float32)
    why = explain(events, weights, [10, 11, 12, 13], ads[0], head, top=4, prior=prior)
    logit = logits(context_vector(events, weights), ads[:1], head, prior)[0]
    rest = head["head.bias"][0] + head["head.prior"][0] * prior  # no event's share
    assert abs(sum(why.contributions) + rest - logit) < 1e-4
    assert list(why.contributions) == sorted(why.contributions, reverse=True)
    assert sorted(why.event_ids) == [10, 11, 12, 13]
    ctr = predict_ctr(context_vector(events, weights), ads, head, prior)
    assert np.all((ctr > 0) & (ctr < 1))
    assert why.predicted_ctr == pytest.approx(float(ctr[0]), rel=1e-5)


def test_empty_context_scores_by_bias_only():
    head = initial_head(D)
    ads = _unit(np.ones((2, D)))
    c = context_vector(np.zeros((0, D), dtype=np.float32), np.zeros(0))
    assert np.allclose(predict_ctr(c, ads, head), 1 / (1 + np.exp(4.0)))
    assert explain(np.zeros((0, D), np.float32), np.zeros(0), [], ads[0], head).event_ids == ()


def test_a_fresh_head_ignores_the_prior():
    head, ads = initial_head(D), _unit(np.eye(D)[:3] + 0.1)
    c = context_vector(ads[:1], np.ones(1))
    np.testing.assert_array_equal(
        predict_ctr(c, ads, head), predict_ctr(c, ads, head, np.array([5.0, -5.0, 0.0]))
    )


def _explain_before(events, weights, event_ids, ad, head, top, prior):
    """The explanation as computed before the shared context sum (issue 18): the reference."""
    ctr = float(predict_ctr(context_vector(events, weights), ad[None], head, prior)[0])
    v = weights.astype(np.float32) @ events
    norm = float(np.linalg.norm(v)) or 1.0
    share = head["head.scale"][0] * weights * (events @ (ad * head["head.gain"])) / norm
    order = np.argsort(-share, kind="stable")[:top]
    return ctr, tuple(int(event_ids[i]) for i in order), tuple(float(share[i]) for i in order)


@given(
    arrays(np.float64, (4, D), elements=st.floats(-1.0, 1.0)),
    arrays(np.float64, 4, elements=st.floats(0.0, 3.0)),
    st.integers(0, 5),
    st.floats(-3.0, 3.0),
    st.booleans(),
)
def test_explain_is_bit_identical_to_the_previous_formula(raw, weights, top, prior, cancel):
    events = raw.astype(np.float32)
    if cancel:  # two opposite events of equal weight: the weighted sum is exactly 0
        events[1], weights[1] = -events[0], weights[0]
        events[2:], weights[2:] = 0.0, 0.0
    head = initial_head(D)
    head["head.gain"] = np.linspace(0.5, 1.5, D, dtype=np.float32)
    head["head.prior"] = np.array([0.7], dtype=np.float32)
    ad = _unit(np.arange(1.0, D + 1)[None])[0]
    why = explain(events, weights, [3, 1, 4, 1], ad, head, top=top, prior=prior)
    assert (why.predicted_ctr, why.event_ids, why.contributions) == _explain_before(
        events, weights, [3, 1, 4, 1], ad, head, top, prior
    )
