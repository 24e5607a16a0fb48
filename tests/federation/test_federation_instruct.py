"""task = "instruct": FlowerTune-style federated tuning of a causal LM's LoRA adapter."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from agents import AgentError
from federation import FederationError
from federation.instruct_task import InstructTask
from federation.rounds import from_record, to_record
from federation.settings import cosine_lr, round_config, settings
from federation.task import make_task

TINY = {
    "task": "instruct",
    "model": "tiny-causal",
    "lora-rank": 2,
    "max-length": 64,
    "users-per-client": 1,
    "positives-per-user": 2,
    "batch-size": 2,
    "agent-lr": 0.05,
}


@pytest.fixture(scope="module")
def task() -> InstructTask:
    return make_task(settings(TINY))


def test_make_task_builds_the_instruct_task_from_the_run_config(task):
    assert isinstance(task, InstructTask) and task.max_length == 64 and task.rank == 2


def test_arrays_round_trip_through_an_array_record_and_are_the_adapter_only(task):
    arrays = task.initial_arrays()
    back = from_record(to_record(arrays))
    assert list(back) == list(arrays)
    assert all(back[k].dtype == np.float32 and np.array_equal(back[k], arrays[k]) for k in arrays)
    assert all("lora_" in k for k in arrays)
    assert all(("q_proj" in k) or ("v_proj" in k) for k in arrays)
    assert task.full_model_bytes() > 10 * sum(a.nbytes for a in arrays.values())


def test_training_changes_the_adapter_and_lowers_the_clients_response_loss(task):
    data = task.load(0, 400)
    start = task.initial_arrays()
    before = task.evaluate(start, data)
    new, n, metrics = task.train(start, data, epochs=8, lr=0.05, rng=0)
    assert n == 2 and metrics["steps"] == 8 and metrics["lr"] == 0.05
    assert max(np.abs(new[k] - start[k]).max() for k in start) > 1e-3
    after = task.evaluate(new, data)
    assert 0 <= after["ndcg@10"] <= 1 and 0 <= after["precision@10"] <= 1
    assert math.isfinite(after["response_loss"]) and after["response_loss"] > 0
    # the training targets are not the evaluation's; the loss on them is what training lowers
    from agents.instruct import encode, mean_response_loss

    batch = encode(task.backbone.tokenizer, *task.examples(data, np.random.default_rng(0)))
    assert mean_response_loss(task.backbone, new, batch) < mean_response_loss(
        task.backbone, start, batch
    )
    assert before.keys() == after.keys()


def _small(**options: object) -> InstructTask:
    return InstructTask(
        "tiny-causal",
        rank=2,
        max_length=64,
        users_per_client=1,
        positives=2,
        clipping_norm=1.0,
        **options,
    )


def test_user_level_replies_one_example_and_example_level_reports_epsilon():
    user = _small(user_level=True)
    _, n, metrics = user.train(user.initial_arrays(), user.load(1, 400), epochs=1, lr=0.01, rng=0)
    assert n == 1 and "epsilon" not in metrics
    ex = _small(noise_multiplier=1.0)
    _, n, metrics = ex.train(ex.initial_arrays(), ex.load(1, 400), epochs=1, lr=0.01, rng=0)
    assert n == 2 and 0 < metrics["epsilon"] < math.inf


def test_checkpointing_changes_the_cost_not_the_result():
    on, off = _small(), _small(checkpointing=False)
    a, _, _ = on.train(on.initial_arrays(), on.load(2, 400), epochs=2, lr=0.05, rng=3)
    b, _, _ = off.train(off.initial_arrays(), off.load(2, 400), epochs=2, lr=0.05, rng=3)
    assert all(np.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert max(np.abs(a[k] - on.initial_arrays()[k]).max() for k in a) > 1e-3


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"max_length": 8}, "max-length"),
        ({"rank": 0}, "lora-rank"),
        ({"batch_size": 0}, "batch-size"),
        ({"positives": 0}, "positives-per-user"),
        ({"noise_multiplier": 1.0}, "dp-sgd-clipping-norm"),
        ({"targets": ()}, "lora-targets"),
        ({"targets": ("q_proj", "")}, "lora-targets"),
        ({"targets": ("q_proj;rm",)}, "lora-targets"),
    ],
)
def test_bad_task_options_are_named(options, named):
    with pytest.raises(FederationError, match=named):
        InstructTask("tiny-causal", **options)


def test_lora_targets_reach_the_adapter_and_unknown_layers_are_named():
    task = InstructTask("tiny-causal", targets=("q_proj", "k_proj"), rank=2)
    names = task.initial_arrays()
    assert any("k_proj" in k for k in names) and not any("v_proj" in k for k in names)
    with pytest.raises(AgentError, match="nope_proj"):
        _ = InstructTask("tiny-causal", targets=("nope_proj",)).backbone


def test_bad_run_config_keys_are_named():
    with pytest.raises(FederationError, match="lr-schedule"):
        settings({**TINY, "lr-schedule": "linear"})
    with pytest.raises(FederationError, match="lr-min"):
        settings({**TINY, "lr-min": 1.0})  # above agent-lr
    with pytest.raises(FederationError, match="causal"):
        _ = InstructTask("tiny-encoder").backbone


def test_cosine_schedule_by_hand():
    # 4 rounds from 0.1 to 0.01: 0.01 + 0.09 * (1 + cos(pi * k / 3)) / 2, k = 0..3
    by_hand = [0.1, 0.01 + 0.09 * 0.75, 0.01 + 0.09 * 0.25, 0.01]
    assert [cosine_lr(0.1, 0.01, r, 4) for r in range(1, 5)] == pytest.approx(by_hand)
    assert cosine_lr(0.1, 0.01, 1, 1) == 0.1
    cfg = {**TINY, "agent-lr": 0.1, "lr-schedule": "cosine", "lr-min": 0.01}
    cfg = settings({**cfg, "num-server-rounds": 4})
    assert round_config(cfg, 3)["agent-lr"] == pytest.approx(by_hand[2])
    assert round_config(settings(TINY), 3)["agent-lr"] == 0.05  # constant: unchanged
    click = settings({"lr-schedule": "cosine", "lr-min": 0.5, "num-server-rounds": 3})
    assert round_config(click, 2)["lr"] == pytest.approx(1.25)  # the click task's lr = 2.0
    with pytest.raises(FederationError, match="server round"):
        cosine_lr(0.1, 0.0, 5, 4)


@hsettings(max_examples=50, deadline=None)
@given(
    lr=st.floats(1e-6, 10.0),
    frac=st.floats(0.0, 1.0),
    total=st.integers(1, 50),
)
def test_cosine_schedule_falls_monotonically_from_lr_to_lr_min(lr, frac, total):
    lr_min = lr * frac
    rates = [cosine_lr(lr, lr_min, r, total) for r in range(1, total + 1)]
    assert rates[0] == pytest.approx(lr) and (total == 1 or rates[-1] == pytest.approx(lr_min))
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(rates))
    assert all(lr_min - 1e-12 <= x <= lr + 1e-12 for x in rates)


@pytest.mark.slow
def test_two_rounds_through_the_server_app_save_peft_adapters(tmp_path):
    """Two rounds of 2 nodes through the real ServerApp/ClientApp (the round core), user-level
    DP (client-side clipping, server noise), cosine lr: the adapter changes, each round writes
    a PEFT folder whose reload gives the checkpoint's logits, and the nodes got the schedule."""
    from flwr.simulation import run_simulation
    from peft import PeftModel

    from agents.lora import activate, state_version
    from agents.tiny import tiny_model
    from federation.client_app import app as client_app
    from federation.server_app import load_checkpoint, make_server_app

    out, ckpt = tmp_path / "instruct.json", tmp_path / "run"
    cfg = {
        **TINY,
        "num-nodes": 2,
        "num-server-rounds": 2,
        "fraction-evaluate": 0.0,
        "dp": "client-fixed",
        "clipping-norm": 1.0,
        "noise-multiplier": 0.01,
        "dp-sgd-clipping-norm": 1.0,
        "lr-schedule": "cosine",
        "lr-min": 0.005,
        "output": str(out),
        "checkpoint-dir": str(ckpt),
    }
    run_simulation(
        server_app=make_server_app(**cfg),
        client_app=client_app,
        num_supernodes=2,
        backend_config={"client_resources": {"num_cpus": 1}},
    )
    summary = json.loads(out.read_text())
    assert summary["train"]["1"]["lr"] == pytest.approx(0.05)
    assert summary["train"]["2"]["lr"] == pytest.approx(0.005)
    assert summary["train"]["1"]["num-examples"] == 2  # one per user (user level)
    task = make_task(settings(cfg))
    start = task.initial_arrays()
    r, final = load_checkpoint(ckpt)
    assert r == 2 and max(np.abs(final[k] - start[k]).max() for k in start) > 1e-4
    for rnd in (1, 2):
        assert (ckpt / f"adapter-round-{rnd}" / "adapter_model.safetensors").is_file()
    loaded = PeftModel.from_pretrained(tiny_model("causal")[0], ckpt / "adapter-round-2").eval()
    ids = task.backbone.tokenizer(["the user viewed a tent"], return_tensors="pt")["input_ids"]
    activate(task.backbone, final, state_version(final))
    with torch.no_grad():
        ours, theirs = task.backbone.model(input_ids=ids).logits, loaded(input_ids=ids).logits
    assert torch.allclose(ours, theirs, atol=1e-5)
