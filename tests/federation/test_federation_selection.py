"""Energy-aware selection: respects k, prefers charged devices, keeps everyone above the floor."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from federation import FederationError, make_strategy
from federation.selection import (
    DeviceProfile,
    EnergyAwareSelection,
    select_nodes,
    simulated_profile,
)


@st.composite
def fleets(draw):
    n = draw(st.integers(2, 30))
    profiles = {
        i: DeviceProfile(draw(st.floats(0, 1)), draw(st.booleans()), draw(st.integers(0, 2)))
        for i in range(n)
    }
    return profiles, draw(st.integers(1, n)), draw(st.floats(0.0, 0.5))


@given(fleets(), st.integers(0, 100))
def test_every_node_keeps_its_fairness_floor(fleet, seed):
    profiles, k, floor = fleet
    n = len(profiles)
    floor = min(floor, k / n)  # a floor above k/n cannot be met by anyone
    counts: dict[int, int] = {}
    rounds = 60
    for r in range(rounds):
        pick = select_nodes(profiles, profiles, counts, r, k=k, fairness_floor=floor, rng=seed)
        assert len(pick) == k and len(set(pick)) == k
        for i in pick:
            counts[i] = counts.get(i, 0) + 1
    assert min(counts.get(i, 0) for i in profiles) / rounds >= floor - 2 / rounds


def test_charging_fast_devices_first_without_floor_pressure():
    profiles = {
        0: DeviceProfile(0.1, False, 0),  # nearly empty, slow
        1: DeviceProfile(0.5, True, 2),  # charging, fast
        2: DeviceProfile(0.9, False, 1),
        3: DeviceProfile(0.15, False, 2),  # below min battery
    }
    counts = {i: 10 for i in profiles}
    assert select_nodes(profiles, profiles, counts, 10, k=2, rng=0) == [1, 2]


def test_floor_brings_back_a_starved_slow_device():
    profiles = {0: DeviceProfile(0.1, False, 0), 1: DeviceProfile(1.0, True, 2)}
    assert select_nodes(profiles, profiles, {0: 0, 1: 10}, 10, k=1, rng=0) == [0]


def test_simulated_profiles_are_reproducible():
    assert simulated_profile(3, 5, 0) == simulated_profile(3, 5, 0)
    assert simulated_profile(3, 5, 0).tier == simulated_profile(3, 6, 0).tier


def test_bad_arguments():
    with pytest.raises(FederationError, match="k must be"):
        select_nodes([1], {}, {}, 0, k=0)
    with pytest.raises(FederationError, match="fairness_floor"):
        select_nodes([1], {}, {}, 0, k=1, fairness_floor=2.0)


class FakeGrid:
    def __init__(self, n: int) -> None:
        self.n = n

    def get_node_ids(self):
        return list(range(1, self.n + 1))


def test_wrapper_trains_only_the_selected_nodes(monkeypatch):
    from flwr.app import ArrayRecord, ConfigRecord
    from flwr.supercore.task_identity import TaskIdentity

    for attr in ("_run_id", "_node_id", "_task_id"):
        monkeypatch.setattr(TaskIdentity, attr, 1)
    wrapper = EnergyAwareSelection(make_strategy("fedavg", num_nodes=6), per_round=2, seed=1)
    msgs = wrapper.configure_train(1, ArrayRecord([np.zeros(2)]), ConfigRecord({}), FakeGrid(6))
    assert len(msgs) == 2 and wrapper.rounds == 1 and sum(wrapper.counts.values()) == 2
    assert wrapper.min_train_nodes == 6  # other attributes come from the wrapped strategy
