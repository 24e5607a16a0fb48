"""The federated training apps in Flower's Simulation Engine (Ray): train, checkpoint, resume."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from federation import FederationError
from federation.client_app import app as client_app
from federation.server_app import load_checkpoint, make_server_app, save_checkpoint
from federation.settings import settings
from federation.task import ClickTask, make_task


def simulate(tmp_path, name: str, nodes: int = 4, **overrides):
    from flwr.simulation import run_simulation

    out = tmp_path / f"{name}.json"
    run_simulation(
        server_app=make_server_app(**{"num-nodes": nodes, "output": str(out), **overrides}),
        client_app=client_app,
        num_supernodes=nodes,
        backend_config={"client_resources": {"num_cpus": 0.5}},
    )
    return json.loads(out.read_text())


@pytest.mark.slow
def test_two_rounds_four_clients_checkpoint_and_resume(tmp_path):
    ckpt = tmp_path / "ckpt"
    full = simulate(tmp_path, "full", **{"num-server-rounds": 2, "checkpoint-dir": str(ckpt)})
    assert sorted(full["evaluate"]) == ["0", "1", "2"]  # round 0: before any training
    assert full["evaluate"]["2"]["ndcg@10"] > max(0.7, full["evaluate"]["0"]["ndcg@10"])
    # metrics by meaning: bytes add up over the round's 4 clients, the loss is a mean
    assert full["train"]["1"]["bytes-up"] == pytest.approx(4 * full["model_bytes"])
    assert full["num_nodes"] == 4 and full["rejected"] == {}
    assert load_checkpoint(ckpt)[0] == 2
    # Resume: a 3-round run that starts from the round-2 checkpoint runs only round 3.
    more = simulate(
        tmp_path,
        "resumed",
        **{"num-server-rounds": 3, "checkpoint-dir": str(ckpt), "resume": True},
    )
    assert more["resumed_from"] == 2 and sorted(more["evaluate"]) == ["2", "3"]
    assert load_checkpoint(ckpt)[0] == 3


@pytest.mark.slow
def test_energy_aware_selection_and_sign_flip_in_simulation(tmp_path):
    out = simulate(
        tmp_path,
        "robust",
        nodes=5,
        **{
            "num-server-rounds": 2,
            "clients-per-round": 3,
            "strategy": "median",
            "attack": "sign_flip",
            "attack-fraction": 0.2,
            "attack-scale": 5.0,
        },
    )
    assert out["evaluate"]["2"]["ndcg@10"] > 0.7  # the median shrugs off one flipped client


@pytest.mark.slow
def test_buffered_async_aggregation(tmp_path):
    out = simulate(
        tmp_path,
        "async",
        **{"mode": "async", "num-server-rounds": 8, "buffer-size": 2, "concurrency": 4},
    )
    # Enough versions that the nodes whose actors start last reply after the model moved on
    # (a warm node can otherwise serve the first few versions alone).
    assert out["versions"] == 8 and len(out["staleness"]) >= 16
    assert max(out["staleness"]) >= 1  # some updates arrived after the model moved on
    task = ClickTask(seed=0)
    data = task.load(0, 4)
    final = {k: np.array(v, np.float32) for k, v in out["final_arrays"].items()}
    assert (
        task.evaluate(final, data)["ndcg@10"]
        > task.evaluate(task.initial_arrays(), data)["ndcg@10"] + 0.2
    )


def test_staleness_weights():
    from federation.async_buffer import BufferedAggregator, staleness_weight

    assert staleness_weight(0) == 1.0 and staleness_weight(3) == 0.5
    agg = BufferedAggregator({"w": np.zeros(1)}, buffer_size=1)
    agg.add({"w": np.ones(1)}, base_version=0)  # version 1: w = 1
    agg.add({"w": np.full(1, 3.0)}, base_version=0)  # stale by 1: delta 3 from version 0
    assert agg.version == 2
    assert agg.arrays["w"][0] == pytest.approx(1 + 3 / np.sqrt(2))  # stale: weighed down
    agg.forget_before(2)
    with pytest.raises(FederationError, match="unknown"):
        agg.add({"w": np.ones(1)}, base_version=0)


def test_checkpoint_round_trip(tmp_path):
    arrays = {"W": np.ones((2, 2), np.float32), "b": np.zeros(1, np.float32)}
    save_checkpoint(tmp_path, 4, arrays)
    r, back = load_checkpoint(tmp_path)
    assert r == 4 and np.array_equal(back["W"], arrays["W"])
    assert load_checkpoint(tmp_path / "none") is None


def test_click_task_learns_and_fedprox_pulls_toward_global():
    task = ClickTask(seed=1)
    data = task.load(1, 3)
    start = task.initial_arrays()
    before = task.evaluate(start, data)["ndcg@10"]
    free, _, _ = task.train(start, data, epochs=2, lr=2.0)
    prox, _, _ = task.train(start, data, epochs=2, lr=2.0, proximal_mu=0.3)
    assert task.evaluate(free, data)["ndcg@10"] > before + 0.2
    assert np.linalg.norm(prox["W"] - start["W"]) < np.linalg.norm(free["W"] - start["W"])


def test_click_task_precision_counts_the_ten_highest_ctrs_as_relevant():
    task = ClickTask(seed=1, candidates=20)
    data = task.load(0, 3)
    tied = task.initial_arrays()  # W = 0: every candidate scores b, ties keep column order
    falling = np.tile(np.linspace(0.9, 0.05, 20), (data.test_ctr.shape[0], 1))
    perfect = task.evaluate(tied, replace(data, test_ctr=falling))
    assert perfect == {"ndcg@10": pytest.approx(1.0), "precision@10": 1.0}
    reversed_ = task.evaluate(tied, replace(data, test_ctr=falling[:, ::-1]))
    assert reversed_["precision@10"] == 0.0 and reversed_["ndcg@10"] < 0.5


@pytest.mark.slow
def test_client_side_clipping_bounds_the_update_and_epsilon_counts_who_was_aggregated(tmp_path):
    """dp = client-fixed: Flower's clipping mod runs on the nodes, so without noise the new
    global model is within the clipping norm of the old one; energy-aware selection (2 of 4)
    is accounted per user without amplification."""
    from agents.accountant import UserAccountant, gaussian

    ckpt = tmp_path / "ckpt"
    out = simulate(
        tmp_path,
        "clip",
        **{
            "num-server-rounds": 1,
            "dp": "client-fixed",
            "noise-multiplier": 0.0,
            "clipping-norm": 0.01,
            "checkpoint-dir": str(ckpt),
            "fraction-evaluate": 0.0,
        },
    )
    start = make_task(settings({})).initial_arrays()
    _, new = load_checkpoint(ckpt)
    moved = np.sqrt(sum(np.sum((new[k] - start[k]) ** 2) for k in start))
    assert 0 < moved <= 0.01 + 1e-6
    assert out["privacy"]["epsilon_max"] == float("inf")  # no noise: reported as it is

    z = 1.5
    out = simulate(
        tmp_path,
        "energy",
        **{
            "num-server-rounds": 3,
            "dp": "central-fixed",
            "noise-multiplier": z,
            "clients-per-round": 2,
            "fraction-evaluate": 0.0,
        },
    )
    assert out["privacy"]["uses"] == {"federated round (central-fixed)": 6}
    # 6 participations over 4 users: the most-selected user was aggregated 2 or 3 times
    bounds = []
    for k in (2, 3):
        acc = UserAccountant(1)
        acc.charge([0], gaussian(z), times=k)
        bounds.append(float(acc.epsilons()[0]))
    assert bounds[0] - 1e-9 <= out["privacy"]["epsilon_max"] <= bounds[1] + 1e-9
    assert out["epsilon_per_round"] == sorted(out["epsilon_per_round"])


def test_settings_reject_unknown_and_bad_values():
    with pytest.raises(FederationError, match="unknown run-config keys"):
        settings({"rounds": 3})
    with pytest.raises(FederationError, match="strategy = 'sgd'"):
        settings({"strategy": "sgd"})
    assert settings({"lolafl-layers": 2})["strategy"] == "fedavg"  # other apps' keys pass


@pytest.mark.slow
def test_lolafl_is_selected_by_run_config(tmp_path):
    """``method = "lolafl"``: the project's one ServerApp and ClientApp run LoLaFL's rounds."""
    lolafl = {"lolafl-num-layers": 2, "lolafl-subspace-dim": 3, "lolafl-min-nodes": 3}
    out = simulate(tmp_path, "lolafl", nodes=3, method="lolafl", **lolafl)
    assert [r["round"] for r in out["rounds"]] == [1, 2, 3]  # one per layer, then the head
    assert 0.0 <= out["test_accuracy"] <= 1.0 and out["test_examples"] > 0
