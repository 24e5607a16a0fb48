"""A utility returning NaN or inf raises, naming the coalition, in every method (issue 14,
item 4): no method turns it into NaN values."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from incentives import METHODS, IncentiveError, shapley_values


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(METHODS),
    st.integers(2, 6),
    st.sampled_from([float("nan"), float("inf"), -float("inf")]),
    st.integers(0, 100),
)
def test_a_non_finite_utility_names_its_coalition(method, n, bad, seed):
    grand = frozenset(range(n))  # every method evaluates the grand coalition

    def utility(s: frozenset) -> float:
        return bad if s == grand else float(len(s)) ** 0.5

    expected = f"the utility of coalition {list(range(n))} is {bad}"
    with pytest.raises(IncentiveError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        shapley_values(utility, n, method=method, rng=seed)
