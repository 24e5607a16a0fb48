"""The one federated-round core on hand-built replies: validation, aggregation, hooks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, Message, MetricRecord, RecordDict
from hypothesis import given, settings
from hypothesis import strategies as st

from federation import FederationError, make_strategy
from federation.rounds import aggregate_metrics, check_reply, train_round, wait_for_nodes

START = {"w": np.zeros(3, np.float32), "b": np.zeros(1, np.float32)}


@pytest.fixture(autouse=True)
def flower_task_identity(monkeypatch):
    # Messages take their run and node ids from the running app; there is none in a unit test.
    from flwr.supercore.task_identity import TaskIdentity

    for attr in ("_run_id", "_node_id", "_task_id"):
        monkeypatch.setattr(TaskIdentity, attr, 1)


def reply(ask: Message, arrays: dict, metrics: dict) -> Message:
    content = RecordDict(
        {
            "arrays": ArrayRecord({k: Array(np.asarray(v)) for k, v in arrays.items()}),
            "metrics": MetricRecord(metrics),
        }
    )
    return Message(content=content, reply_to=ask)


class FakeGrid:
    """Nodes that answer in-process with ``answers[node](ask) -> reply``."""

    def __init__(self, answers):
        self.answers, self.sent, self._pending = answers, [], []

    def get_node_ids(self):
        return list(self.answers)

    def push_messages(self, messages):
        ids = []
        for i, ask in enumerate(messages):
            ask.metadata.__dict__["_message_id"] = f"m{len(self.sent)}-{i}"
            self.sent.append(ask)
            self._pending.append(self.answers[ask.metadata.dst_node_id](ask))
            ids.append(ask.metadata.message_id)
        return ids

    def pull_messages(self, ids):
        out, self._pending = self._pending, []
        return out


def honest(value: float, n: int = 10):
    def answer(ask):
        return reply(ask, {"w": np.full(3, value), "b": np.ones(1)}, {"num-examples": n})

    return answer


def test_fedavg_weights_by_examples_and_hooks_see_the_accepted_updates():
    grid = FakeGrid({1: honest(1.0, 10), 2: honest(4.0, 30)})
    seen = []

    def hook(r, start, updates, new):
        seen.append((r, [u.node_id for u in updates], new["w"].copy()))
        return {"paid": 7.0}

    strategy = make_strategy("fedavg", num_nodes=2)
    result = train_round(grid, strategy, START, 1, {"lr": 0.1}, hooks=[hook])
    np.testing.assert_allclose(result.arrays["w"], 3.25)  # (10 x 1 + 30 x 4) / 40
    ((r, nodes, w),) = seen
    assert (r, nodes) == (1, [1, 2]) and np.array_equal(w, result.arrays["w"])
    assert result.metrics["paid"] == 7.0 and result.metrics["clients"] == 2
    assert result.metrics["num-examples"] == 40  # a count: summed
    config = grid.sent[0].content["config"]
    assert config["server-round"] == 1 and config["lr"] == 0.1


BAD = {
    "nan": (lambda ask: reply(ask, {"w": [np.nan, 0, 0], "b": [0.0]}, {"num-examples": 5}), "NaN"),
    "inf": (lambda ask: reply(ask, {"w": [np.inf, 0, 0], "b": [0.0]}, {"num-examples": 5}), "inf"),
    "shape": (lambda ask: reply(ask, {"w": [1.0, 2.0], "b": [0.0]}, {"num-examples": 5}), "shape"),
    "missing": (lambda ask: reply(ask, {"w": [1.0, 2.0, 3.0]}, {"num-examples": 5}), "missing"),
    "extra": (
        lambda ask: reply(ask, {**START, "x": [1.0]}, {"num-examples": 5}),
        "extra",
    ),
    "no weight": (lambda ask: reply(ask, START, {"loss": 1.0}), "num-examples"),
    "negative": (lambda ask: reply(ask, START, {"num-examples": -3}), "num-examples"),
    "fraction": (lambda ask: reply(ask, START, {"num-examples": 2.5}), "num-examples"),
    "nan metric": (lambda ask: reply(ask, START, {"num-examples": 5, "loss": math.nan}), "loss"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_replies_are_refused_with_their_reason_and_never_aggregated(case):
    answer, why = BAD[case]
    grid = FakeGrid({1: honest(2.0), 2: answer})
    result = train_round(grid, make_strategy("fedavg", num_nodes=2), START, 1, {})
    assert list(result.rejected) == [2] and why in result.rejected[2]
    np.testing.assert_allclose(result.arrays["w"], 2.0)  # the honest reply alone
    assert result.metrics["rejected"] == 1 and [u.node_id for u in result.updates] == [1]


def test_nothing_valid_keeps_the_global_arrays():
    grid = FakeGrid({1: BAD["nan"][0], 2: lambda ask: reply(ask, START, {"num-examples": 0})})
    result = train_round(grid, make_strategy("median", num_nodes=2), START, 3, {})
    assert result.updates == [] and result.declined == [2] and list(result.rejected) == [1]
    assert all(np.array_equal(result.arrays[k], START[k]) for k in START)


def test_chosen_nodes_get_the_message_and_no_one_else():
    grid = FakeGrid({1: honest(1.0), 2: honest(2.0), 3: honest(3.0)})
    result = train_round(grid, make_strategy("fedavg", num_nodes=1), START, 2, {}, nodes=[3, 1])
    assert sorted(m.metadata.dst_node_id for m in grid.sent) == [1, 3]
    np.testing.assert_allclose(result.arrays["w"], 2.0)


def test_metrics_by_meaning():
    records = [
        RecordDict({"m": MetricRecord({"num-examples": 1, "epsilon": 2.0, "steps": 2})}),
        RecordDict({"m": MetricRecord({"num-examples": 3, "epsilon": math.inf, "loss": 2.0})}),
    ]
    out = dict(aggregate_metrics(records, "num-examples"))
    assert out == {"num-examples": 4.0, "epsilon": math.inf, "steps": 2.0, "loss": 2.0}


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 1000), st.floats(0, 50), st.floats(-1e3, 1e3)),
        min_size=1,
        max_size=8,
    )
)
def test_aggregated_metrics_follow_their_meaning(rows):
    records = [
        RecordDict({"m": MetricRecord({"num-examples": n, "epsilon": e, "loss": x})})
        for n, e, x in rows
    ]
    out = aggregate_metrics(records, "num-examples")
    weights = np.array([n for n, _, _ in rows], float)
    assert out["num-examples"] == weights.sum()
    assert out["epsilon"] == max(e for _, e, _ in rows)
    mean = float(np.array([x for *_, x in rows]) @ weights / weights.sum())
    assert out["loss"] == pytest.approx(mean, rel=1e-9, abs=1e-9)


def test_check_reply_names_an_error_reply():
    from flwr.app import Error

    ask = Message(RecordDict(), dst_node_id=1, message_type="train")
    failed = Message(Error(code=0, reason="device out of memory"), reply_to=ask)
    with pytest.raises(FederationError, match="out of memory"):
        check_reply(failed, START)


def test_waiting_for_more_nodes_than_the_federation_has_fails_with_both_counts():
    with pytest.raises(FederationError, match=r"2 nodes connected .* needs 5"):
        wait_for_nodes(FakeGrid({1: None, 2: None}), 5, timeout=0.3)
    assert wait_for_nodes(FakeGrid({4: None, 1: None}), None, timeout=10) == [1, 4]


def test_central_dp_noise_is_sized_for_the_replies_averaged():
    """4 nodes sampled, 2 decline: the mean is over 2, so the noise std must be z C / 2."""
    big = {"w": np.zeros(20_000, np.float32), "b": np.zeros(1, np.float32)}

    def same(ask):
        return reply(ask, {"w": np.full(20_000, 1e-4), "b": np.zeros(1)}, {"num-examples": 1})

    def declines(ask):
        return reply(ask, {"w": np.zeros(20_000), "b": np.zeros(1)}, {"num-examples": 0})

    grid = FakeGrid({1: same, 2: same, 3: declines, 4: declines})
    strategy = make_strategy(
        "fedavg", num_nodes=4, dp="central-fixed", noise_multiplier=2.0, clipping_norm=1.0
    )
    result = train_round(grid, strategy, big, 1, {})
    assert len(result.updates) == 2 and result.declined == [3, 4]
    assert np.std(result.arrays["w"]) == pytest.approx(2.0 * 1.0 / 2, rel=0.03)


def test_chosen_nodes_under_client_side_clipping_get_the_clipping_norm():
    from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM

    grid = FakeGrid({1: honest(1.0), 2: honest(2.0)})
    strategy = make_strategy(
        "fedavg", num_nodes=2, dp="client-fixed", noise_multiplier=0.0, clipping_norm=0.25
    )
    train_round(grid, strategy, START, 1, {}, nodes=[1, 2])
    assert all(m.content["config"][KEY_CLIPPING_NORM] == 0.25 for m in grid.sent)


@settings(max_examples=20, deadline=None)
@given(st.floats(1e-3, 10.0), st.floats(-100.0, 100.0))
def test_the_client_app_clipping_mod_bounds_what_leaves_the_node(norm, value):
    from flwr.app import ConfigRecord
    from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM

    from federation.client_app import clip_when_asked

    content = RecordDict(
        {
            "arrays": ArrayRecord({k: Array(v) for k, v in START.items()}),
            "config": ConfigRecord({KEY_CLIPPING_NORM: norm}),
        }
    )
    ask = Message(content=content, dst_node_id=1, message_type="train")

    def train(msg, _context):
        return reply(msg, {"w": np.full(3, value), "b": np.full(1, value)}, {"num-examples": 3})

    out = clip_when_asked(ask, None, train)
    sent = {k: a.numpy() for k, a in out.content["arrays"].items()}
    moved = np.sqrt(sum(np.sum((sent[k] - START[k]) ** 2) for k in START))
    assert moved <= norm * (1 + 1e-5) + 1e-6
    assert moved == pytest.approx(min(norm, 2 * abs(value)), rel=1e-4, abs=1e-6)
