"""The valuing strategy wrapper on hand-built Flower replies: pays honest clients, not riders."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg

from incentives import Ledger, RewardPolicy
from incentives.flower import ValuedStrategy

TARGET = np.array([1.0, -2.0, 0.5, 3.0])


@pytest.fixture(autouse=True)
def flower_task_identity(monkeypatch):
    from flwr.supercore.task_identity import TaskIdentity

    for attr in ("_run_id", "_node_id", "_task_id"):
        monkeypatch.setattr(TaskIdentity, attr, 1)


class FakeGrid:
    def get_node_ids(self):
        return [1, 2, 3, 4]


def reply(node: int, w: np.ndarray) -> Message:
    ask = Message(content=RecordDict(), dst_node_id=node, message_type="train")
    content = RecordDict(
        {"arrays": ArrayRecord({"w": Array(w)}), "metrics": MetricRecord({"num-examples": 10})}
    )
    msg = Message(content=content, reply_to=ask)
    return msg


def test_round_is_valued_paid_and_recorded():
    ledger = Ledger(":memory:")
    strategy = ValuedStrategy(
        FedAvg(min_train_nodes=4, min_available_nodes=4),
        evaluate=lambda p: -float(np.sum((p["w"] - TARGET) ** 2)),
        ledger=ledger,
        policy=RewardPolicy(revenue_share=0.5),
        revenue=lambda r: 100.0,
    )
    w0 = np.zeros(4)
    strategy.configure_train(1, ArrayRecord({"w": Array(w0)}), ConfigRecord({}), FakeGrid())
    rng = np.random.default_rng(0)
    replies = [reply(n, TARGET + 0.1 * rng.normal(size=4)) for n in (1, 2, 3)]
    replies.append(reply(4, w0.copy()))  # a free rider sends the global model back
    arrays, _ = strategy.aggregate_train(1, replies)
    assert arrays is not None
    balances = ledger.balances()
    assert set(balances) <= {"node-1", "node-2", "node-3", "node-4"}
    assert min(balances[f"node-{n}"] for n in (1, 2, 3)) > balances.get("node-4", 0.0)
    assert ledger.verify().ok
    ((_, nodes, result, rewards),) = strategy.history
    assert nodes == [1, 2, 3, 4] and result.method == "gtg" and result.n_evaluations > 0
    assert rewards.sum() <= 50.0 + 1e-9
