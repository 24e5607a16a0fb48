"""Client partitions: disjoint covers, seeded, and label skew that grows as alpha shrinks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from federation.lolafl import LoLaFLError, client_data, dirichlet_partition, iid_partition


def assert_partition(parts: list[np.ndarray], n: int) -> None:
    joined = np.concatenate(parts)
    assert joined.size == n
    np.testing.assert_array_equal(np.sort(joined), np.arange(n))


@given(
    st.integers(20, 400),
    st.integers(1, 10),
    st.integers(1, 6),
    st.floats(0.1, 100.0),
    st.integers(0, 2**32 - 1),
)
def test_dirichlet_partition_is_a_seeded_disjoint_cover(n, K, J, alpha, seed):
    labels = np.random.default_rng(seed).integers(0, J, n)
    try:
        parts = dirichlet_partition(labels, K, alpha, rng=seed)
    except LoLaFLError as err:
        # Few samples, one class and a small alpha can make non-empty clients too unlikely
        # (20 samples, 9 clients, alpha 0.25): the documented refusal, naming the way out.
        assert "raise alpha, or use fewer clients" in str(err)
        return
    assert len(parts) == K and min(p.size for p in parts) >= 1
    assert_partition(parts, n)
    again = dirichlet_partition(labels, K, alpha, rng=seed)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))


@given(st.integers(1, 300), st.integers(1, 20), st.integers(0, 2**32 - 1))
def test_iid_partition_is_a_balanced_cover(n, K, seed):
    if n < K:
        with pytest.raises(LoLaFLError, match="num_clients"):
            iid_partition(n, K, rng=seed)
        return
    parts = iid_partition(n, K, rng=seed)
    assert_partition(parts, n)
    assert max(p.size for p in parts) - min(p.size for p in parts) <= 1


def test_small_alpha_skews_labels_and_large_alpha_does_not():
    labels = np.repeat(np.arange(6), 500)

    def mean_top_share(alpha: float) -> float:
        shares = [
            np.bincount(labels[p], minlength=6).max() / p.size
            for seed in range(5)
            for p in dirichlet_partition(labels, 10, alpha, rng=seed)
        ]
        return float(np.mean(shares))

    skewed, mild, near_iid = mean_top_share(0.1), mean_top_share(1.0), mean_top_share(100.0)
    assert skewed > mild > near_iid
    assert skewed > 0.6 and near_iid < 0.25


def test_client_data_splits_each_partition_into_train_and_test():
    datas = [client_data("synthetic", k, 4, alpha=0.5, seed=3) for k in range(4)]
    sizes = [len(d.train_labels) + len(d.test_labels) for d in datas]
    assert sum(sizes) == 1200
    assert all(d.num_classes == 4 and len(d.train_labels) >= 1 for d in datas)
    same = client_data("synthetic", 2, 4, alpha=0.5, seed=3)
    np.testing.assert_array_equal(same.train_features, datas[2].train_features)


def test_bad_partition_input_raises_typed_errors(tmp_path):
    labels = np.zeros(10, dtype=int)
    with pytest.raises(LoLaFLError, match="alpha"):
        dirichlet_partition(labels, 2, 0.0)
    with pytest.raises(LoLaFLError, match="cannot give"):
        dirichlet_partition(labels, 11, 1.0)
    with pytest.raises(LoLaFLError, match="partition_id"):
        client_data("synthetic", 4, 4)
    with pytest.raises(LoLaFLError, match="synthetic"):
        client_data(str(tmp_path / "missing.npz"), 0, 2)
    np.savez(tmp_path / "bad.npz", x=np.ones(3))
    with pytest.raises(LoLaFLError, match="features"):
        client_data(str(tmp_path / "bad.npz"), 0, 2)
