"""Real data from installed packages, and the ranking metrics every benchmark shares."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.datasets import clothing_reviews, movielens, movielens_users, precision_ndcg_at_k


def test_perfect_and_empty_rankings():
    ids = np.arange(20)
    scores = -ids.astype(float)  # item 0 ranked first
    assert precision_ndcg_at_k(scores, ids, set(range(10))) == (1.0, pytest.approx(1.0))
    assert precision_ndcg_at_k(scores, ids, {19}, seen={0}) == (0.0, 0.0)


def test_seen_items_are_not_candidates():
    ids = np.arange(5)
    p, n = precision_ndcg_at_k(np.array([9.0, 1, 1, 1, 1]), ids, {0}, seen={0}, k=1)
    assert (p, n) == (0.0, 0.0)


@given(st.lists(st.floats(-10, 10), min_size=1, max_size=40), st.integers(1, 12), st.data())
def test_metrics_are_in_unit_interval(scores, k, data):
    ids = np.arange(len(scores))
    relevant = data.draw(st.sets(st.integers(0, len(scores) - 1)))
    p, n = precision_ndcg_at_k(np.array(scores), ids, relevant, k=k)
    assert 0.0 <= p <= 1.0 and 0.0 <= n <= 1.0 + 1e-12


@pytest.mark.slow
def test_movielens_split_holds_out_the_newest_positives():
    ratings, text = movielens()
    assert len(ratings) == 100_000 and len(text) == 1682
    users = movielens_users(ratings, history=30)
    some = users[min(users)]
    assert len(some.history) <= 30 and some.test and not (some.test & some.seen)
    assert all(int(m) in text for m, _ in some.history)
    assert len(clothing_reviews()) > 20_000
