"""The Flower apps: run config mapping, and a real simulated run equal to the in-process one."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from federation.lolafl import LoLaFLError, LoLaFLModel, LoLaFLSettings, client_data, fit
from federation.lolafl.config import RunConfig


@given(
    st.integers(0, 6),
    st.sampled_from([("hm", None), ("cm", None), ("cm", 3)]),
    st.floats(0.0, 100.0),
    st.integers(0, 1000),
)
def test_run_config_round_trips_through_a_flower_mapping(layers, scheme_rank, alpha, seed):
    scheme, rank = scheme_rank
    cfg = RunConfig(
        settings=LoLaFLSettings(num_layers=layers, scheme=scheme, rank=rank),
        dirichlet_alpha=alpha,
        seed=seed,
    )
    mapping = cfg.to_mapping()
    assert all(k.startswith("lolafl-") for k in mapping)
    assert all(type(v) in (int, float, str, bool) for v in mapping.values())
    assert RunConfig.from_mapping({**mapping, "other-app-key": 1}) == cfg


def test_run_config_rejects_unknown_keys_and_bad_values():
    with pytest.raises(LoLaFLError, match="unknown config keys"):
        RunConfig.from_mapping({"lolafl-layers": 3})
    with pytest.raises(LoLaFLError, match="lolafl-num-layers must be a int"):
        RunConfig.from_mapping({"lolafl-num-layers": "3"})
    with pytest.raises(LoLaFLError, match="scheme"):
        RunConfig.from_mapping({"lolafl-scheme": "avg"})
    with pytest.raises(LoLaFLError, match="dirichlet_alpha"):
        RunConfig(dirichlet_alpha=-1.0)
    assert RunConfig.from_mapping({"lolafl-eps2": 1}).settings.eps2 == 1.0


@pytest.mark.slow
@pytest.mark.parametrize(("scheme", "rank"), [("hm", 0), ("cm", 2)])
def test_simulated_flower_run_builds_the_same_model_as_in_process_training(tmp_path, scheme, rank):
    from flwr.simulation import run_simulation

    from federation.lolafl.client_app import app as client_app
    from federation.lolafl.server_app import make_server_app

    nodes = 3
    cfg = RunConfig(
        settings=LoLaFLSettings(num_layers=2, scheme=scheme, rank=rank or None, subspace_dim=3),
        dirichlet_alpha=0.5,
        seed=11,
        min_nodes=nodes,
        output=str(tmp_path),
    )
    run_simulation(
        server_app=make_server_app(cfg),
        client_app=client_app,
        num_supernodes=nodes,
        backend_config={"client_resources": {"num_cpus": 0.5, "num_gpus": 0.0}},
    )
    summary = json.loads((tmp_path / "summary.json").read_text())
    model = LoLaFLModel.load(tmp_path / "model.npz")

    datas = [
        client_data("synthetic", k, nodes, alpha=0.5, test_fraction=0.2, seed=11)
        for k in range(nodes)
    ]
    want = fit([(d.train_features, d.train_labels) for d in datas], 4, cfg.settings).model
    for got, ref in zip([*model.layers, model.head], [*want.layers, want.head], strict=True):
        np.testing.assert_allclose(got.E, ref.E, rtol=0, atol=1e-8 * np.abs(ref.E).max())
        np.testing.assert_allclose(got.C, ref.C, rtol=0, atol=1e-8 * np.abs(ref.C).max())
    Z = np.vstack([d.test_features for d in datas])
    y = np.concatenate([d.test_labels for d in datas])
    assert summary["test_examples"] == len(y)
    assert summary["test_accuracy"] == pytest.approx(want.accuracy(Z, y))
    assert [r["round"] for r in summary["rounds"]] == [1, 2, 3]
    assert all(len(r["uplink_bytes"]) == nodes for r in summary["rounds"])
