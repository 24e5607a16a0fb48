"""Strategies by name (Flower's), poisoning, and robust aggregation under sign-flip attacks."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, Message, MetricRecord, RecordDict

from federation import (
    ROBUST,
    STRATEGIES,
    CommLedger,
    FederationError,
    array_bytes,
    attack,
    flip_labels,
    make_strategy,
    malicious_partitions,
)

N, F, D = 15, 3, 20  # 15 clients, 3 attackers (20%), 20 parameters


@pytest.fixture(autouse=True)
def flower_task_identity(monkeypatch):
    """Messages built outside a Flower run need the identity a run would set."""
    from flwr.supercore.task_identity import TaskIdentity

    for attr in ("_run_id", "_node_id", "_task_id"):
        monkeypatch.setattr(TaskIdentity, attr, 1)


def replies(arrays_per_client: list[dict[str, np.ndarray]]) -> list[Message]:
    out = []
    for node, arrays in enumerate(arrays_per_client):
        ask = Message(content=RecordDict(), dst_node_id=node + 1, message_type="train")
        content = RecordDict(
            {
                "arrays": ArrayRecord({k: Array(v) for k, v in arrays.items()}),
                "metrics": MetricRecord({"num-examples": 10}),
            }
        )
        out.append(Message(content=content, reply_to=ask))
    return out


def poisoned_round(kind: str, scale: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    w0 = {"w": np.zeros(D, dtype=np.float32)}
    true_step = np.linspace(1.0, 2.0, D).astype(np.float32)
    honest = [{"w": true_step + 0.05 * rng.normal(size=D).astype(np.float32)} for _ in range(N)]
    bad = malicious_partitions(N, F / N, seed)
    sent = [
        attack(kind, w0, h, scale=scale, rng=i) if i in bad else h for i, h in enumerate(honest)
    ]
    return true_step, sent


def aggregate(name: str, sent) -> np.ndarray:
    strategy = make_strategy(name, num_nodes=N, num_malicious=F)
    arrays, _ = strategy.aggregate_train(1, replies(sent))
    return arrays["w"].numpy()


@pytest.mark.parametrize("name", ROBUST)
def test_robust_rules_survive_20pct_sign_flip_where_fedavg_does_not(name):
    true_step, sent = poisoned_round("sign_flip", scale=5.0)
    rel = lambda w: np.linalg.norm(w - true_step) / np.linalg.norm(true_step)  # noqa: E731
    assert rel(aggregate("fedavg", sent)) > 0.5  # 0.8 - 0.2 x 5 = -0.2: the wrong way
    assert rel(aggregate(name, sent)) < 0.1


@pytest.mark.parametrize("kind", ["scaling", "noise"])
def test_median_survives_other_model_attacks(kind):
    true_step, sent = poisoned_round(kind, scale=20.0)
    assert np.linalg.norm(aggregate("median", sent) - true_step) < 0.1 * np.linalg.norm(true_step)


def test_every_strategy_builds_and_aggregates_clean_updates():
    true_step, sent = poisoned_round("none", scale=1.0)
    for name in STRATEGIES:
        if name in ("fedadam", "fedyogi", "fedavgm"):
            continue  # server optimisers need initial arrays from start(); built only
        np.testing.assert_allclose(aggregate(name, sent), true_step, atol=0.1)
    assert type(make_strategy("fedadam", num_nodes=N, eta=0.01)).__name__ == "FedAdam"


@pytest.mark.parametrize(
    ("mode", "cls"),
    [
        ("central-fixed", "DifferentialPrivacyServerSideFixedClipping"),
        ("central-adaptive", "DifferentialPrivacyServerSideAdaptiveClipping"),
        ("client-fixed", "DifferentialPrivacyClientSideFixedClipping"),
        ("client-adaptive", "DifferentialPrivacyClientSideAdaptiveClipping"),
    ],
)
def test_dp_wrappers(mode, cls):
    s = make_strategy("fedavg", num_nodes=8, dp=mode, noise_multiplier=1.0, clipping_norm=0.5)
    assert type(s).__name__ == cls


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "fedsgd"}, "allowed: fedavg, fedprox"),
        ({"name": "fedavg", "dp": "local"}, "allowed: none, central-fixed"),
        ({"name": "fedavg", "proximal_mu": 0.1}, "does not take"),
        ({"name": "fedavg", "fraction_train": 0.0}, "fraction_train"),
    ],
)
def test_bad_strategy_config_is_named(kwargs, match):
    with pytest.raises(FederationError, match=match):
        make_strategy(num_nodes=4, **kwargs)


@pytest.mark.parametrize(("name", "need"), [("bulyan", 11), ("krum", 7), ("multikrum", 7)])
def test_robust_rules_refuse_cohorts_they_cannot_aggregate(name, need):
    """Flower's Bulyan skips every round with fewer than 4f + 3 replies (10 clients, f = 2
    never aggregated); Krum needs n > 2f + 2. Refused when built, naming the minimum."""
    with pytest.raises(FederationError, match=f"needs at least {need} replies"):
        make_strategy(name, num_nodes=need - 1, num_malicious=2)
    assert make_strategy(name, num_nodes=need, num_malicious=2) is not None
    assert make_strategy("krum", num_nodes=2) is not None  # f = 0: no minimum beyond one


def test_attacks_and_selection():
    g, w = {"w": np.ones(3)}, {"w": np.array([2.0, 3.0, 1.0])}
    np.testing.assert_allclose(attack("scaling", g, w, scale=3)["w"], [4.0, 7.0, 1.0])
    noisy = attack("noise", g, w, scale=1.0, rng=0)["w"] - 1.0
    assert np.linalg.norm(noisy) == pytest.approx(np.linalg.norm([1.0, 2.0, 0.0]))
    assert attack("label_flip", g, w)["w"].tolist() == [2.0, 3.0, 1.0]
    assert flip_labels(np.array([0, 1, 1]), 2).tolist() == [1, 0, 0]
    assert malicious_partitions(10, 0.2, 1) == malicious_partitions(10, 0.2, 1)
    assert len(malicious_partitions(10, 0.2, 1)) == 2
    with pytest.raises(FederationError, match="unknown attack"):
        attack("backdoor", g, w)


def test_comm_ledger():
    lora = {"A": np.zeros((8, 384), np.float32), "B": np.zeros((384, 8), np.float32)}
    ledger = CommLedger(full_model_bytes=22_700_000 * 4)
    for client in ("a", "b"):
        ledger.record(1, client, up=array_bytes(lora), down=array_bytes(lora))
    assert ledger.round_totals(1) == (2 * 24576, 2 * 24576)
    assert ledger.savings() > 100
