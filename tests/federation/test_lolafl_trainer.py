"""The layer-wise trainer: federated equals centralized, the classifier, save/load, costs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.lolafl import (
    LoLaFLError,
    LoLaFLModel,
    LoLaFLSettings,
    apply_layer,
    dirichlet_partition,
    fit,
    layer_params,
    normalize_rows,
    synthetic_subspaces,
)


def centralized_layers(Z, y, J, cfg: LoLaFLSettings):
    """ReduNet built directly from the definition on all data: the reference."""
    Z = normalize_rows(Z)
    layers = []
    for _ in range(cfg.num_layers + 1):
        layers.append(layer_params(Z, y, J, cfg.eps2))
        Z = apply_layer(Z, layers[-1], cfg.eta, labels=y)
    return layers


@settings(max_examples=15)
@given(
    st.integers(1, 6),
    st.floats(0.1, 100.0),
    st.integers(0, 3),
    st.sampled_from([("hm", None), ("cm", None)]),
    st.integers(0, 2**32 - 1),
)
def test_federated_training_equals_centralized(K, alpha, L, scheme_rank, seed):
    Z, y = synthetic_subspaces(240, 12, 3, rng=seed)
    parts = dirichlet_partition(y, K, alpha, rng=seed)
    cfg = LoLaFLSettings(num_layers=L, scheme=scheme_rank[0], rank=scheme_rank[1], subspace_dim=3)
    model = fit([(Z[p], y[p]) for p in parts], 3, cfg).model
    ref = centralized_layers(Z, y, 3, cfg)
    for got, want in zip([*model.layers, model.head], ref, strict=True):
        scale = np.abs(want.C).max()
        np.testing.assert_allclose(got.E, want.E, rtol=0, atol=1e-8 * scale)
        np.testing.assert_allclose(got.C, want.C, rtol=0, atol=1e-8 * scale)


def test_model_classifies_held_out_subspace_data():
    Z, y = synthetic_subspaces(2000, 32, 5, subspace_dim=4, noise=1.5, rng=4)
    train, test = slice(0, 1500), slice(1500, None)
    parts = dirichlet_partition(y[train], 8, 0.3, rng=0)
    clients = [(Z[train][p], y[train][p]) for p in parts]
    accuracy = {}
    for L in (0, 4):
        model = fit(clients, 5, LoLaFLSettings(num_layers=L, subspace_dim=4)).model
        accuracy[L] = model.accuracy(Z[test], y[test])
        assert model.accuracy(Z[test], y[test], method="softmax") > 0.5
    assert accuracy[0] > 0.8 and accuracy[4] > 0.8


def test_low_rank_cm_degrades_gracefully_in_accuracy():
    Z, y = synthetic_subspaces(2000, 32, 5, subspace_dim=4, noise=1.5, rng=5)
    train, test = slice(0, 1500), slice(1500, None)
    parts = dirichlet_partition(y[train], 8, 0.3, rng=1)
    clients = [(Z[train][p], y[train][p]) for p in parts]

    def accuracy(scheme: str, rank: int | None) -> float:
        cfg = LoLaFLSettings(num_layers=3, scheme=scheme, rank=rank, subspace_dim=4)
        return fit(clients, 5, cfg).model.accuracy(Z[test], y[test])

    exact = accuracy("hm", None)
    assert accuracy("cm", 32) == pytest.approx(exact)
    assert accuracy("cm", 8) >= exact - 0.05
    assert accuracy("cm", 4) >= exact - 0.1


def test_round_logs_count_values_and_rounds():
    Z, y = synthetic_subspaces(300, 10, 3, rng=0)
    parts = np.array_split(np.arange(300), 3)
    result = fit([(Z[p], y[p]) for p in parts], 3, LoLaFLSettings(num_layers=2, subspace_dim=2))
    assert [r.round for r in result.rounds] == [1, 2, 3]
    tri = 10 * 11 // 2
    for r in result.rounds:
        assert r.uplink_values == (3 + 4 * tri,) * 3  # counts + E + C_j for the 3 classes
        assert r.downlink_values == 4 * tri + 3
        assert len(r.client_seconds) == 3 and r.server_seconds >= 0
    assert result.model.num_values == 3 * (4 * tri + 3)


def test_seeded_runs_and_saved_models_give_identical_predictions(tmp_path):
    Z, y = synthetic_subspaces(600, 16, 4, noise=1.0, rng=7)
    parts = dirichlet_partition(y, 4, 0.5, rng=7)
    cfg = LoLaFLSettings(num_layers=3, subspace_dim=3)
    a = fit([(Z[p], y[p]) for p in parts], 4, cfg).model
    b = fit([(Z[p], y[p]) for p in parts], 4, cfg).model
    np.testing.assert_array_equal(a.transform(Z), b.transform(Z))
    loaded = LoLaFLModel.load(a.save(tmp_path / "m" / "model.npz"))
    np.testing.assert_array_equal(loaded.predict(Z), a.predict(Z))
    np.testing.assert_array_equal(loaded.predict(Z, "softmax"), a.predict(Z, "softmax"))
    assert (loaded.eta, loaded.lam, loaded.subspace_dim) == (a.eta, a.lam, a.subspace_dim)


def test_bad_trainer_input_raises_typed_errors():
    Z, y = synthetic_subspaces(60, 4, 2, rng=0)
    with pytest.raises(LoLaFLError, match="at least one"):
        fit([], 2)
    with pytest.raises(LoLaFLError, match="num_layers"):
        LoLaFLSettings(num_layers=-1)
    with pytest.raises(LoLaFLError, match="rank applies only"):
        LoLaFLSettings(rank=3)
    with pytest.raises(LoLaFLError, match="subspace_dim"):
        fit([(Z, y)], 2, LoLaFLSettings(num_layers=0, subspace_dim=5))
    model = fit([(Z, y)], 2, LoLaFLSettings(num_layers=1, subspace_dim=2)).model
    with pytest.raises(LoLaFLError, match="method"):
        model.predict(Z, method="knn")
