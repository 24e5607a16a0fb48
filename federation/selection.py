"""Energy-aware client selection with a fairness floor, as a wrapper around any strategy.

Devices report a profile with each reply (battery level, charging, compute tier). Each round
the wrapper picks ``per_round`` nodes: first every node whose participation rate has fallen
below ``fairness_floor`` (so slow or low-battery devices still take part), then the best
by ``score = 2 x charging + battery + tier / 2`` among nodes with enough battery or charging,
ties broken at random. Nodes never heard from count as fully charged mid-tier devices.

Example:
    >>> pick = select_nodes([1, 2, 3], {2: DeviceProfile(0.9, True, 2)}, {}, 0, k=1, rng=0)
    >>> pick
    [2]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._errors import FederationError


@dataclass(frozen=True)
class DeviceProfile:
    """What a device reports: battery in [0, 1], whether it charges, compute tier 0 (slow)-2."""

    battery: float
    charging: bool
    tier: int

    @property
    def score(self) -> float:
        return 2.0 * self.charging + self.battery + self.tier / 2.0


UNKNOWN = DeviceProfile(battery=1.0, charging=False, tier=1)


def simulated_profile(partition_id: int, server_round: int, seed: int) -> DeviceProfile:
    """A device's state in a round, reproducible from the seed (tier fixed per device)."""
    fixed = np.random.default_rng([seed, 7, partition_id])
    now = np.random.default_rng([seed, 8, partition_id, server_round])
    return DeviceProfile(
        battery=float(now.uniform(0.05, 1.0)),
        charging=bool(now.random() < 0.3),
        tier=int(fixed.integers(0, 3)),
    )


def select_nodes(
    node_ids: Iterable[int],
    profiles: Mapping[int, DeviceProfile],
    counts: Mapping[int, int],
    rounds_seen: int,
    *,
    k: int,
    fairness_floor: float = 0.2,
    min_battery: float = 0.2,
    rng: np.random.Generator | int | None = None,
) -> list[int]:
    """Choose ``k`` nodes for a round (see module doc)."""
    nodes = sorted(node_ids)
    if k < 1:
        raise FederationError(f"k must be >= 1, got {k}")
    if not 0 <= fairness_floor <= 1:
        raise FederationError(f"fairness_floor must be in [0, 1], got {fairness_floor}")
    gen = np.random.default_rng(rng)
    jitter = dict(zip(nodes, gen.random(len(nodes)), strict=True))
    rate = {n: counts.get(n, 0) / rounds_seen if rounds_seen else 1.0 for n in nodes}
    starved = sorted(
        (n for n in nodes if rate[n] < fairness_floor), key=lambda n: (rate[n], jitter[n])
    )
    chosen = starved[:k]
    rest = [n for n in nodes if n not in chosen]

    def usable(n: int) -> bool:
        p = profiles.get(n, UNKNOWN)
        return p.charging or p.battery >= min_battery

    ranked = sorted(rest, key=lambda n: (not usable(n), -profiles.get(n, UNKNOWN).score, jitter[n]))
    return sorted(chosen + ranked[: k - len(chosen)])


class EnergyAwareSelection:
    """Wrap a Flower strategy: it trains only the nodes ``select_nodes`` picks each round.

    The wrapped strategy must sample every node (``fraction_train = 1``); this wrapper keeps
    ``per_round`` of its messages and learns device profiles from the replies' metrics
    (``battery``, ``charging``, ``tier``).
    """

    def __init__(
        self,
        strategy: Any,
        per_round: int,
        *,
        fairness_floor: float = 0.2,
        min_battery: float = 0.2,
        seed: int = 0,
    ) -> None:
        self.strategy, self.per_round = strategy, per_round
        self.fairness_floor, self.min_battery, self.seed = fairness_floor, min_battery, seed
        self.profiles: dict[int, DeviceProfile] = {}
        self.counts: dict[int, int] = {}
        self.rounds = 0

    def configure_train(self, server_round: int, arrays: Any, config: Any, grid: Any) -> list:
        messages = list(self.strategy.configure_train(server_round, arrays, config, grid))
        by_node = {m.metadata.dst_node_id: m for m in messages}
        pick = select_nodes(
            by_node,
            self.profiles,
            self.counts,
            self.rounds,
            k=self.per_round,
            fairness_floor=self.fairness_floor,
            min_battery=self.min_battery,
            rng=[self.seed, server_round],
        )
        self.rounds += 1
        for n in pick:
            self.counts[n] = self.counts.get(n, 0) + 1
        return [by_node[n] for n in pick]

    def aggregate_train(self, server_round: int, replies: Iterable[Any]) -> Any:
        replies = list(replies)
        for r in replies:
            if r.has_content() and "metrics" in r.content:
                m = r.content["metrics"]
                if "battery" in m:
                    self.profiles[r.metadata.src_node_id] = DeviceProfile(
                        float(m["battery"]), bool(m["charging"]), int(m["tier"])
                    )
        return self.strategy.aggregate_train(server_round, replies)

    def start(self, *args: Any, **kwargs: Any) -> Any:
        """Flower's round loop, driving this wrapper's configure/aggregate methods."""
        from flwr.serverapp.strategy import Strategy

        return Strategy.start(self, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # everything else is the wrapped strategy's
        return getattr(self.strategy, name)
