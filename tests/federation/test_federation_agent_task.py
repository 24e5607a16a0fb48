"""The agents' LoRA adapter + head as the federated task, on MovieLens-100k partitions."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from federation import FederationError
from federation.agent_task import AgentTask, partition_users
from federation.client_app import client_update
from federation.settings import settings
from federation.task import make_task

TINY = {"task": "agent", "model": "tiny-encoder", "lora-rank": 2, "users-per-client": 3}


@given(
    n_users=st.integers(1, 60),
    parts=st.integers(1, 60),
    seed=st.integers(0, 2**16),
)
@hsettings(max_examples=60, deadline=None)
def test_partition_deals_every_user_once_in_near_equal_parts(n_users, parts, seed):
    users = np.arange(100, 100 + n_users)
    if parts > n_users:
        with pytest.raises(FederationError, match="num-partitions"):
            partition_users(users, parts, seed)
        return
    split = partition_users(users, parts, seed)
    assert sorted(np.concatenate(split).tolist()) == users.tolist()
    sizes = [len(p) for p in split]
    assert max(sizes) - min(sizes) <= 1
    again = partition_users(users, parts, seed)
    assert all(np.array_equal(a, b) for a, b in zip(split, again, strict=True))


def test_agent_settings_are_checked():
    with pytest.raises(FederationError, match="task = 'sgd'"):
        settings({"task": "sgd"})
    with pytest.raises(FederationError, match="no proximal term"):
        settings({**TINY, "strategy": "fedprox"})
    with pytest.raises(FederationError, match="noise needs a clipping norm"):
        settings({**TINY, "dp-sgd-noise-multiplier": 1.0})
    with pytest.raises(FederationError, match="lora-rank"):
        settings({**TINY, "lora-rank": 0})
    with pytest.raises(FederationError, match="model"):
        settings({**TINY, "model": ""})


def test_agent_task_trains_with_dp_sgd_and_reports_the_plans_epsilon():
    from agents import plan

    cfg = settings({**TINY, "dp-sgd-clipping-norm": 1.0, "dp-sgd-noise-multiplier": 1.1})
    task = make_task(cfg)
    start = task.initial_arrays()
    new, n, metrics = client_update(cfg, 1, 8, start, server_round=1)
    assert n == 2 * 4 * 3  # 3 users x (4 clicks + 4 sampled non-clicks)
    want = plan(n, epochs=1, batch_size=16, max_grad_norm=1.0, noise_multiplier=1.1).epsilon
    assert metrics["epsilon"] == pytest.approx(want)
    assert sorted(new) == sorted(start) and all(v.dtype == np.float32 for v in new.values())
    assert max(np.abs(new[k] - start[k]).max() for k in start) > 0
    assert metrics["bytes-up"] == metrics["bytes-down"] == sum(v.nbytes for v in start.values())
    again, _, _ = client_update(cfg, 1, 8, start, server_round=1)
    assert all(np.array_equal(again[k], new[k]) for k in new)  # seeded: same round, same update
    scores = task.evaluate(new, task.load(1, 8))
    assert 0 <= scores["ndcg@10"] <= 1 and 0 <= scores["precision@10"] <= 1


def test_label_flip_swaps_the_clicks_and_proximal_term_is_refused():
    task = AgentTask(model="tiny-encoder", rank=2, users_per_client=2)
    data = task.load(0, 10)
    rng = np.random.default_rng
    _, _, clean, priors = task.examples(task.initial_arrays(), data, rng(0))
    _, _, flipped, _ = task.examples(task.initial_arrays(), task.flip_labels(data), rng(0))
    assert np.array_equal(flipped, 1 - clean)
    # the exchange's prior: liked movies were liked by many before the cuts
    assert priors.shape == clean.shape and priors[clean == 1].mean() > priors[clean == 0].mean()
    with pytest.raises(FederationError, match="no proximal term"):
        task.train(task.initial_arrays(), data, epochs=1, lr=1e-3, proximal_mu=0.1)


def test_lora_arrays_are_far_smaller_than_the_full_model():
    task = AgentTask(model="tiny-encoder", rank=2)
    sent = sum(v.nbytes for v in task.initial_arrays().values())
    assert task.full_model_bytes() > 40 * sent  # 2-layer width-32 test model; MiniLM: ~300x


@pytest.mark.slow
def test_two_rounds_four_agent_clients_in_the_simulation_engine(tmp_path):
    from flwr.simulation import run_simulation

    from federation.client_app import app as client_app
    from federation.server_app import load_checkpoint, make_server_app

    out, ckpt = tmp_path / "agent.json", tmp_path / "ckpt"
    cfg = {
        **TINY,
        "num-nodes": 4,
        "num-server-rounds": 2,
        "dp-sgd-clipping-norm": 1.0,
        "dp-sgd-noise-multiplier": 1.0,
        "output": str(out),
        "checkpoint-dir": str(ckpt),
    }
    # One actor per core: each actor imports torch and reads MovieLens once.
    run_simulation(
        server_app=make_server_app(**cfg),
        client_app=client_app,
        num_supernodes=4,
        backend_config={"client_resources": {"num_cpus": 1}},
    )
    summary = json.loads(out.read_text())
    assert sorted(summary["train"]) == ["1", "2"] and sorted(summary["evaluate"]) == ["0", "1", "2"]
    assert summary["train"]["1"]["bytes-up"] == pytest.approx(4 * summary["model_bytes"])
    assert summary["full_model_bytes"] > 40 * summary["model_bytes"]
    assert summary["train"]["2"]["epsilon"] > 0
    assert "train_loss" not in summary["train"]["2"]  # un-noised: it stays on the device
    assert 0 <= summary["evaluate"]["2"]["ndcg@10"] <= 1
    start = make_task(settings(cfg)).initial_arrays()
    r, final = load_checkpoint(ckpt)
    assert r == 2 and max(np.abs(final[k] - start[k]).max() for k in start) > 1e-4
