"""SecAgg+ for real (Ray simulation): the masked aggregate must actually move the model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from federation import FederationError
from federation.secagg import make_secagg_apps
from federation.task import ClickTask


@pytest.mark.slow
def test_secagg_plus_trains_the_model(tmp_path):
    from flwr.simulation import run_simulation

    out = tmp_path / "secagg.json"
    server, client = make_secagg_apps(
        num_shares=3, reconstruction_threshold=2, num_rounds=2, num_nodes=4, output=out
    )
    run_simulation(
        server_app=server,
        client_app=client,
        num_supernodes=4,
        backend_config={"client_resources": {"num_cpus": 0.5}},
    )
    history = json.loads(out.read_text())
    assert {"0", "1", "2"} <= set(history)  # initial + both rounds evaluated
    w0, w2 = np.array(history["0"]["W"]), np.array(history["2"]["W"])
    assert np.abs(w2 - w0).max() > 1e-3  # Flower reports success even when SecAgg+ halts
    task = ClickTask(seed=0)
    data = task.load(0, 4)
    trained = {"W": w2.astype(np.float32), "b": np.array(history["2"]["b"], np.float32)}
    assert (
        task.evaluate(trained, data)["ndcg@10"]
        > task.evaluate(task.initial_arrays(), data)["ndcg@10"]
    )


def test_even_shares_are_refused():
    with pytest.raises(FederationError, match="odd"):
        make_secagg_apps(num_shares=4, reconstruction_threshold=2)
