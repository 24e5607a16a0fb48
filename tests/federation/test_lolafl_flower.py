"""LoLaFL as a real Flower simulation (Ray): the federated model equals the centralized one."""

from __future__ import annotations

import numpy as np
import pytest

from federation.lolafl import LoLaFLError, train_federated
from federation.lolafl.flower_app import (
    DEFAULTS,
    blobs,
    client_app,
    load_partition,
    make_server_app,
    settings,
)


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["hm", "cm"])
def test_simulation_builds_the_centralized_layers(tmp_path, scheme):
    from flwr.simulation import run_simulation

    out = tmp_path / f"model-{scheme}.npz"
    overrides = {
        "lolafl-layers": 2,
        "lolafl-scheme": scheme,
        "lolafl-alpha": 0.3,
        "lolafl-output": str(out),
        "lolafl-num-nodes": 4,
    }
    run_simulation(
        server_app=make_server_app(**overrides),
        client_app=client_app,
        num_supernodes=4,
        backend_config={"client_resources": {"num_cpus": 0.5}},
    )
    saved = np.load(out)
    Z, y = blobs()
    central, _ = train_federated([(Z, y)], int(y.max()) + 1, layers=2)
    # float32 on the wire: equal to the centralized layers up to float32 rounding
    np.testing.assert_allclose(saved["E.0"], central.layers[0].E, atol=1e-5)
    np.testing.assert_allclose(saved["C.1"], central.layers[1].C, atol=1e-4)
    np.testing.assert_allclose(saved["E.2"], central.head.E, atol=1e-4)
    assert saved["accuracy"] > 0.8
    assert len(saved["bytes_up"]) == 3 and saved["bytes_up"][0] > 0


def test_partitions_cover_the_data_once():
    cfg = settings({"lolafl-alpha": 0.2})
    sizes = [load_partition(cfg, k, 5)[0].shape[0] for k in range(5)]
    assert sum(sizes) == blobs()[0].shape[0]


def test_unknown_run_config_key_is_named():
    with pytest.raises(LoLaFLError, match="lolafl-layer"):
        settings({"lolafl-layer": 3})
    assert settings({})["lolafl-layers"] == DEFAULTS["lolafl-layers"]
