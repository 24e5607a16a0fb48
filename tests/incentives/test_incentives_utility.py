"""The coalition cache and the federated-learning utility."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from incentives import CachedUtility, IncentiveError, fl_utility


def test_cache_counts_distinct_coalitions():
    calls = []
    u = CachedUtility(lambda s: calls.append(s) or float(sum(s)))
    assert u(frozenset({1, 2})) == u(frozenset({2, 1})) == 3.0
    assert u.evaluations == len(calls) == 1
    assert frozenset({1, 2}) in u and frozenset({1}) not in u and u.evaluations == 1


@given(
    st.lists(st.floats(0.1, 10), min_size=1, max_size=6),
    st.lists(st.booleans(), min_size=6, max_size=6),
)
def test_fl_utility_is_the_weighted_mean_update(weights, members):
    rng = np.random.default_rng(0)
    n = len(weights)
    w_t = {"a": rng.normal(size=(2, 3)), "b": rng.normal(size=1)}
    updates = [{k: rng.normal(size=v.shape) for k, v in w_t.items()} for _ in range(n)]
    seen = {}
    u = fl_utility(w_t, updates, weights, lambda p: seen.update(p) or 0.0)
    S = frozenset(i for i in range(n) if members[i])
    u(S)
    w = np.array(weights)
    for k in w_t:
        expected = w_t[k] + (sum(w[i] * updates[i][k] for i in S) / w[list(S)].sum() if S else 0.0)
        np.testing.assert_allclose(seen[k], expected)


def test_fl_utility_leaves_the_global_model_alone():
    w_t = {"w": np.zeros(2)}
    u = fl_utility(w_t, [{"w": np.ones(2)}], [1.0], lambda p: p["w"].__iadd__(5).sum())
    assert u(frozenset()) == 10.0 and u(frozenset({0})) == 12.0 and w_t["w"].tolist() == [0, 0]


@pytest.mark.parametrize(
    ("updates", "weights", "match"),
    [
        ([{"w": np.ones(2)}], [1.0, 2.0], "weights must be 1"),
        ([{"w": np.ones(2)}], [-1.0], "weights"),
        ([{"w": np.ones(3)}], [1.0], r"updates\[0\]"),
        ([{"v": np.ones(2)}], [1.0], r"updates\[0\]"),
    ],
)
def test_fl_utility_bad_input(updates, weights, match):
    with pytest.raises(IncentiveError, match=match):
        fl_utility({"w": np.zeros(2)}, updates, weights, lambda p: 0.0)
