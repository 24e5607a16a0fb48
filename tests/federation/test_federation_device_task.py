"""A market device as a federated task: it trains on its own store, its budget composes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from agents import PrivateContext
from federation import FederationError
from federation.device_task import BUDGET, DeviceTask, device_folder, write_device


def device(store, pid=0, clicks=(1, 0, 1), total=10.0, spent=0.0):
    ctx = PrivateContext()
    ctx.add("view", "trail running shoes", time=0.0)
    for i, clicked in enumerate(clicks):
        ctx.record_impression(f"a{i}", ["running shoes", "coffee beans"][i % 2], clicked, 1.0 + i)
    write_device(store, pid, ctx, budget_total=total, budget_spent=spent)


def spent(store, pid=0):
    return json.loads((device_folder(store, pid) / BUDGET).read_text())["spent"]


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    return DeviceTask("tiny-encoder", store=tmp_path_factory.mktemp("s"), rank=2)


def test_rounds_compose_on_the_device_and_a_spent_budget_declines(task, tmp_path):
    device(tmp_path, total=10.0)
    start = task.initial_arrays()
    data = task.load(0, 1, store=str(tmp_path))
    new, n, m = task.train(start, data, epochs=1, lr=1e-3, rng=0)
    assert n == 3 and m["steps"] >= 1 and 0 < m["epsilon"] == m["epsilon-spent"] == spent(tmp_path)
    assert any(not np.array_equal(new[k], start[k]) for k in start)
    again = task.train(new, data, epochs=1, lr=1e-3, rng=1)[2]
    assert again["epsilon-spent"] == pytest.approx(2 * m["epsilon"])  # basic composition
    # a third round would exceed the budget of 10: the device declines, sends its input back
    back, n, m3 = task.train(new, data, epochs=1, lr=1e-3, rng=2)
    assert n == 0 and m3["declined"] == 1 and back is new
    assert spent(tmp_path) == pytest.approx(again["epsilon-spent"])


def test_training_without_noise_spends_infinite_epsilon_and_says_so(tmp_path):
    free = DeviceTask("tiny-encoder", store=tmp_path, rank=2, noise_multiplier=0.0)
    device(tmp_path, total=math.inf)
    data = free.load(0, 1)
    _, n, m = free.train(free.initial_arrays(), data, epochs=1, lr=1e-3, rng=0)
    assert n == 3 and m["epsilon"] == math.inf and spent(tmp_path) == math.inf
    assert free.train(free.initial_arrays(), data, epochs=1, lr=1e-3, rng=0)[1] == 3


def test_a_device_without_clicks_or_store_declines(task, tmp_path):
    device(tmp_path, pid=1, clicks=())
    for pid in (1, 2):  # no clicks; never served (no store)
        arrays = task.initial_arrays()
        assert task.train(arrays, task.load(pid, 3, store=str(tmp_path)), epochs=1, lr=1e-3)[1] == 0


def test_a_corrupt_budget_is_refused(task, tmp_path):
    device(tmp_path, spent=float("nan"))
    with pytest.raises(FederationError, match="spent >= 0"):
        task.train(task.initial_arrays(), task.load(0, 1, store=str(tmp_path)), epochs=1, lr=1e-3)
    with pytest.raises(FederationError, match="device store"):
        DeviceTask("tiny-encoder").load(0, 1)


def test_user_level_devices_send_arrays_and_one_example_only_and_keep_their_budget(tmp_path):
    """DP-FedAvg: the unit is the user; the reply says nothing about the log's size, the
    device's budget file is the exchange's accountant's view and is not changed here."""
    user = DeviceTask("tiny-encoder", store=tmp_path, rank=2, noise_multiplier=0.0, user_level=True)
    device(tmp_path, total=8.0, spent=3.0)
    start = user.initial_arrays()
    new, n, metrics = user.train(start, user.load(0, 1), epochs=1, lr=1e-3, rng=0)
    assert n == 1 and metrics == {}  # no rows, steps or epsilon leave the device
    assert any(not np.array_equal(new[k], start[k]) for k in start)
    assert spent(tmp_path) == 3.0
    device(tmp_path, pid=1, total=8.0, spent=8.0)  # nothing left: declines
    back, n, metrics = user.train(start, user.load(1, 2), epochs=1, lr=1e-3, rng=0)
    assert n == 0 and metrics == {"declined": 1.0} and back is start
