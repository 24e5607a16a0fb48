"""One layer: ReduNet's formulas, the forward update, and the wire formats."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from federation.lolafl import (
    CMMessage,
    HMMessage,
    LayerParams,
    LoLaFLError,
    apply_layer,
    class_membership,
    layer_params,
    layer_statistics,
    message_from_arrays,
    normalize_rows,
    synthetic_subspaces,
)


@st.composite
def labelled(draw):
    d = draw(st.integers(2, 10))
    J = draw(st.integers(1, 4))
    m = draw(st.integers(J, 50))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    Z = normalize_rows(rng.normal(size=(m, d)))
    labels = np.concatenate([np.arange(J), rng.integers(0, J, m - J)])
    return Z, labels, J


def test_layer_params_match_the_redunet_definition():
    Z, y = synthetic_subspaces(120, 6, 3, rng=0)
    m, d = Z.shape
    eps2 = 0.5
    p = layer_params(Z, y, 3, eps2)
    alpha = d / (m * eps2)
    np.testing.assert_allclose(p.E, alpha * np.linalg.inv(np.eye(d) + alpha * Z.T @ Z), atol=1e-12)
    for j in range(3):
        Zj = Z[y == j]
        a = d / (len(Zj) * eps2)
        np.testing.assert_allclose(p.C[j], a * np.linalg.inv(np.eye(d) + a * Zj.T @ Zj), atol=1e-12)
    np.testing.assert_allclose(p.gamma, np.bincount(y) / m)


@given(labelled(), st.floats(0.05, 2.0))
def test_update_keeps_rows_unit_norm_and_matches_the_formula(case, eta):
    Z, labels, J = case
    p = layer_params(Z, labels, J, 0.1)
    out = apply_layer(Z, p, eta, labels=labels)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-12)
    pi = np.eye(J)[labels]
    step = Z @ p.E - np.einsum("j,mj,jmd->md", p.gamma, pi, np.matmul(Z, p.C))
    expected = normalize_rows(Z + eta * step)
    np.testing.assert_allclose(out, expected, atol=1e-12)
    soft = apply_layer(Z, p, eta, lam=3.0)
    np.testing.assert_allclose(np.linalg.norm(soft, axis=1), 1.0, atol=1e-12)


@given(labelled(), st.floats(0.1, 1000.0))
def test_memberships_are_a_softmax_over_compression_norms(case, lam):
    Z, labels, J = case
    p = layer_params(Z, labels, J, 0.1)
    pi = class_membership(Z, p, lam)
    np.testing.assert_allclose(pi.sum(axis=1), 1.0, atol=1e-12)
    norms = np.linalg.norm(np.matmul(Z, p.C), axis=2).T
    np.testing.assert_array_equal(pi.argmax(axis=1), norms.argmin(axis=1))


def test_sharp_memberships_make_inference_match_training_on_separable_data():
    Z, y = synthetic_subspaces(400, 16, 4, noise=0.01, rng=1)
    p = layer_params(Z, y, 4, 0.1)
    np.testing.assert_allclose(
        apply_layer(Z, p, 0.5, lam=1e4), apply_layer(Z, p, 0.5, labels=y), atol=1e-6
    )


@given(labelled(), st.sampled_from(["hm", "cm"]))
def test_messages_survive_the_wire_and_count_their_values(case, scheme):
    Z, labels, J = case
    msg = layer_statistics(Z, labels, J, 0.1).message(scheme)
    arrays = msg.to_arrays()
    back = message_from_arrays(scheme, arrays)
    assert type(back) is type(msg)
    assert back.num_values == msg.num_values == sum(a.size for a in arrays.values())
    for name in arrays:
        np.testing.assert_allclose(back.to_arrays()[name], arrays[name], atol=0)
    if isinstance(msg, HMMessage):
        np.testing.assert_allclose(back.E, msg.E, atol=0)
    else:
        assert isinstance(back, CMMessage) and back.eps2 == msg.eps2


@given(labelled())
def test_layer_params_survive_the_wire(case):
    Z, labels, J = case
    p = layer_params(Z, labels, J, 0.1)
    arrays = p.to_arrays()
    back = LayerParams.from_arrays(arrays)
    np.testing.assert_allclose(back.E, p.E, atol=1e-15)
    np.testing.assert_allclose(back.C, p.C, atol=1e-15)
    assert p.num_values == sum(a.size for a in arrays.values())


def test_hm_message_costs_j_plus_1_triangles_and_cm_costs_rank_columns():
    Z, y = synthetic_subspaces(500, 20, 4, rng=2)
    stats = layer_statistics(Z, y, 4, 0.1)
    assert stats.message("hm").num_values == 4 + 5 * (20 * 21 // 2)
    assert stats.message("cm", rank=3).num_values == 2 * 4 + 1 + 20 * 3 * 4


def test_bad_layer_input_raises_typed_errors():
    Z, y = synthetic_subspaces(50, 4, 2, rng=0)
    p = layer_params(Z, y, 2, 0.1)
    with pytest.raises(LoLaFLError, match="columns"):
        apply_layer(normalize_rows(np.ones((3, 5))), p, 0.5)
    with pytest.raises(LoLaFLError, match="eta"):
        apply_layer(Z, p, 0.0)
    with pytest.raises(LoLaFLError, match="LayerParams needs"):
        LayerParams(E=np.eye(3), C=np.zeros((2, 4, 4)), gamma=np.ones(2))
    with pytest.raises(LoLaFLError, match="all-zero"):
        normalize_rows(np.zeros((2, 3)))
    with pytest.raises(LoLaFLError, match="integers"):
        layer_params(Z, y + 0.5, 2, 0.1)
    with pytest.raises(LoLaFLError, match="upper triangle"):
        LayerParams.from_arrays({"E": np.ones(4), "C": np.ones((2, 4)), "gamma": np.ones(2)})
    with pytest.raises(LoLaFLError, match="lack"):
        message_from_arrays("cm", {"counts": np.ones(2)})


def test_math_modules_keep_torch_and_flower_off_the_import_path():
    code = "import sys, federation.lolafl; print('torch' in sys.modules or 'flwr' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
