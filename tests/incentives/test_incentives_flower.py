"""The valuing strategy wrapper on hand-built Flower replies and a driven round loop."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg, Strategy

from incentives import IncentiveError, Ledger, MaxEvaluations, RewardPolicy
from incentives.flower import ValuedStrategy

ROOT = Path(__file__).resolve().parents[2]
TARGET = np.array([1.0, -2.0, 0.5, 3.0])
FREE_RIDER = 4


@pytest.fixture(autouse=True)
def flower_task_identity(monkeypatch):
    # Messages take their run and node ids from the running app; there is none in a unit test.
    from flwr.supercore.task_identity import TaskIdentity

    for attr in ("_run_id", "_node_id", "_task_id"):
        monkeypatch.setattr(TaskIdentity, attr, 1)


def train(node: int, w: np.ndarray) -> np.ndarray:
    """Honest clients move halfway to the target (with noise); the free rider sends w back."""
    if node == FREE_RIDER:
        return w.copy()
    return w + 0.5 * (TARGET - w) + 0.05 * np.random.default_rng(node).normal(size=w.size)


def reply_to(ask: Message, w: np.ndarray, examples: int = 10) -> Message:
    content = RecordDict(
        {
            "arrays": ArrayRecord({"w": Array(w)}),
            "metrics": MetricRecord({"num-examples": examples}),
        }
    )
    return Message(content=content, reply_to=ask)


class FakeGrid:
    """Four nodes that train in-process (no Ray, no SuperLink)."""

    def get_node_ids(self):
        return [1, 2, 3, 4]

    def send_and_receive(self, messages, timeout=None):
        replies = []
        for ask in messages:
            if ask.metadata.message_type.startswith("train"):
                w = ask.content["arrays"]["w"].numpy()
                replies.append(reply_to(ask, train(ask.metadata.dst_node_id, w)))
            else:
                replies.append(
                    Message(
                        content=RecordDict({"metrics": MetricRecord({"num-examples": 1})}),
                        reply_to=ask,
                    )
                )
        return replies


def evaluate(params):
    return -float(np.sum((params["w"] - TARGET) ** 2))


def make(ledger, **options):
    return ValuedStrategy(
        FedAvg(min_train_nodes=4, min_available_nodes=4, min_evaluate_nodes=4),
        evaluate=evaluate,
        ledger=ledger,
        policy=RewardPolicy(revenue_share=0.5),
        revenue=lambda r: 100.0,
        **options,
    )


def hand_built_round(strategy, w0):
    asks = list(
        strategy.configure_train(1, ArrayRecord({"w": Array(w0)}), ConfigRecord({}), FakeGrid())
    )
    return [reply_to(ask, train(ask.metadata.dst_node_id, w0)) for ask in asks]


def test_round_is_valued_paid_and_recorded():
    ledger = Ledger(":memory:")
    strategy = make(ledger)
    assert isinstance(strategy, Strategy)
    w0 = np.zeros(4)
    arrays, metrics = strategy.aggregate_train(1, hand_built_round(strategy, w0))
    np.testing.assert_allclose(
        arrays["w"].numpy(), np.mean([train(n, w0) for n in (1, 2, 3, 4)], axis=0), rtol=1e-6
    )
    balances = ledger.balances()
    honest = [balances[f"node-{n}"] for n in (1, 2, 3)]
    assert min(honest) > balances.get(f"node-{FREE_RIDER}", 0.0)
    assert ledger.verify().ok
    (paid,) = strategy.payments
    assert (
        paid.accounts == ["node-1", "node-2", "node-3", "node-4"] and paid.valuation.method == "gtg"
    )
    assert paid.tokens.sum() <= 50.0 + 1e-9  # half of the round's revenue at most
    assert metrics["incentives-tokens"] == pytest.approx(paid.tokens.sum())
    assert metrics["incentives-evaluations"] == paid.valuation.n_evaluations


def test_start_runs_rounds_and_pays_each_one():
    ledger = Ledger(":memory:")
    strategy = make(ledger, method="tmc", rng=3, stopping=MaxEvaluations(12))
    result = strategy.start(FakeGrid(), ArrayRecord({"w": Array(np.zeros(4))}), num_rounds=3)
    assert [p.server_round for p in strategy.payments] == [1, 2, 3]
    assert evaluate({"w": result.arrays["w"].numpy()}) > evaluate({"w": np.zeros(4)})
    rounds = {row[0] for row in ledger._db.execute("SELECT round FROM entries")}
    assert rounds == {1, 2, 3} and ledger.verify().ok


def test_same_seed_same_payments():
    paid = []
    for _ in range(2):
        strategy = make(Ledger(":memory:"), rng=5)
        strategy.aggregate_train(1, hand_built_round(strategy, np.zeros(4)))
        paid.append(strategy.payments[0].tokens)
    np.testing.assert_array_equal(*paid)


def test_bad_replies_and_method():
    strategy = make(Ledger(":memory:"))
    replies = hand_built_round(strategy, np.zeros(4))
    ask = Message(content=RecordDict(), dst_node_id=1, message_type="train")
    replies[0] = reply_to(ask, np.zeros(3))  # wrong shape
    with pytest.raises((IncentiveError, ValueError)):
        strategy.aggregate_train(1, replies)
    with pytest.raises(IncentiveError, match="allowed"):
        make(Ledger(":memory:"), method="owen")


def test_the_package_imports_neither_flower_nor_torch():
    code = "import sys, incentives; print('flwr' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.split() == ["False", "False"], out.stderr
