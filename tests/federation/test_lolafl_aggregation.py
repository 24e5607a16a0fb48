"""Aggregation: HM and full-rank CM equal the centralized layer; low rank degrades gracefully;
sample-weighted averaging of the clients' E_k does not give the global E."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from federation.lolafl import (
    LoLaFLError,
    aggregate,
    aggregate_messages,
    layer_params,
    layer_statistics,
    synthetic_subspaces,
)


@st.composite
def partitioned_data(draw, min_clients: int = 1):
    """Unit-norm features, labels covering all J classes, and any split into non-empty clients."""
    d = draw(st.integers(2, 8))
    J = draw(st.integers(1, 4))
    K = draw(st.integers(min_clients, 5))
    m = draw(st.integers(max(J, K), 40))
    eps2 = draw(st.floats(0.01, 2.0))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    Z = rng.normal(size=(m, d))
    Z /= np.linalg.norm(Z, axis=1, keepdims=True)
    labels = np.concatenate([np.arange(J), rng.integers(0, J, m - J)])
    owner = np.array(draw(st.lists(st.integers(0, K - 1), min_size=m, max_size=m)))
    owner[:K] = np.arange(K)  # every client holds at least one sample
    clients = [np.flatnonzero(owner == k) for k in range(K)]
    return Z, labels, J, eps2, clients


def stats_of(Z, labels, J, eps2, clients):
    return [layer_statistics(Z[idx], labels[idx], J, eps2) for idx in clients]


def assert_close(actual: np.ndarray, expected: np.ndarray, rel: float = 1e-8) -> None:
    """Entry-wise agreement to ``rel`` times the largest entry of ``expected``."""
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rel * np.abs(expected).max())


@given(partitioned_data())
def test_hm_equals_centralized_on_any_partition(case):
    Z, labels, J, eps2, _ = case
    ref = layer_params(Z, labels, J, eps2)
    agg = aggregate(stats_of(*case), scheme="hm")
    assert_close(agg.E, ref.E)
    assert_close(agg.C, ref.C)
    np.testing.assert_allclose(agg.gamma, ref.gamma, rtol=0, atol=1e-15)


@given(partitioned_data())
def test_cm_full_rank_equals_centralized(case):
    Z, labels, J, eps2, _ = case
    ref = layer_params(Z, labels, J, eps2)
    for rank in (None, Z.shape[1]):
        agg = aggregate(stats_of(*case), scheme="cm", rank=rank)
        assert_close(agg.E, ref.E)
        assert_close(agg.C, ref.C)


@given(partitioned_data())
def test_cm_low_rank_error_shrinks_with_rank_and_obeys_bound(case):
    Z, labels, J, eps2, _ = case
    stats = stats_of(*case)
    m, d = Z.shape
    ref = layer_params(Z, labels, J, eps2)
    alpha = d / (m * eps2)
    alpha_j = d / (ref.gamma * m * eps2)
    eigs = [[np.sort(np.linalg.eigvalsh(g))[::-1].clip(0) for g in s.grams] for s in stats]
    previous = np.inf
    for rank in range(1, d + 1):
        agg = aggregate(stats, scheme="cm", rank=rank)
        gap = agg.E - ref.E
        err = np.linalg.norm(gap, 2)
        # Truncation drops PSD mass, so E_r >= E in Loewner order and the gap only shrinks.
        assert np.linalg.eigvalsh(gap).min() >= -1e-9 * alpha
        assert err <= previous + 1e-9 * alpha
        previous = err
        # ||E_r - E|| <= alpha^2 * (sum of the dropped (rank+1)-th eigenvalues)
        tail = sum(e[rank] for client in eigs for e in client if rank < d)
        assert err <= alpha**2 * tail + 1e-9 * alpha
        for j in range(J):
            tail_j = sum(client[j][rank] for client in eigs if rank < d)
            err_j = np.linalg.norm(agg.C[j] - ref.C[j], 2)
            assert err_j <= alpha_j[j] ** 2 * tail_j + 1e-9 * alpha_j[j]


def test_cm_low_rank_keeps_most_of_the_layer_on_low_dimensional_classes():
    Z, y = synthetic_subspaces(1500, 32, 4, subspace_dim=3, noise=0.1, rng=0)
    clients = np.array_split(np.random.default_rng(1).permutation(len(y)), 5)
    stats = [layer_statistics(Z[i], y[i], 4, 0.1) for i in clients]
    ref = layer_params(Z, y, 4, 0.1)
    errors = [
        np.linalg.norm(aggregate(stats, "cm", rank=r).C - ref.C) / np.linalg.norm(ref.C)
        for r in (1, 3, 8, 32)
    ]
    assert errors == sorted(errors, reverse=True)
    assert errors[-1] < 1e-10


@given(partitioned_data(min_clients=2))
def test_sample_weighted_average_of_client_e_is_not_the_global_e(case):
    Z, labels, J, eps2, clients = case
    stats = stats_of(*case)
    m, d = Z.shape
    ref = layer_params(Z, labels, J, eps2)
    naive = sum(s.num_samples / m * s.message("hm").E for s in stats)
    # Operator convexity of t -> 1/(1 + c t) gives naive - E >= alpha (K-1) / (1 + d/eps2) I.
    alpha = d / (m * eps2)
    bound = alpha * (len(clients) - 1) / (1 + d / eps2)
    assert np.linalg.eigvalsh(naive - ref.E).min() >= bound * (1 - 1e-9)


def test_sample_weighted_average_is_far_off_on_real_sized_data():
    Z, y = synthetic_subspaces(2000, 32, 4, rng=3)
    clients = np.array_split(np.arange(len(y)), 5)
    stats = [layer_statistics(Z[i], y[i], 4, 0.1) for i in clients]
    ref = layer_params(Z, y, 4, 0.1)
    naive = sum(s.num_samples / len(y) * s.message("hm").E for s in stats)
    assert np.linalg.norm(naive - ref.E) / np.linalg.norm(ref.E) > 1.0
    hm = aggregate(stats, "hm")
    assert np.linalg.norm(hm.E - ref.E) / np.linalg.norm(ref.E) < 1e-10


def test_client_missing_a_class_contributes_nothing_to_that_class():
    Z, y = synthetic_subspaces(300, 8, 3, rng=0)
    held = y != 2
    stats = [
        layer_statistics(Z[held], y[held], 3, 0.1),
        layer_statistics(Z[~held], y[~held], 3, 0.1),
    ]
    msg = stats[0].message("hm")
    assert msg.C.shape == (2, 8, 8)  # no C for the class it does not hold
    ref = layer_params(Z, y, 3, 0.1)
    assert_close(aggregate(stats, "hm").C, ref.C)


def test_bad_input_raises_typed_errors():
    Z, y = synthetic_subspaces(60, 4, 2, rng=0)
    stats = [layer_statistics(Z, y, 2, 0.1)]
    with pytest.raises(LoLaFLError, match="scheme"):
        aggregate(stats, scheme="mean")
    with pytest.raises(LoLaFLError, match="rank applies only"):
        aggregate(stats, scheme="hm", rank=2)
    with pytest.raises(LoLaFLError, match="rank"):
        aggregate(stats, scheme="cm", rank=0)
    with pytest.raises(LoLaFLError, match="non-empty"):
        aggregate([], scheme="hm")
    with pytest.raises(LoLaFLError, match="not mixed"):
        aggregate_messages([stats[0].message("hm"), stats[0].message("cm")])
    only_zero = layer_statistics(Z[y == 0], y[y == 0], 2, 0.1)
    with pytest.raises(LoLaFLError, match=r"classes \[1\]"):
        aggregate([only_zero], scheme="cm")
    with pytest.raises(LoLaFLError, match="unit-norm"):
        layer_statistics(2 * Z, y, 2, 0.1)
    with pytest.raises(LoLaFLError, match="eps2"):
        layer_statistics(Z, y, 2, -1.0)
    with pytest.raises(LoLaFLError, match="labels must lie"):
        layer_statistics(Z, y + 5, 2, 0.1)
