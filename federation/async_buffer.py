"""Buffered asynchronous aggregation (FedBuff, Nguyen et al. 2022) with staleness weights.

Clients train on whatever global version they were sent and reply when done; the server keeps
``concurrency`` clients busy, buffers replies, and once ``buffer_size`` (K) have arrived applies
``w <- w + server_lr x sum_i s_i delta_i / K`` with staleness weight
``s_i = 1 / sqrt(1 + (version now - version the client started from))``: late updates count
less. A slow device never blocks a round.

Example:
    >>> agg = BufferedAggregator({"w": np.zeros(2)}, buffer_size=2)
    >>> agg.add({"w": np.ones(2)}, base_version=0)
    False
    >>> agg.add({"w": np.ones(2) * 3}, base_version=0)
    True
    >>> agg.version, agg.arrays["w"].tolist()
    (1, [2.0, 2.0])
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from ._errors import FederationError


def staleness_weight(staleness: int) -> float:
    """``1 / sqrt(1 + staleness)``: a fresh update weighs 1."""
    if staleness < 0:
        raise FederationError(f"staleness must be >= 0, got {staleness}")
    return 1.0 / math.sqrt(1.0 + staleness)


class BufferedAggregator:
    """The server's state: current arrays, version, and the buffer of weighted updates."""

    def __init__(
        self, arrays: Mapping[str, np.ndarray], *, buffer_size: int, server_lr: float = 1.0
    ) -> None:
        if buffer_size < 1 or not server_lr > 0:
            raise FederationError("buffer_size must be >= 1 and server_lr > 0")
        self.arrays = {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()}
        self.buffer_size, self.server_lr = buffer_size, server_lr
        self.version = 0
        self._buffer: list[tuple[float, dict[str, np.ndarray]]] = []
        self.staleness: list[int] = []
        # Each version's arrays, so an update is taken against the version it started from.
        self.versions = {0: {k: v.copy() for k, v in self.arrays.items()}}

    def add(self, local: Mapping[str, np.ndarray], base_version: int) -> bool:
        """Buffer a client's new arrays, trained from ``base_version``; True if a step applied."""
        if base_version not in self.versions:
            raise FederationError(
                f"version {base_version} is unknown (current {self.version}, kept "
                f"{sorted(self.versions)})"
            )
        stale = self.version - base_version
        self.staleness.append(stale)
        base = self.versions[base_version]
        delta = {k: np.asarray(local[k], dtype=np.float64) - base[k] for k in self.arrays}
        self._buffer.append((staleness_weight(stale), delta))
        if len(self._buffer) < self.buffer_size:
            return False
        for k in self.arrays:
            step = sum(w * d[k] for w, d in self._buffer) / len(self._buffer)
            self.arrays[k] = self.arrays[k] + self.server_lr * step
        self._buffer.clear()
        self.version += 1
        self.versions[self.version] = {k: v.copy() for k, v in self.arrays.items()}
        return True

    def forget_before(self, version: int) -> None:
        """Drop stored versions older than ``version`` (no client still trains from them)."""
        for v in [v for v in self.versions if v < version]:
            del self.versions[v]


def run_async(grid: Any, cfg: dict[str, Any], initial: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Drive FedBuff over a Flower ``Grid`` until ``num-server-rounds`` versions are applied.

    Uses ``push_messages`` / ``pull_messages`` so replies are handled as they arrive; every
    reply is validated by the round core's :func:`federation.rounds.check_reply` against the
    version it answered (a refused one is counted in ``rejected`` and the node is sent the
    current version again).
    """
    from flwr.app import ConfigRecord, Message, RecordDict

    from .rounds import ARRAY_KEY, check_reply, to_record

    agg = BufferedAggregator(
        initial, buffer_size=int(cfg["buffer-size"]), server_lr=float(cfg["server-lr"])
    )
    target = int(cfg["num-server-rounds"])
    nodes = sorted(grid.get_node_ids())
    busy: dict[str, tuple[int, int]] = {}  # message id -> (node, base version)

    rejected: list[str] = []

    def send(node: int) -> None:
        msg = Message(
            content=RecordDict(
                {ARRAY_KEY: to_record(agg.arrays), "config": ConfigRecord(dict(cfg))}
            ),
            dst_node_id=node,
            message_type="train",
        )
        (mid,) = list(grid.push_messages([msg]))
        busy[mid] = (node, agg.version)

    for node in nodes[: int(cfg["concurrency"])]:
        send(node)
    deadline = time.monotonic() + float(cfg.get("async-timeout", 600))
    while agg.version < target:
        if time.monotonic() > deadline:
            raise FederationError(f"async run reached version {agg.version} of {target} in time")
        for reply in grid.pull_messages(list(busy)):
            node, base = busy.pop(reply.metadata.reply_to_message_id)
            if agg.version >= target:  # replies that arrive together may overshoot: stop
                break
            try:
                update = check_reply(reply, agg.versions[base])
            except FederationError as exc:
                rejected.append(f"node {node}: {exc}")
            else:
                if update.num_examples > 0:
                    agg.add(update.arrays, base)
            if agg.version < target:
                send(node)
        agg.forget_before(min((base for _, base in busy.values()), default=agg.version))
        time.sleep(0.05)
    return {
        "arrays": agg.arrays,
        "version": agg.version,
        "staleness": agg.staleness,
        "rejected": rejected,
    }
