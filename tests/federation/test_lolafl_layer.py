"""LoLaFL: HM and CM aggregation equal the centralized layer; weighted averaging does not."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.lolafl import (
    LoLaFLError,
    aggregate,
    apply_layer,
    dirichlet_partition,
    layer_statistics,
    normalize_rows,
    payload_bytes,
    train_federated,
)


def blobs(m: int, d: int, J: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, J, size=m)
    centers = rng.normal(size=(J, d)) * 2
    return normalize_rows(centers[y] + rng.normal(size=(m, d))), y


@st.composite
def partitioned(draw):
    d = draw(st.integers(2, 8))
    J = draw(st.integers(1, 4))
    m = draw(st.integers(max(J, 2), 60))
    K = draw(st.integers(1, min(6, m)))
    Z, y = blobs(m, d, J, draw(st.integers(0, 10_000)))
    owner = draw(st.lists(st.integers(0, K - 1), min_size=m, max_size=m))
    owner = np.array(owner)
    owner[:K] = np.arange(K)  # every client holds at least one sample
    parts = [np.flatnonzero(owner == k) for k in range(K)]
    return Z, y, J, parts


def centralized(Z, y, J, eps2=0.5):
    return aggregate([layer_statistics(Z, y, J, eps2)])


@settings(max_examples=40)
@given(partitioned())
def test_hm_equals_centralized_on_any_partition(case):
    Z, y, J, parts = case
    central = centralized(Z, y, J)
    fed = aggregate([layer_statistics(Z[p], y[p], J, 0.5) for p in parts], scheme="hm")
    np.testing.assert_allclose(fed.E, central.E, atol=1e-8)
    np.testing.assert_allclose(fed.C, central.C, atol=1e-8)
    np.testing.assert_allclose(fed.gamma, central.gamma, atol=1e-15)


@settings(max_examples=40)
@given(partitioned())
def test_cm_full_rank_equals_centralized(case):
    Z, y, J, parts = case
    central = centralized(Z, y, J)
    fed = aggregate([layer_statistics(Z[p], y[p], J, 0.5) for p in parts], scheme="cm")
    np.testing.assert_allclose(fed.E, central.E, atol=1e-8)
    np.testing.assert_allclose(fed.C, central.C, atol=1e-8)


def test_cm_lower_rank_degrades_gracefully():
    Z, y = blobs(300, 12, 3, seed=1)
    parts = np.array_split(np.arange(300), 5)
    stats = [layer_statistics(Z[p], y[p], 3, 0.5) for p in parts]
    central = centralized(Z, y, 3)
    errors = [
        np.linalg.norm(aggregate(stats, scheme="cm", rank=r).E - central.E) for r in range(1, 13)
    ]
    assert errors[-1] < 1e-8
    assert all(b <= a + 1e-9 for a, b in itertools.pairwise(errors))  # monotone
    assert errors[5] < 0.5 * errors[0]


def test_sample_weighted_average_of_e_is_not_the_global_layer():
    Z, y = blobs(200, 6, 2, seed=2)
    parts = [np.arange(0, 30), np.arange(30, 200)]
    stats = [layer_statistics(Z[p], y[p], 2, 0.5) for p in parts]
    weighted = sum(s.m * s.E for s in stats) / sum(s.m for s in stats)
    central = centralized(Z, y, 2)
    assert np.linalg.norm(weighted - central.E) > 1e-2 * np.linalg.norm(central.E)
    np.testing.assert_allclose(aggregate(stats).E, central.E, atol=1e-8)


def test_client_without_a_class_contributes_nothing_to_it():
    Z, y = blobs(80, 5, 2, seed=3)
    only0 = np.flatnonzero(y == 0)[:10]
    rest = np.setdiff1d(np.arange(80), only0)
    stats = [
        layer_statistics(Z[only0], y[only0], 2, 0.5),
        layer_statistics(Z[rest], y[rest], 2, 0.5),
    ]
    assert not stats[0].C[1].any()
    np.testing.assert_allclose(aggregate(stats).C, centralized(Z, y, 2).C, atol=1e-8)


def test_federated_training_is_partition_invariant():
    Z, y = blobs(240, 8, 3, seed=4)
    central, _ = train_federated([(Z, y)], 3, layers=3)
    parts = dirichlet_partition(y, 6, alpha=0.1, rng=0)
    fed, history = train_federated([(Z[p], y[p]) for p in parts], 3, layers=3)
    np.testing.assert_allclose(fed.transform(Z), central.transform(Z), atol=1e-7)
    assert (fed.predict(Z) == central.predict(Z)).all()
    assert (central.predict(Z) == y).mean() > 0.9
    assert len(history.bytes_up) == 4  # 3 layers + the head


def test_layer_update_keeps_unit_norm():
    Z, y = blobs(50, 4, 2, seed=5)
    layer = centralized(Z, y, 2)
    out = apply_layer(Z, layer, eta=0.5, labels=y)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0)
    soft = apply_layer(Z, layer, eta=0.5)
    np.testing.assert_allclose(np.linalg.norm(soft, axis=1), 1.0)


@given(st.integers(1, 8), st.floats(0.1, 100.0), st.integers(0, 1000))
def test_dirichlet_partition_covers_every_sample_once(k, alpha, seed):
    y = np.random.default_rng(seed).integers(0, 4, size=100)
    parts = dirichlet_partition(y, k, alpha, rng=seed)
    assert len(parts) == k and all(p.size for p in parts)
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(100))


def test_small_alpha_is_non_iid():
    y = np.repeat(np.arange(5), 200)
    classes = lambda parts: np.mean([np.unique(y[p]).size for p in parts])  # noqa: E731
    assert classes(dirichlet_partition(y, 10, 0.1, rng=0)) < classes(
        dirichlet_partition(y, 10, 100.0, rng=0)
    )


def test_payload_bytes():
    Z, y = blobs(40, 6, 3, seed=6)
    s = layer_statistics(Z, y, 3, 0.5)
    present = int((s.counts > 0).sum())
    assert payload_bytes(s, "hm") == (1 + present) * 36 * 4 + 3 * 8
    assert payload_bytes(s, "cm", rank=2) == (1 + present) * 12 * 4 + 3 * 8


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: layer_statistics(np.ones((3, 2)), np.zeros(3, int), 1, 0.5), "unit-norm"),
        (lambda: layer_statistics(np.eye(2), np.array([0, 2]), 2, 0.5), "labels must lie"),
        (lambda: layer_statistics(np.eye(2), np.array([0, 1]), 2, 0.0), "eps2"),
        (lambda: aggregate([]), "at least one"),
        (
            lambda: aggregate([layer_statistics(np.eye(2), np.array([0, 1]), 2, 0.5)], "avg"),
            "scheme",
        ),
        (lambda: dirichlet_partition(np.zeros(3), 5, 1.0), "cannot fill"),
    ],
)
def test_bad_input_is_named(call, match):
    with pytest.raises(LoLaFLError, match=match):
        call()
