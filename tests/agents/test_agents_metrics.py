"""The one NDCG@k and Precision@k: hand-computed values, edge rows, and properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from agents import AgentError, ndcg_at_k, precision_at_k

FALLING = np.array([5.0, 4.0, 3.0, 2.0, 1.0])  # ranks items 0, 1, 2, 3, 4


def test_relevant_items_at_ranks_two_and_four_of_five():
    relevance = np.array([0.0, 1.0, 0.0, 1.0, 0.0])
    # DCG@3 = 1/log2(3) (rank 2); IDCG@3 = 1 + 1/log2(3) (ranks 1 and 2)
    # NDCG@3 = (1/log2(3)) / (1 + 1/log2(3)) = 0.63093 / 1.63093 = 0.386853
    assert ndcg_at_k(FALLING, relevance, k=3) == pytest.approx(0.386853, abs=1e-6)
    assert precision_at_k(FALLING, relevance, k=3) == pytest.approx(1 / 3)


def test_graded_relevance_uses_linear_gain():
    relevance = np.array([1.0, 3.0, 0.0, 0.0, 0.0])
    # DCG@2 = 1/log2(2) + 3/log2(3) = 1 + 1.892789 = 2.892789
    # IDCG@2 = 3/log2(2) + 1/log2(3) = 3 + 0.630930 = 3.630930
    # NDCG@2 = 2.892789 / 3.630930 = 0.796707
    assert ndcg_at_k(FALLING, relevance, k=2) == pytest.approx(0.796707, abs=1e-6)
    assert precision_at_k(FALLING, relevance, k=2) == 1.0


def test_k_larger_than_n_ranks_everything_and_counts_empty_places():
    scores, relevance = np.array([1.0, 2.0]), np.array([1.0, 0.0])
    # the relevant item lands at rank 2: DCG = 1/log2(3), IDCG = 1
    assert ndcg_at_k(scores, relevance, k=10) == pytest.approx(1 / np.log2(3))
    assert precision_at_k(scores, relevance, k=10) == pytest.approx(0.1)


def test_rows_are_averaged_and_a_row_without_relevant_items_counts_zero():
    scores = np.array([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0]])
    relevance = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    assert ndcg_at_k(scores, relevance, k=2) == pytest.approx((1 / np.log2(3) + 0.0) / 2)
    assert precision_at_k(scores, relevance, k=2) == pytest.approx((0.5 + 0.0) / 2)
    assert ndcg_at_k(scores[1], relevance[1], k=2) == 0.0


def test_ties_keep_column_order():
    tied = np.zeros(3)
    assert ndcg_at_k(tied, np.array([1.0, 0.0, 0.0]), k=1) == 1.0
    assert ndcg_at_k(tied, np.array([0.0, 0.0, 1.0]), k=1) == 0.0
    assert precision_at_k(tied, np.array([0.0, 1.0, 0.0]), k=2) == 0.5


def test_bad_arguments_name_what_is_allowed():
    with pytest.raises(AgentError, match="k must be >= 1"):
        ndcg_at_k(FALLING, FALLING, k=0)
    with pytest.raises(AgentError, match="share a shape"):
        precision_at_k(FALLING, FALLING[:3], k=2)
    with pytest.raises(AgentError, match=">= 0"):
        ndcg_at_k(FALLING, -FALLING, k=2)


relevance_rows = arrays(
    np.float64,
    st.tuples(st.integers(1, 4), st.integers(1, 12)),
    elements=st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0]),
)


@given(relevance_rows, st.integers(1, 15), st.data())
def test_metrics_lie_in_the_unit_interval_and_the_ideal_order_scores_one(relevance, k, data):
    scores = data.draw(arrays(np.float64, relevance.shape, elements=st.floats(-10, 10)))
    assert 0.0 <= ndcg_at_k(scores, relevance, k) <= 1.0 + 1e-12
    assert 0.0 <= precision_at_k(scores, relevance, k) <= 1.0
    has_relevant = (relevance > 0).any(axis=1)
    ideal = ndcg_at_k(relevance, relevance, k)  # scores in the relevance order
    assert ideal == pytest.approx(has_relevant.mean())
